"""Gradient-descent training that records the two-point quantities every epoch (paper Sec. 2-3, App. B.1).

For a tracked pair of data points ``(i, j)`` (default ``(0, 1)``, i.e. ``x1, x2``) and a hidden layer ``H``:

=============  ============================================  ==================
field          definition                                    paper
=============  ============================================  ==================
``dh_sq``      ``||h(x_j) - h(x_i)||^2``                     ||dh||^2
``dy_sq``      ``||f(x_j) - f(x_i)||^2``                     ||dy||^2
``w``          ``dy_sq - (f(x_j) - f(x_i)) . (y_j - y_i)``   w
``loss``       ``1/2 mean_n ||f(x_n) - y_n||^2``             eq. (1)
``mean_output``  ``(f(x_i) + f(x_j)) / 2``                   y-bar
=============  ============================================  ==================

Record ``e`` is taken *before* epoch ``e``'s update (after ``e`` epochs), in eval mode, as the released
code did; one more record after the last epoch makes ``n_records = epochs + 1``, and record 0 is the
initial network, so theory time equals the epoch count. With minibatches, ``loss[e]`` (for ``e < epochs``)
is the epoch's training loss as usually reported: the mean over all points of each point's loss in the
minibatch step that used it, taken just before that step's update; the last record's loss is a full
pass. (A full pass every epoch would cost a third of an epoch's training on MNIST.)

Plain ``"mlp"`` and ``"skip"`` rows train all trials together as one :class:`~repalign.models.BatchedMLP`
(``torch.baddbmm`` over a leading trial axis; the summed loss gives each trial its own gradient); trial
``k`` then equals a run of seed ``seeds[k]`` alone, up to floating-point rounding. With plain SGD those
trials train on the hand-written fast path of :mod:`repalign.fastpath` (``engine="auto"``: full batches on
a compiled kernel on the CPU and fused torch operations on a GPU, minibatches on fused torch operations);
``engine="reference"`` selects the autograd loop, against which the fast path is tested. In full-batch
training without dropout the recorded quantities come from the training forward pass itself. ``"conv"`` and
``"dropout"`` rows train the trials one after another; dropout records need a separate eval-mode pass.
"""

from __future__ import annotations

import operator
from dataclasses import asdict, dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np
import torch
from tqdm.auto import tqdm

from . import _validate as v
from . import fastpath
from .fastpath import _loss, _minibatches  # eq. (1) and the minibatch order, shared with the fast path
from .models import _check_arch, _hidden_spec, build, build_batched, default_hidden_layer, n_hidden
from .profiles import Architecture

__all__ = ["Recording", "train", "OPTIMIZERS", "ENGINES"]

OPTIMIZERS = ("sgd", "adam")
ENGINES = ("auto", "fast", "kernel", "fused", "reference")
_DTYPES = {"float32": torch.float32, "float64": torch.float64, torch.float32: torch.float32,
           torch.float64: torch.float64}


@dataclass(frozen=True, eq=False)
class Recording:
    """Per-epoch measurements of one or more trials (arrays read-only, float64).

    Attributes
    ----------
    epochs : numpy.ndarray, shape (n_records,)
        ``0, 1, ..., epochs``: record ``e`` is the network after ``e`` epochs of updates.
    dh_sq : numpy.ndarray, shape (trials, n_records) or (trials, n_records, n_layers)
        ``||dh||^2`` at ``layer``; the last axis runs over the layers when ``layer`` is a tuple.
    dy_sq, w, loss : numpy.ndarray, shape (trials, n_records)
        ``||dy||^2``, ``w`` and the full-dataset loss of eq. (1) (with minibatches: the epoch's mean
        minibatch loss, see the module docstring).
    mean_output : numpy.ndarray, shape (trials, n_records, output_dim)
        Mean prediction over the tracked pair.
    layer : int or tuple of int
        The hidden layer(s) recorded (1-based; a tuple for ``layer="all"``).
    seeds : tuple of int
        Seed of each trial (initial weights, minibatch order, dropout masks).
    settings : Mapping
        The architecture's fields, every training option actually used, and the tracked pair's
        ``dx_sq = ||x_j - x_i||^2`` and ``dy_target_sq = ||y_j - y_i||^2`` (what a fit needs).
    models : tuple of torch.nn.Module or None
        The trained networks, one per trial, if ``keep_models=True``.
    """

    epochs: np.ndarray
    dh_sq: np.ndarray
    dy_sq: np.ndarray
    w: np.ndarray
    loss: np.ndarray
    mean_output: np.ndarray
    layer: int | tuple[int, ...]
    seeds: tuple[int, ...]
    settings: Mapping[str, Any]
    models: tuple | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        s = self.settings
        return (f"Recording({s['name']!r}, trials={self.trials}, epochs={self.n_records - 1}, layer={self.layer}, "
                f"optimizer={s['optimizer']!r}, lr={s['lr']}, dtype={s['dtype']!r}, seeds={self.seeds}, "
                f"final loss median={np.median(self.loss[:, -1]):.3g})")

    @property
    def trials(self) -> int:
        return self.dy_sq.shape[0]

    @property
    def n_records(self) -> int:
        return self.epochs.shape[0]

    @property
    def z(self) -> np.ndarray:
        """``(dh_sq, dy_sq, w)`` stacked on a last axis: (trials, n_records, 3), or
        (trials, n_records, n_layers, 3) when several layers were recorded -- the state of eq. (7)."""
        dy, w = self.dy_sq, self.w
        if self.dh_sq.ndim == 3:
            dy = np.broadcast_to(dy[..., None], self.dh_sq.shape)
            w = np.broadcast_to(w[..., None], self.dh_sq.shape)
        return np.stack([self.dh_sq, dy, w], axis=-1)


class _Recorder:
    """Preallocated on-device buffers; ``record`` writes one epoch for all trials without a host sync."""

    def __init__(self, trials, n_records, n_layers, output_dim, y, pair, dtype, device):
        self.i, self.j = pair
        self.y = y
        self.dtarget = y[self.j] - y[self.i]  # (output_dim,)
        shape = (trials, n_records)
        kw = dict(dtype=dtype, device=device)
        self.dh = torch.empty(shape + ((n_layers,) if n_layers else ()), **kw)
        self.dy, self.w, self.loss = (torch.empty(shape, **kw) for _ in range(3))
        self.mean = torch.empty(shape + (output_dim,), **kw)

    @torch.no_grad()
    def record(self, rows, e, out, hs, loss, *, pair_only=False):
        """Write epoch ``e`` of trials ``rows`` (a slice): ``out`` (T, N, O), ``hs`` (T, N, F) or a list of
        them, ``loss`` (T,), all with a leading trial axis of the slice's length. ``pair_only``: ``out``
        and ``hs`` hold only the tracked pair's two rows, ``i`` then ``j``."""
        i, j = (0, 1) if pair_only else (self.i, self.j)
        dout = out[:, j] - out[:, i]
        dy = dout.square().sum(-1)
        self.dy[rows, e] = dy
        self.w[rows, e] = dy - (dout * self.dtarget).sum(-1)
        self.mean[rows, e] = 0.5 * (out[:, i] + out[:, j])
        self.loss[rows, e] = loss
        if isinstance(hs, list):
            self.dh[rows, e] = torch.stack([(h[:, j] - h[:, i]).square().sum(-1) for h in hs], -1)
        else:
            self.dh[rows, e] = (hs[:, j] - hs[:, i]).square().sum(-1)

    @torch.no_grad()
    def record_block(self, rows, outs, dh, *, start=0):
        """Write records ``start .. start+k-1`` of trials ``rows`` at once: ``outs`` (T, k, N, O) and ``dh``
        (T, k) or (T, k, n_layers), as computed by the compiled kernel."""
        i, j = self.i, self.j
        k = slice(start, start + outs.shape[1])
        dout = outs[:, :, j] - outs[:, :, i]
        dy = dout.square().sum(-1)
        self.dy[rows, k] = dy
        self.w[rows, k] = dy - (dout * self.dtarget).sum(-1)
        self.mean[rows, k] = 0.5 * (outs[:, :, i] + outs[:, :, j])
        self.loss[rows, k] = _loss(outs, self.y)
        self.dh[rows, k] = dh

    def hold(self, rows, last):
        """Training of ``rows`` stopped after ``last`` epochs: the later records repeat record ``last``."""
        for t in (self.dh, self.dy, self.w, self.loss, self.mean):
            t[rows, last + 1:] = t[rows, last:last + 1]

    def truncate(self, n_records):
        for name in ("dh", "dy", "w", "loss", "mean"):
            setattr(self, name, getattr(self, name)[:, :n_records])

    def arrays(self):
        out = []
        for t in (self.dh, self.dy, self.w, self.loss, self.mean):
            a = t.detach().to("cpu", torch.float64).numpy().copy()
            a.flags.writeable = False
            out.append(a)
        return out


def _optimizer(name, params, lr):
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.0)
    return torch.optim.Adam(params, lr=lr)


def _check_int(name, value, low, high=None):
    try:
        out = operator.index(value)
    except TypeError:
        raise ValueError(f"`{name}` must be an integer, got {value!r}") from None
    if out < low or (high is not None and out > high):
        rng = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"`{name}` must be an integer {rng}, got {value!r}")
    return out


def _cuda_index(dev: torch.device) -> list[int]:
    """The CUDA device whose RNG state ``fork_rng`` must save (none on the CPU)."""
    if dev.type != "cuda":
        return []
    return [dev.index if dev.index is not None else torch.cuda.current_device()]


def _device(device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"`device` must be 'cpu' or 'cuda', got {device!r}") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"`device` must be 'cpu' or 'cuda', got {device!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("`device` is 'cuda' but torch.cuda.is_available() is False; use device='cpu'")
    return dev


def train(
    arch: Architecture,
    x,
    y,
    *,
    layer: int | str | None = None,
    convention: str = "paper",
    trials: int = 1,
    seed: int = 0,
    seeds=None,
    lr: float | None = None,
    epochs: int | None = None,
    optimizer: str = "sgd",
    batch_size: int | None = None,
    pair: tuple[int, int] = (0, 1),
    dtype="float32",
    device="cpu",
    batched: bool = True,
    engine: str = "auto",
    keep_models: bool = False,
    progress: bool = True,
    stop_loss: float | None = None,
) -> Recording:
    """Train ``trials`` independent networks of ``arch`` on ``(x, y)`` and record every epoch.

    Parameters
    ----------
    arch : profiles.Architecture
        The network (a Table 1 row, possibly changed with :func:`dataclasses.replace`); its ``lr`` and
        ``epochs`` are the defaults of the arguments of the same names.
    x : array_like, shape (n_points, input_dim)
    y : array_like, shape (n_points, output_dim)
        E.g. ``data.x, data.y`` of :func:`repalign.data.two_point`.
    layer : int, "all" or None, keyword-only
        Hidden layer recorded (1-based); ``"all"`` records every hidden layer; ``None`` uses
        :func:`~repalign.models.default_hidden_layer` with ``convention``.
    convention : {"paper", "code"}, keyword-only
        Read-out convention when ``layer`` is None (differs only for the dropout row).
    trials : int, keyword-only
        Number of independent trials (>= 1); ignored when ``seeds`` is given.
    seed : int, keyword-only
        Trial ``k`` uses seed ``seed + k`` unless ``seeds`` is given.
    seeds : sequence of int, optional, keyword-only
        One non-negative seed per trial.
    lr : float, optional, keyword-only
        Learning rate eta (> 0); default ``arch.lr``.
    epochs : int, optional, keyword-only
        Number of epochs (>= 1); default ``arch.epochs``.
    optimizer : {"sgd", "adam"}, keyword-only
        Plain SGD (no momentum, no weight decay) or Adam with torch's defaults.
    batch_size : int, optional, keyword-only
        Minibatch size in ``[1, n_points]``; ``None`` is full batch. Minibatches are drawn from a fresh
        permutation each epoch, seeded per trial; the last one may be smaller.
    pair : (int, int), keyword-only
        Indices of the tracked pair (distinct, in ``[0, n_points)``).
    dtype : "float32" or "float64" (or the torch dtypes), keyword-only
    device : "cpu" or "cuda", keyword-only
    batched : bool, keyword-only
        Train ``"mlp"``/``"skip"`` trials as one batched computation (default); ``False`` loops over
        trials (conv and dropout always loop).
    engine : {"auto", "fast", "kernel", "fused", "reference"}, keyword-only
        ``"auto"`` (default) trains with the hand-written SGD of :mod:`repalign.fastpath` where it
        applies (batched ``"mlp"``/``"skip"``, SGD) -- for full batches the compiled kernel on the CPU
        and the fused torch operations on a GPU, for minibatches the fused torch operations -- and with
        the autograd loop otherwise. ``"reference"`` always uses the autograd loop. ``"fast"`` demands
        the fast path (either back end) and raises if the configuration is not covered; ``"kernel"``
        (full batches only) and ``"fused"`` demand that back end.
        ``Recording.settings["engine"]`` says which of ``"kernel"``, ``"fused"``, ``"reference"`` ran.
    keep_models : bool, keyword-only
        Return the trained networks in ``Recording.models``.
    progress : bool, keyword-only
        Show a tqdm progress bar.
    stop_loss : float, optional, keyword-only
        Stop early once the loss of every trial trained together is below ``stop_loss`` (checked every
        :data:`repalign.fastpath.KERNEL_CHUNK` epochs, after that epoch's update). A trial that stopped
        earlier than others (conv and dropout trials train one at a time) keeps its last record for the
        remaining epochs. ``Recording.epochs`` ends at the last epoch any trial trained, and
        ``settings["epochs_trained"]`` gives each trial's count. ``None`` (default) trains all epochs.

    Returns
    -------
    Recording
        ``epochs + 1`` records per trial (see the module docstring).

    Raises
    ------
    ValueError
        Non-positive ``lr``, ``epochs < 1``, unknown ``optimizer`` or ``engine``, ``batch_size`` outside
        ``[1, n_points]``, bad ``pair``, ``layer``, ``seeds``, ``dtype`` or ``device``, or ``x``/``y``
        of the wrong shape.

    References
    ----------
    Loss: eq. (1); recorded quantities: Sec. 2.2 and eq. (7); settings: App. B.1 and Table 1.

    Examples
    --------
    >>> from dataclasses import replace
    >>> from repalign.data import two_point
    >>> from repalign.profiles import TABLE1
    >>> arch = replace(TABLE1["default"], width=16, hidden_layers=4)
    >>> d = two_point()
    >>> rec = train(arch, d.x, d.y, trials=3, epochs=10, progress=False)
    >>> rec.z.shape, rec.layer
    ((3, 11, 3), 3)
    """
    arch = _check_arch(arch)
    x = v.finite_array("x", x, ndim=2)
    y = v.finite_array("y", y, ndim=2)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"`x` and `y` must have the same number of points (rows), got {x.shape[0]} and {y.shape[0]}")
    n_points = x.shape[0]
    if n_points < 2:
        raise ValueError(f"`x` must hold at least 2 points to track a pair, got {n_points}")
    lr = float(v.positive("lr", arch.lr if lr is None else lr))
    epochs = _check_int("epochs", arch.epochs if epochs is None else epochs, 1)
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"`optimizer` must be one of {', '.join(OPTIMIZERS)}; got {optimizer!r}")
    if batch_size is not None:
        batch_size = _check_int("batch_size", batch_size, 1, n_points)
    full_batch = batch_size is None or batch_size == n_points
    try:
        pair_t = tuple(pair)
    except TypeError:
        pair_t = ()
    if len(pair_t) != 2:
        raise ValueError(f"`pair` must be two point indices (i, j), got {pair!r}")
    i, j = (_check_int("pair", p, 0, n_points - 1) for p in pair_t)
    if i == j:
        raise ValueError(f"`pair` must name two different points, got {pair!r}")
    if seeds is None:
        trials = _check_int("trials", trials, 1)
        seeds = [_check_int("seed", seed, 0) + k for k in range(trials)]
    seeds = tuple(_check_int("seeds", s, 0) for s in seeds)
    if not seeds:
        raise ValueError("`seeds` must contain at least one seed")
    if not isinstance(dtype, (str, torch.dtype)) or dtype not in _DTYPES:
        raise ValueError(f"`dtype` must be 'float32' or 'float64', got {dtype!r}")
    tdtype, dev = _DTYPES[dtype], _device(device)
    n_layers_total = n_hidden(arch)
    if layer is None:
        layer = default_hidden_layer(arch, convention=convention)
    spec = _hidden_spec(layer, n_layers_total)
    layers = tuple(range(1, n_layers_total + 1)) if spec == "all" else spec

    X = torch.tensor(x, dtype=tdtype, device=dev)
    Y = torch.tensor(y, dtype=tdtype, device=dev)
    use_batched = batched and arch.variant in ("mlp", "skip")
    if engine not in ENGINES:
        raise ValueError(f"`engine` must be one of {', '.join(ENGINES)}; got {engine!r}")
    fast_ok = fastpath.supports(variant=arch.variant, optimizer=optimizer, batched=use_batched)
    if engine in ("fast", "kernel", "fused") and not fast_ok:
        raise ValueError(f"`engine={engine!r}` covers only batched 'mlp'/'skip' networks with optimizer='sgd'; "
                         f"got variant={arch.variant!r}, optimizer={optimizer!r}, batched={batched!r}. "
                         "Use engine='auto'.")
    if engine == "kernel" and not full_batch:
        raise ValueError(f"`engine='kernel'` trains full batches only, got batch_size={batch_size!r}; "
                         "use engine='fused' or 'auto' for minibatches")
    use_fast = fast_ok and engine != "reference"
    backend = "fused" if not full_batch else engine if engine in fastpath.BACKENDS else fastpath.default_backend(dev)
    if use_fast and backend == "kernel" and dev.type != "cpu":
        raise ValueError(f"`engine='kernel'` runs on the CPU only, got device={device!r}; use engine='fused'")
    if stop_loss is not None:
        try:
            stop_loss = float(stop_loss)
        except (TypeError, ValueError):
            raise ValueError(f"`stop_loss` must be a positive number or None, got {stop_loss!r}") from None
        if not stop_loss > 0 or not np.isfinite(stop_loss):
            raise ValueError(f"`stop_loss` must be a positive number or None, got {stop_loss!r}")
    recorder = _Recorder(len(seeds), epochs + 1, n_layers_total if spec == "all" else 0, Y.shape[1], Y,
                         (i, j), tdtype, dev)
    kw = dict(X=X, Y=Y, spec=spec, lr=lr, epochs=epochs, optimizer=optimizer, batch_size=batch_size,
              full_batch=full_batch, recorder=recorder)

    def stopper(rows):
        if stop_loss is None:
            return None
        return lambda e: (e + 1) % fastpath.KERNEL_CHUNK == 0 and bool((recorder.loss[rows, e] < stop_loss).all())

    trained = []  # epochs trained, per trial
    with tqdm(total=epochs * (1 if use_batched else len(seeds)), disable=not progress, mininterval=0.5,
              desc=f"{arch.name} ({len(seeds)} trial{'s' * (len(seeds) > 1)})") as bar:
        if use_batched:
            model = build_batched(arch, seeds=seeds, input_dim=X.shape[1], output_dim=Y.shape[1],
                                  dtype=tdtype, device=dev)
            rows = slice(None)
            if use_fast and not full_batch:
                ran = fastpath.run_sgd_minibatch(model, X=X, Y=Y, spec=spec, lr=lr, epochs=epochs,
                                                 batch_size=batch_size, seeds=seeds, recorder=recorder, rows=rows,
                                                 bar=bar, stop=stopper(rows))
            elif use_fast:
                ran = fastpath.run_sgd_full_batch(model, X=X, Y=Y, spec=spec, lr=lr, epochs=epochs, recorder=recorder,
                                                  rows=rows, bar=bar, backend=backend, stop=stopper(rows))
            else:
                ran = _run(model, seeds=seeds, rows=rows, bar=bar, stop=stopper(rows), **kw)
            trained = [ran] * len(seeds)
            models = tuple(model.trial(k) for k in range(len(seeds))) if keep_models else None
        else:
            models = []
            for k, s in enumerate(seeds):
                model = build(arch, input_dim=X.shape[1], output_dim=Y.shape[1], seed=s, dtype=tdtype, device=dev)
                with torch.random.fork_rng(devices=_cuda_index(dev)):
                    torch.manual_seed(s)  # dropout masks
                    rows = slice(k, k + 1)
                    ran = _run(model, seeds=(s,), rows=rows, bar=bar, stop=stopper(rows), **kw)
                    trained.append(ran)
                    recorder.hold(rows, ran)
                if keep_models:
                    models.append(model.eval())
            models = tuple(models) if keep_models else None

    recorder.truncate(max(trained) + 1)
    dh, dy, w, loss, mean = recorder.arrays()
    epochs_arr = np.arange(max(trained) + 1)
    epochs_arr.flags.writeable = False
    settings = MappingProxyType({
        **asdict(arch), "lr": lr, "epochs": epochs, "optimizer": optimizer, "batch_size": batch_size,
        "stop_loss": stop_loss, "epochs_trained": tuple(trained),
        "pair": (i, j), "layer": layers, "convention": convention, "dtype": str(tdtype).removeprefix("torch."),
        "device": str(dev), "batched": use_batched, "engine": backend if use_fast else "reference",
        "n_points": n_points, "dx_sq": float(np.sum((x[j] - x[i]) ** 2)),
        "dy_target_sq": float(np.sum((y[j] - y[i]) ** 2)),
    })
    return Recording(epochs=epochs_arr, dh_sq=dh, dy_sq=dy, w=w, loss=loss, mean_output=mean, layer=layers,
                     seeds=seeds, settings=settings, models=models)


def _run(model, *, X, Y, spec, lr, epochs, optimizer, batch_size, full_batch, recorder, seeds, rows, bar, stop):
    """Train one model (a BatchedMLP over ``seeds``, or one network) and fill ``recorder`` rows ``rows``;
    return the number of epochs trained (fewer than ``epochs`` when ``stop(e)`` said so)."""
    batched = hasattr(model, "trials")
    has_dropout = getattr(model, "dropout", 0.0) > 0
    opt = _optimizer(optimizer, model.parameters(), lr)
    n = X.shape[0]
    rngs = [np.random.default_rng(s) for s in seeds]

    def forward(xb, hidden):
        out, hs = model(xb, hidden=hidden)
        if not batched:  # give a single network's results a trial axis of length 1
            out = out.unsqueeze(0)
            hs = [h.unsqueeze(0) for h in hs] if isinstance(hs, list) else (None if hs is None else hs.unsqueeze(0))
        return out, hs

    def record(e):
        model.eval()
        with torch.no_grad():
            out, hs = forward(X, spec)
            recorder.record(rows, e, out, hs, _loss(out, Y))
        model.train()

    model.train()
    for e in range(epochs):
        if full_batch and not has_dropout:
            out, hs = forward(X, spec)  # the training pass also yields the record (no second pass)
            loss = _loss(out, Y)
            recorder.record(rows, e, out.detach(), _detach(hs), loss.detach())
            _step(opt, loss)
        else:
            record(e)
            if full_batch:
                out, _ = forward(X, None)
                _step(opt, _loss(out, Y))
            else:
                epoch_loss = 0.0
                for idx in _minibatches(rngs, n, batch_size, X.device):
                    xb, yb = (X[idx], Y[idx]) if batched else (X[idx[0]], Y[idx[0]])
                    out, _ = forward(xb, None)
                    loss = _loss(out, yb)
                    epoch_loss = epoch_loss + loss.detach() * idx.shape[1]
                    _step(opt, loss)
                recorder.loss[rows, e] = epoch_loss / n  # the epoch's minibatch losses (module docstring)
        bar.update(1)
        if stop is not None and stop(e):
            epochs = e + 1
            break
    record(epochs)
    return epochs


def _detach(hs):
    return [h.detach() for h in hs] if isinstance(hs, list) else hs.detach()


def _step(opt, loss):
    opt.zero_grad(set_to_none=True)
    loss.sum().backward()  # the sum over trials gives each trial its own gradient
    opt.step()
