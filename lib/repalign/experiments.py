"""Two-point experiments in one call: train a Table 1 architecture, fit the theory, summarise.

The chapters use :func:`run_two_point` for every architecture they show, so that "train and fit any
Table 1 architecture" is one line, with the profile's settings (:func:`repalign.profiles.architecture`)
applied and recorded.

>>> from repalign import experiments
>>> run = experiments.run_two_point("shallow", trials=2, epochs=2000, progress=False)  # doctest: +SKIP
>>> run.summary()["error_median"] < 0.1  # doctest: +SKIP
True
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from . import _validate as v
from . import data, fit, geometry, profiles, theory
from .profiles import Architecture
from .tables import markdown_table
from .train import Recording, train

__all__ = ["TwoPointRun", "run_two_point", "plateau_loss", "plateau_epochs", "summary_markdown", "DistanceGrid",
           "stop_records", "grid_cell", "grid_from_cells", "distance_grid", "LayerFits", "fit_layers", "PairwiseRun",
           "pairwise_distances", "pairwise_training", "pairwise_run", "run_pairwise", "BlobRun", "run_blobs",
           "representations", "accuracy", "sorted_first", "weighted_predictions"]


@dataclass(frozen=True, eq=False)
class TwoPointRun:
    """One architecture trained on the two-point task with its fits.

    Attributes
    ----------
    name : str
        The Table 1 row.
    arch : Architecture
        The row as run (after the profile's reductions).
    recording : Recording
    fits : list of fit.RateFit
        One per trial (eq. 7, two rates).
    loss_fits : list of fit.LossFit
        One per trial (eq. 9, the third rate, with the trial's fitted trajectory).
    seconds : float
        Wall time of training.
    """

    name: str
    arch: Architecture
    recording: Recording = field(repr=False)
    fits: list = field(repr=False)
    loss_fits: list = field(repr=False)
    seconds: float

    @property
    def errors(self) -> np.ndarray:
        return np.array([f.error for f in self.fits])

    def tau_y_over_tau_h(self, max_loss: float | None = None) -> float:
        """``tau_y/tau_h`` from the rates averaged over the trials (Fig. 5: ``mean(1/tau_h) / mean(1/tau_y)``),
        using only trials whose final loss is below ``max_loss`` if given.

        Raises
        ------
        ValueError
            If no trial's final loss is below ``max_loss``.
        """
        keep = np.ones(len(self.fits), bool)
        if max_loss is not None:
            keep = self.recording.loss[:, -1] < max_loss
            if not keep.any():
                raise ValueError(f"no trial of {self.name!r} ends with a loss below max_loss={max_loss!r}")
        r = self.rates[keep]
        return float(r[:, 0].mean() / r[:, 1].mean())

    @property
    def rates(self) -> np.ndarray:
        """(trials, 3): ``rate_h, rate_y, rate_ybar`` of each trial."""
        return np.array([[f.rate_h, f.rate_y, lf.rate_ybar] for f, lf in zip(self.fits, self.loss_fits)])

    def summary(self) -> dict:
        """Median, min and max fit error; mean and standard deviation of each rate over the trials."""
        e, r = self.errors, self.rates
        sd = r.std(axis=0, ddof=1) if len(r) > 1 else np.full(3, np.nan)
        return {
            "name": self.name, "trials": len(e), "width": self.arch.width, "lr": self.recording.settings["lr"],
            "epochs": self.recording.n_records - 1, "optimizer": self.recording.settings["optimizer"],
            "error_median": float(np.median(e)), "error_min": float(e.min()), "error_max": float(e.max()),
            "rate_h": float(r[:, 0].mean()), "rate_h_sd": float(sd[0]),
            "rate_y": float(r[:, 1].mean()), "rate_y_sd": float(sd[1]),
            "rate_ybar": float(r[:, 2].mean()), "rate_ybar_sd": float(sd[2]),
            "loss_error_median": float(np.median([lf.error for lf in self.loss_fits])),
            "seconds": self.seconds,
        }


def run_two_point(
    name: str,
    *,
    profile: str | None = None,
    trials: int = 1,
    seed: int = 0,
    optimizer: str = "sgd",
    lr: float | None = None,
    epochs: int | None = None,
    progress: bool = True,
    **train_kwargs,
) -> TwoPointRun:
    """Train Table 1 row ``name`` on the two-point data (:data:`profiles.TWO_POINT`) and fit every trial.

    Parameters
    ----------
    name : str
        A key of :data:`profiles.TABLE1`.
    profile : str, optional
        ``quick`` or ``paper`` (default :func:`profiles.current`): which reductions apply.
    trials, seed, optimizer, lr, epochs, progress
        As :func:`repalign.train.train` (``lr`` and ``epochs`` default to the row as run).
    **train_kwargs
        Passed on to :func:`repalign.train.train` (``dtype``, ``device``, ``layer``, ...).
    """
    arch = profiles.architecture(name, profile)
    d = data.two_point()
    start = time.perf_counter()
    rec = train(arch, d.x, d.y, trials=trials, seed=seed, optimizer=optimizer, lr=lr, epochs=epochs,
                progress=progress, **train_kwargs)
    seconds = time.perf_counter() - start
    fits = fit.fit_recording(rec)
    target_mean = 0.5 * (d.y[0] + d.y[1])
    loss_fits = []
    for k, f in enumerate(fits):
        offset_sq = float(np.sum((rec.mean_output[k, 0] - target_mean) ** 2))
        loss_fits.append(fit.fit_rate_ybar(rec.epochs, f.z_theory, rec.loss[k], d.dy_target_sq,
                                           max(offset_sq, 1e-300)))
    return TwoPointRun(name, arch, rec, fits, loss_fits, seconds)


def plateau_loss(recording: Recording, trial: int = 0, *, settle: float = 1e-3) -> tuple[float, int]:
    """The loss on the plateau: at the first record where the mean output has settled.

    The plateau of eq. (9) is ``dy_target_sq / 8`` once the mean-output term has decayed and while
    ``dy_sq`` and ``w`` are still near 0. The record used is the first whose mean-output term
    ``1/2 ||ybar - ybar*||^2`` is below ``settle`` times ``dy_target_sq / 8``. Returns
    ``(loss, record index)``; the index is the last record if the mean output never settles.
    ``ybar*`` is the mean of the recording's own tracked targets (``settings["target_mean"]``); a
    recording made before that setting existed must come from the default two-point targets.
    """
    recording = v.instance("recording", recording, Recording, "what repalign.train.train returns",
                           duck=("loss", "settings"))
    trial = v.integer("trial", trial, low=-recording.trials, high=recording.trials - 1)
    s = recording.settings
    if "target_mean" in s:
        target = np.asarray(s["target_mean"], float)
    else:
        d = data.two_point()
        if not np.isclose(s["dy_target_sq"], float(np.sum((d.y[1] - d.y[0]) ** 2))):
            raise ValueError("`recording` has no settings['target_mean'] and other targets than the default "
                             "two points; record it again with the current repalign.train")
        target = 0.5 * (d.y[0] + d.y[1])
    mean = recording.mean_output[trial]
    term = 0.5 * np.sum((mean - target) ** 2, axis=-1)
    below = np.nonzero(term < settle * s["dy_target_sq"] / 8)[0]
    i = int(below[0]) if below.size else recording.n_records - 1
    return float(recording.loss[trial, i]), i


def plateau_epochs(recording: Recording, *, band: float = 0.25) -> np.ndarray:
    """Per trial, the number of records whose loss is within ``band`` (relative) of the plateau of
    eq. (9), ``dy_target_sq / 8``: long at small initial weights, about zero at large ones.

    The plateau value is where the loss sits once the mean output is fitted while ``||dy||^2`` and
    ``w`` are still near 0; a loss that merely passes through the band on its way down counts only
    the few epochs it spends there.
    """
    recording = v.instance("recording", recording, Recording, "what repalign.train.train returns",
                           duck=("loss", "settings"))
    band = float(v.positive("band", band))
    plateau = recording.settings["dy_target_sq"] / 8
    if plateau <= 0:
        raise ValueError("the recording's targets coincide (dy_target_sq = 0): there is no plateau")
    return (np.abs(recording.loss / plateau - 1) < band).sum(axis=1)


@dataclass(frozen=True, eq=False)
class DistanceGrid:
    """Final representational distances over a grid of input and target distances (Fig. 5).

    One row per run (grid cell x seed). ``measured`` is ``||dh||^2`` at the first record whose loss is
    below the stopping loss (the last record if none is), ``predicted`` eq. (10)-(11) from the run's
    own ``||dh(0)||^2``, ``||dy(0)||^2`` and the architecture's rate ratio. ``kept`` marks the runs whose
    final loss is below the drop threshold; the agreement measures use only those.
    """

    name: str
    tau_y_over_tau_h: float
    dx_sq: np.ndarray
    dy_target_sq: np.ndarray
    seed: np.ndarray
    measured: np.ndarray
    predicted: np.ndarray
    final_loss: np.ndarray
    epochs: np.ndarray
    kept: np.ndarray
    seconds: float

    def correlation(self) -> float:
        """Pearson correlation of measured and predicted distances over the kept runs."""
        m, p = self.measured[self.kept], self.predicted[self.kept]
        return float(np.corrcoef(m, p)[0, 1]) if m.size > 2 else float("nan")

    def median_relative_error(self) -> float:
        """Median of ``|measured - predicted| / predicted`` over the kept runs."""
        m, p = self.measured[self.kept], self.predicted[self.kept]
        return float(np.median(np.abs(m - p) / p)) if m.size else float("nan")


def stop_records(recording: Recording, stop_loss: float) -> np.ndarray:
    """Per trial, the record a Fig. 5 cell reads: the first whose loss is below `stop_loss`, else the last.

    Returns an int array of shape (trials,).
    """
    recording = v.instance("recording", recording, Recording, "what repalign.train.train returns",
                           duck=("loss", "settings"))
    below = recording.loss < stop_loss
    return np.where(below.any(1), below.argmax(1), recording.n_records - 1)


def grid_cell(arch: Architecture, dx_sq: float, dy_target_sq: float, *, seeds=(0,), lr: float | None = None,
              epochs: int = 40000, stop_loss: float = 1e-4, progress: bool = True,
              **train_kwargs) -> dict[str, np.ndarray]:
    """Train one Fig. 5 grid cell: ``arch`` on the two points at ``(dx_sq, dy_target_sq)``, all ``seeds``
    together, until every trial's loss is below ``stop_loss`` (at most ``epochs``).

    Returns the arrays :func:`grid_from_cells` needs, one entry per seed: ``seeds``; ``measured``,
    ``||dh||^2`` at :func:`stop_records`; ``dh_sq0, dy_sq0``, the initial distances; ``final_loss``;
    ``epochs_trained``. ``train_kwargs`` go to :func:`repalign.train.train` (``dtype``, ``device``).
    """
    d = data.two_point(dx_sq, dy_target_sq)
    rec = train(arch, d.x, d.y, seeds=seeds, lr=lr, epochs=epochs, stop_loss=stop_loss, progress=progress,
                **train_kwargs)
    index = stop_records(rec, stop_loss)
    return {"seeds": np.array(rec.seeds), "measured": rec.dh_sq[np.arange(rec.trials), index],
            "dh_sq0": rec.dh_sq[:, 0], "dy_sq0": rec.dy_sq[:, 0], "final_loss": rec.loss[:, -1],
            "epochs_trained": np.asarray(rec.settings["epochs_trained"])}


def grid_from_cells(name: str, tau_y_over_tau_h: float, cells, *, drop_loss: float = 1e-3,
                    seconds: float = float("nan")) -> DistanceGrid:
    """Assemble a :class:`DistanceGrid` from trained cells and predict each run's distance with eq. (10).

    Parameters
    ----------
    name : str
        The architecture's name.
    tau_y_over_tau_h : float
        ``tau_y / tau_h`` of the architecture (> 0).
    cells : iterable of (dx_sq, dy_target_sq, arrays)
        ``arrays`` as :func:`grid_cell` returns them (or a stored ``grid_cell`` result's arrays).
    drop_loss : float
        Runs whose final loss is not below it are not kept.
    seconds : float
        The training time to record.
    """
    tau_y_over_tau_h = float(v.positive("tau_y_over_tau_h", tau_y_over_tau_h))
    rows = []
    for a, b, c in cells:
        pred = theory.final_distance(c["dh_sq0"], c["dy_sq0"], rate_h=1.0, rate_y=1.0 / tau_y_over_tau_h,
                                     dx_sq=a, dy_target_sq=b).distance
        for k, s in enumerate(c["seeds"]):
            rows.append((a, b, s, c["measured"][k], float(pred[k]), c["final_loss"][k], c["epochs_trained"][k]))
    if not rows:
        raise ValueError("`cells` is empty: a distance grid needs at least one cell")
    cols = [np.array(c) for c in zip(*rows)]
    return DistanceGrid(name, tau_y_over_tau_h, cols[0], cols[1], cols[2].astype(int), cols[3], cols[4], cols[5],
                        cols[6].astype(int), cols[5] < drop_loss, seconds)


def distance_grid(
    arch: Architecture,
    tau_y_over_tau_h: float,
    *,
    dx_sq=(0.5, 0.75, 1.0, 1.25, 1.5),
    dy_target_sq=(0.0, 0.25, 0.5, 0.75, 1.0),
    seeds=(0,),
    lr: float | None = None,
    epochs: int = 40000,
    stop_loss: float = 1e-4,
    drop_loss: float = 1e-3,
    progress: bool = True,
) -> DistanceGrid:
    """Train ``arch`` on every two-point dataset of the grid and compare the final distance with eq. (10):
    :func:`grid_cell` for every cell, then :func:`grid_from_cells`.

    Parameters
    ----------
    arch : Architecture
        The network (as run: apply :func:`repalign.profiles.architecture` first).
    tau_y_over_tau_h : float
        ``tau_y / tau_h`` of the architecture, e.g. :meth:`TwoPointRun.tau_y_over_tau_h` (> 0).
    dx_sq, dy_target_sq : sequences of float
        Squared input (> 0) and target (>= 0) distances; every combination is one cell.
    seeds : sequence of int
        The trials of each cell (trained together).
    lr : float, optional
        Learning rate (default ``arch.lr``). Fig. 5 used 0.4 x the Table 1 rate.
    epochs, stop_loss, drop_loss : int, float, float
        At most ``epochs`` epochs, stopping once every trial of the cell is below ``stop_loss``; runs
        ending above ``drop_loss`` are not kept.
    """
    v.positive("tau_y_over_tau_h", tau_y_over_tau_h)  # before any training
    start = time.perf_counter()
    cells = [(a, b, grid_cell(arch, a, b, seeds=seeds, lr=lr, epochs=epochs, stop_loss=stop_loss, progress=progress))
             for a in dx_sq for b in dy_target_sq]
    return grid_from_cells(arch.name, tau_y_over_tau_h, cells, drop_loss=drop_loss,
                           seconds=time.perf_counter() - start)


@dataclass(frozen=True, eq=False)
class LayerFits:
    """Eq. (7) fitted at every hidden layer of one recording (Fig. 10): arrays of shape (trials, layers).

    ``layers`` are 1-based; ``dh_sq0`` is each layer's initial ``||dh(0)||^2``; ``success`` is
    :attr:`repalign.fit.RateFit.success` (both rates pinned down by the records).
    """

    layers: np.ndarray
    error: np.ndarray
    rate_h: np.ndarray
    rate_y: np.ndarray
    success: np.ndarray
    dh_sq0: np.ndarray

    def depth_factor(self) -> float:
        """``G`` of eq. (14), ``||dh(0)||^2 ~ G^n ||dx||^2``: ``exp`` of the least-squares slope of
        ``log ||dh(0)||^2`` (median over trials) against the layer index."""
        slope = np.polyfit(self.layers, np.log(np.median(self.dh_sq0, axis=0)), 1)[0]
        return float(np.exp(slope))


def fit_layers(recording: Recording, **fit_kwargs) -> LayerFits:
    """Fit eq. (7) at every layer of a recording made with ``layer="all"`` (or a tuple of layers)."""
    recording = v.instance("recording", recording, Recording, "what repalign.train.train returns",
                           duck=("loss", "settings"))
    if recording.dh_sq.ndim != 3:
        raise ValueError("`recording` must hold several layers: train with layer='all'")
    n = recording.dh_sq.shape[-1]
    fits = [fit.fit_recording(recording, layer_index=k, **fit_kwargs) for k in range(n)]
    arr = lambda attr: np.array([[getattr(f, attr) for f in layer] for layer in fits]).T  # noqa: E731
    return LayerFits(np.asarray(recording.layer), arr("error"), arr("rate_h"), arr("rate_y"),
                     arr("success").astype(bool), recording.dh_sq[:, 0, :].copy())


def pairwise_distances(a) -> np.ndarray:
    """Squared Euclidean distances between the rows of ``a`` (..., n, d) -> (..., n, n):
    :func:`repalign.geometry.sq_distances`."""
    return geometry.sq_distances(a)


@dataclass(frozen=True, eq=False)
class PairwiseRun:
    """Hidden representations of a small dataset before and after training, and eq. (10) for each pair.

    ``measured`` and ``predicted`` have shape (trials, n, n): the final squared hidden distance of
    every pair of points, and eq. (10)-(11) evaluated with the pair's input and target distances,
    the network's own initial hidden and output distances, and the rate ratio ``ratio``
    (``tau_y/tau_h``). ``initial`` holds the initial hidden distances.
    """

    name: str
    arch: Architecture
    settings: dict
    tau_y_over_tau_h: float
    initial: np.ndarray
    measured: np.ndarray
    predicted: np.ndarray
    final_loss: np.ndarray
    same_target: np.ndarray  # (n, n) bool: the pair's targets coincide

    def _pairs(self):
        n = self.measured.shape[-1]
        return np.triu_indices(n, 1)

    def merge_ratio(self) -> np.ndarray:
        """Per trial: mean final distance of the same-target pairs / that of the different-target pairs
        (0: same-target points merged; about 1 or more: no structure from the targets)."""
        iu = self._pairs()
        same = self.same_target[iu]
        m = self.measured[:, iu[0], iu[1]]
        return m[:, same].mean(1) / m[:, ~same].mean(1)

    def relative_error(self) -> np.ndarray:
        """Per trial: ``||measured - predicted|| / ||predicted||`` over the pairs (Frobenius norm)."""
        iu = self._pairs()
        m, p = self.measured[:, iu[0], iu[1]], self.predicted[:, iu[0], iu[1]]
        return np.linalg.norm(m - p, axis=1) / np.linalg.norm(p, axis=1)


def pairwise_training(arch: Architecture, x, y, *, seeds, layer: int | None = None, progress: bool = False,
                      **train_kwargs) -> tuple[dict[str, np.ndarray], dict]:
    """Train ``arch`` on all of ``(x, y)`` (full batch) and return the squared distances between the
    representations of every pair of points, before and after training: what :func:`pairwise_run`
    compares with eq. (10).

    ``layer`` defaults to the architecture's middle hidden layer; ``train_kwargs`` go to
    :func:`repalign.train.train` (``optimizer``, ``lr``, ``epochs``, ``dtype``, ...). The networks are
    read out in float64.

    Returns
    -------
    arrays : dict
        ``initial`` and ``initial_output``, the hidden and output distances at initialisation, and
        ``measured``, the final hidden distances, each (trials, n, n); ``final_loss`` (trials,).
    settings : dict
        The training settings as run (``lr, epochs, optimizer, activation, gain, width, hidden_layers``),
        ``layer`` and ``seeds``.
    """
    import torch

    from .models import build, default_hidden_layer

    x = np.asarray(x, float)
    y = np.asarray(y, float)
    layer = default_hidden_layer(arch) if layer is None else layer
    rec = train(arch, x, y, seeds=seeds, keep_models=True, progress=progress, **train_kwargs)
    xt = torch.tensor(x, dtype=torch.float64)

    def represent(net):
        net = net.double().eval()
        with torch.no_grad():
            out, h = net(xt, hidden=layer)
        return out.numpy(), h.numpy()

    init = [represent(build(arch, input_dim=x.shape[1], output_dim=y.shape[1], seed=s)) for s in rec.seeds]
    final = [represent(m) for m in rec.models]
    keys = ("lr", "epochs", "optimizer", "activation", "gain", "width", "hidden_layers")
    settings = {**{k: rec.settings[k] for k in keys}, "layer": layer, "seeds": rec.seeds}
    arrays = {"initial": pairwise_distances([h for _, h in init]),
              "initial_output": pairwise_distances([o for o, _ in init]),
              "measured": pairwise_distances([h for _, h in final]), "final_loss": rec.loss[:, -1]}
    return arrays, settings


def pairwise_run(name: str, arch: Architecture, x, y, arrays, settings: dict, *,
                 tau_y_over_tau_h: float) -> PairwiseRun:
    """The :class:`PairwiseRun` of a :func:`pairwise_training` result: eq. (10)-(11) for every pair with
    the pair's input and target distances, the network's initial hidden and output distances and
    ``tau_y_over_tau_h`` (> 0)."""
    tau_y_over_tau_h = float(v.positive("tau_y_over_tau_h", tau_y_over_tau_h))
    dh0, dy0 = arrays["initial"], arrays["initial_output"]
    dx, dyt = pairwise_distances(np.asarray(x, float)), pairwise_distances(np.asarray(y, float))
    off = ~np.eye(len(dx), dtype=bool)  # eq. (10) needs dh0 > 0; the diagonal is 0 by definition
    pred = np.zeros_like(dh0)
    shape = dh0[:, off].shape
    pred[:, off] = theory.final_distance(dh0[:, off], dy0[:, off], rate_h=1.0, rate_y=1.0 / tau_y_over_tau_h,
                                         dx_sq=np.broadcast_to(dx[off], shape),
                                         dy_target_sq=np.broadcast_to(dyt[off], shape)).distance
    return PairwiseRun(name, arch, dict(settings), tau_y_over_tau_h, dh0, arrays["measured"], pred,
                       arrays["final_loss"], dyt == 0)


def run_pairwise(name: str, arch: Architecture, x, y, *, tau_y_over_tau_h: float, seeds, layer: int | None = None,
                 progress: bool = False, **train_kwargs) -> PairwiseRun:
    """Train ``arch`` on all of ``(x, y)`` (full batch) and compare every pair's final hidden distance
    with eq. (10) (the XOR experiment of Sec. 4.4): :func:`pairwise_training`, then :func:`pairwise_run`.

    ``layer`` defaults to the architecture's middle hidden layer; ``train_kwargs`` go to
    :func:`repalign.train.train` (``optimizer``, ``lr``, ``epochs``, ...).
    """
    v.positive("tau_y_over_tau_h", tau_y_over_tau_h)  # before any training
    arrays, settings = pairwise_training(arch, x, y, seeds=seeds, layer=layer, progress=progress, **train_kwargs)
    return pairwise_run(name, arch, x, y, arrays, settings, tau_y_over_tau_h=tau_y_over_tau_h)


def _evaluate(models, x, *, layer: int | None, chunk: int) -> list[np.ndarray]:
    """Per network in ``models``: hidden layer ``layer`` (or the output when ``layer`` is None) for ``x``,
    in eval mode, in the network's own dtype and on its device, ``chunk`` points at a time."""
    import torch

    from .networks import _hidden_spec

    x = v.finite_array("x", x, ndim=2)
    if len(x) == 0:
        raise ValueError("`x` must hold at least one input row, got shape (0, ...)")
    chunk = v.integer("chunk", chunk)
    out = []
    with torch.no_grad():
        for m in models:
            _hidden_spec(layer, m.n_hidden, name="layer")  # the error names `layer`, not forward's `hidden`
            m = m.eval()
            p = next(m.parameters())
            parts = []
            for k in range(0, len(x), chunk):
                output, hidden = m(torch.tensor(x[k:k + chunk], dtype=p.dtype, device=p.device), hidden=layer)
                parts.append((output if layer is None else hidden).cpu().numpy())  # a copy: x may be read-only
            out.append(np.concatenate(parts))
    return out


def representations(models, x, layer: int, *, chunk: int = 10000) -> np.ndarray:
    """Hidden layer ``layer`` of every network in ``models`` for the inputs ``x``: (trials, n, width), float64.

    The networks run in eval mode, in their own dtype and on their device, ``chunk`` points at a time.
    """
    return v.finite_output(np.stack(_evaluate(models, x, layer=layer, chunk=chunk)).astype(float),
                           "the hidden representations",
                           "rescale `x` (the networks compute in their own dtype, e.g. float32)")


def accuracy(models, x, labels, *, chunk: int = 10000) -> np.ndarray:
    """Classification accuracy of every network in ``models`` on inputs ``x``: (trials,) float64.

    A point counts as correct when the network's largest output is at its label (an integer class
    index, e.g. MNIST's digit), as for one-hot targets. The networks run as in :func:`representations`.
    """
    labels = np.asarray(labels)
    if labels.shape != (len(x),):
        raise ValueError(f"`labels` must have shape ({len(x)},), one per point of `x`; got {labels.shape}")
    return np.array([np.mean(out.argmax(1) == labels) for out in _evaluate(models, x, layer=None, chunk=chunk)])


@dataclass(frozen=True, eq=False)
class BlobRun:
    """Final hidden representations of the Gaussian-blob context task (Sec. 4.5), with their measures.

    ``hidden`` has shape (trials, n_points, width): the hidden layer ``settings["layer"]`` of every
    point after training. The measures (one value per trial) are those of :mod:`repalign.geometry`:
    ``shares[..., c, f]`` is the share of context ``c``'s variance explained by feature ``f`` (0 the
    relevant blob position, 1 the irrelevant one), ``gap`` the :func:`~repalign.geometry.context_gap`
    and ``pc1`` the :func:`~repalign.geometry.collinearity` of all points.
    """

    name: str
    arch: Architecture
    settings: dict
    hidden: np.ndarray
    loss: np.ndarray  # (trials, epochs + 1): the recorded loss curve
    shares: np.ndarray  # (trials, 2 contexts, 2 features)
    gap: np.ndarray
    pc1: np.ndarray
    seconds: float

    @property
    def irrelevant_share(self) -> np.ndarray:
        """Per trial: the irrelevant feature's share, averaged over the two contexts."""
        return self.shares[:, :, 1].mean(-1)

    def row(self) -> dict:
        """Medians over trials, for a table."""
        return {"name": self.name, "activation": self.arch.activation, "optimizer": self.settings["optimizer"],
                "gain": self.arch.gain, "lr": self.settings["lr"], "epochs": self.settings["epochs"],
                "trials": len(self.settings["seeds"]), "final_loss": float(np.median(self.loss[:, -1])),
                "relevant": float(np.median(self.shares[:, :, 0].mean(-1))),
                "irrelevant": float(np.median(self.irrelevant_share)), "gap": float(np.median(self.gap)),
                "pc1": float(np.median(self.pc1)), "seconds": self.seconds}


def run_blobs(name: str, arch: Architecture, dataset: data.Dataset, *, seeds, batch_size: int = 64,
              layer: int = 3, progress: bool = False, **train_kwargs) -> BlobRun:
    """Train ``arch`` on the blob task in minibatches and measure the final representation's geometry.

    ``layer`` is the hidden layer read out (the released code's 3rd of 4); ``train_kwargs`` go to
    :func:`repalign.train.train` (``optimizer``, ``lr``, ``epochs``).
    """
    start = time.perf_counter()
    rec = train(arch, dataset.x, dataset.y, seeds=seeds, batch_size=batch_size, layer=layer, keep_models=True,
                progress=progress, **train_kwargs)
    hidden = representations(rec.models, dataset.x, layer)
    shares = geometry.feature_shares(hidden, [dataset.relevant, dataset.irrelevant], dataset.context)
    gap = geometry.context_gap(hidden, dataset.context, dataset.y[:, 0])
    settings = {k: rec.settings[k] for k in ("lr", "epochs", "optimizer", "batch_size")}
    return BlobRun(name, arch, {**settings, "layer": layer, "seeds": rec.seeds}, hidden, rec.loss, shares, gap,
                   geometry.collinearity(hidden), time.perf_counter() - start)


def sorted_first(labels, n: int) -> np.ndarray:
    """Indices of the first ``n`` points, sorted by label (stably, so ties keep dataset order): Fig. 9."""
    labels = np.asarray(labels)
    if not isinstance(n, (int, np.integer)) or not 1 <= n <= len(labels):
        raise ValueError(f"`n` must be an integer in [1, {len(labels)}], got {n!r}")
    return np.argsort(labels[:n], kind="stable")


def weighted_predictions(x_ref, y_ref, probe, *, tau_y_over_tau_h: float, x_raw=None) -> dict[str, np.ndarray]:
    """The theory's distance matrices for the points ``probe`` (indices into the reference set), Fig. 9.

    Returns (each (len(probe), len(probe))):

    ``"eq10"``
        Eq. (10) at small weights for every pair, ``sqrt(tau_y_over_tau_h) ||dx|| ||dy||`` on the network's
        inputs ``x_ref``, without any weighting.
    ``"eq50_code"``
        Eq. (50) as the released code evaluated it: distances on the raw inputs ``x_raw`` (0-255
        pixels), rate ratio 1, weights ``exp(-D)`` unnormalised, summed over the whole reference set.
    ``"eq50_normalised"``
        Eq. (50) with the network's inputs and ``tau_y_over_tau_h``, weights ``exp(-D / s)`` with ``s`` the
        median non-zero theory distance, each point's weights normalised to sum to 1.
    """
    from . import geometry

    probe = np.asarray(probe)
    d_net = geometry.low_weight_distances(x_ref, y_ref, tau_y_over_tau_h=tau_y_over_tau_h)
    out = {"eq10": d_net[np.ix_(probe, probe)]}
    if x_raw is not None:
        d_raw = geometry.low_weight_distances(x_raw, y_ref, tau_y_over_tau_h=1.0)
        out["eq50_code"] = geometry.exponential_weighting(d_raw[probe], d_raw)
        del d_raw
    scale = float(np.median(d_net[d_net > 0]))
    out["eq50_normalised"] = geometry.exponential_weighting(d_net[probe], d_net, scale=scale, normalise=True)
    return out


def _mean_sd(m: float, sd: float) -> str:
    return f"{m:.3g}" if not np.isfinite(sd) else f"{m:.3g} ± {sd:.2g}"


def summary_markdown(runs) -> str:
    """A Markdown table of :meth:`TwoPointRun.summary` rows (rates as mean ± sd over trials)."""
    header = ["architecture", "width", "η", "epochs", "trials", "fit error, median (min-max)", "1/τ_h", "1/τ_y",
              "τ_h/τ_y", "1/τ_ȳ", "loss fit error"]
    rows = []
    for run in runs:
        s = run.summary()
        tau_h_over_tau_y = run.rates[:, 1] / run.rates[:, 0]
        sd = tau_h_over_tau_y.std(ddof=1) if len(tau_h_over_tau_y) > 1 else np.nan
        rows.append([
            f"{s['name']}{' (Adam)' if s['optimizer'] == 'adam' else ''}", s["width"], f"{s['lr']:.3g}", s["epochs"],
            s["trials"], f"{s['error_median']:.3f} ({s['error_min']:.3f}-{s['error_max']:.3f})",
            _mean_sd(s["rate_h"], s["rate_h_sd"]), _mean_sd(s["rate_y"], s["rate_y_sd"]),
            _mean_sd(tau_h_over_tau_y.mean(), sd),
            _mean_sd(s["rate_ybar"], s["rate_ybar_sd"]), f"{s['loss_error_median']:.3f}"])
    return markdown_table(header, rows)

