"""The book's experiments as independent, deterministic store tasks, and each profile's tasks per chapter.

Every experiment here is a pure function of a small spec (Table 1 row or settings, seeds, dtype,
device, profile) registered with :func:`repalign.store.register` and a result version; it calls only
the public functions of :mod:`repalign.experiments` and :mod:`repalign.train` and returns plain arrays.
The trials of one task are the seeds the chapter trains together (the kernel runs them as one batched
computation), so a stored task holds exactly the numbers the chapter computes; the spec names each seed.

``two_point`` (chapters 2 and 3)
    :func:`repalign.experiments.run_two_point`: the recording (``dh_sq, dy_sq, w, loss, mean_output``,
    ``epochs``), eq. (7) fitted per trial (``rates`` = ``rate_h, rate_y, rate_ybar``, ``errors``,
    ``loss_errors``, ``z_theory``, ``loss_theory``, ``fit_success``).
``grid_cell`` (chapter 3, Fig. 5)
    One cell of the distance grid: training at ``(dx_sq, dy_target_sq)`` until the loss is below
    ``stop_loss``; ``measured`` is ``||dh||^2`` at the first record below it, with ``dh_sq0, dy_sq0``
    (what eq. (10) needs, with a rate ratio fitted elsewhere), ``final_loss`` and ``epochs_trained``.
``depth`` (chapter 7, Fig. 10)
    The default network with every hidden layer recorded and eq. (7) fitted per layer
    (:func:`repalign.experiments.fit_layers`).
``mnist`` (chapter 6, Figs. 4, 9 and 16)
    Table 2's MNIST row trained in minibatches on the first ``n_train`` training images, SGD or Adam
    (:func:`mnist_task`, :func:`mnist_tasks`): the tracked pair's recording with eq. (7) fitted per trial
    (as ``two_point`` stores them, without the loss fits), the ``sq_distances`` of the ``n_probe`` probe
    images' hidden representations per trial, and each network's ``test_accuracy`` on the 10,000 test
    images. :func:`mnist_run` joins the tasks of one run into an :class:`MNISTRun`.
``pairwise`` (chapter 4, Figs. 6 and 14)
    One XOR network (every field of its architecture in the spec) trained with its seeds:
    :func:`repalign.experiments.pairwise_training`, the squared distances of every pair of points at
    the hidden layer and the output before training and at the hidden layer after (``initial,
    initial_output, measured``) and ``final_loss``. Eq. (10) needs a rate ratio from another task, so
    :func:`pairwise_run` evaluates it on loading.
``blobs`` (chapter 5, Figs. 8, 12 and 15)
    One blob network with its seeds: :func:`repalign.experiments.run_blobs`, the final hidden
    representation of all points (``hidden``, what MDS embeds), the loss curve and the measures.

Chapters 4, 5 and 6 flush subnormal floats to zero; their tasks do so as well, and every other task
does not, whatever the calling process has set (:func:`_pinned_torch`).

Chapter 3, 4 and 5's tasks grouped by role: :func:`rich_lazy_tasks`, :func:`xor_tasks`,
:func:`blob_tasks`; :data:`CHAPTERS` lists each chapter's tasks flat.

>>> [t.label() for t in chapter_tasks("07_depth", "quick")]
['depth(name=default, width=100, lr=0.05, epochs=3000, seeds=0..2, dtype=float32, device=cpu)']
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

import numpy as np

from . import data, experiments, fastpath, fit, geometry, profiles, train
from .store import Task, _plain, register

__all__ = ["CHAPTERS", "chapter_tasks", "plan", "two_point_task", "grid_cell_task", "depth_task", "two_point_run",
           "depth_architecture", "layer_fits", "rich_lazy_tasks", "distance_grid", "spec_architecture",
           "pairwise_task", "pairwise_run", "xor_architecture", "xor_tasks", "blobs_task", "blob_run", "blob_tasks",
           "MNIST_SEEDS_PER_TASK", "mnist_task", "mnist_tasks", "MNISTRun", "mnist_run"]


def _seeds(spec: Mapping[str, Any]) -> list[int]:
    seeds = [int(s) for s in spec["seeds"]]
    if not seeds or seeds != list(range(seeds[0], seeds[0] + len(seeds))) or seeds[0] < 0:
        raise ValueError(f"`seeds` must be consecutive non-negative integers, got {spec['seeds']!r}")
    return seeds


def _pinned_torch(function, *, flush_denormal: bool = False):
    """Run ``function`` with one torch thread and subnormals flushed or not as ``flush_denormal``, both
    restored afterwards. The compiled kernel's results do not depend on its thread count, but torch's
    float32 reductions do (the convolutional row's fit error is 0.0801 at 2 threads, 0.0794 at 1), and
    flushing subnormals changes a step by about 1e-11 relative: pinning both makes a task's result the
    same in a notebook (chapters 4, 5 and 6 flush), a local worker or a cluster worker, whatever the
    machine's core count or the process's state."""

    @functools.wraps(function)
    def pinned(spec):
        import torch

        from .numerics import flush_denormal as flushing

        with flushing(flush_denormal):  # outermost: restored on every thread of the restored team
            old = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                return function(spec)
            finally:
                torch.set_num_threads(old)

    return pinned


def _one_torch_thread(function):
    """:func:`_pinned_torch` without flushing subnormals (the two-point chapters' setting)."""
    return _pinned_torch(function, flush_denormal=False)


def _flushed_one_torch_thread(function):
    """:func:`_pinned_torch` with subnormals flushed (the setting of chapters 4, 5 and 6, whose small-weight
    networks and Adam moments would otherwise run about ten times slower)."""
    return _pinned_torch(function, flush_denormal=True)


# --- stored forms -----------------------------------------------------------------------------------------

# The stored form of a Recording and of its eq. (7) fits, shared by every task that keeps them.

def _recording_arrays(rec: train.Recording) -> dict[str, np.ndarray]:
    """``rec`` (without its models) as plain arrays; :func:`_recording` reads them back."""
    return {"seeds": np.array(rec.seeds), "epochs": rec.epochs, "dh_sq": rec.dh_sq, "dy_sq": rec.dy_sq, "w": rec.w,
            "loss": rec.loss, "mean_output": rec.mean_output, "layer": np.array(rec.layer),
            "settings_json": np.array(json.dumps(dict(rec.settings), sort_keys=True))}


def _settings(arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The Recording settings stored in ``arrays["settings_json"]`` (lists read back as tuples)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(str(arrays["settings_json"])).items()}


def _recording(a: Mapping[str, np.ndarray], settings: Mapping[str, Any] | None = None) -> train.Recording:
    """The :class:`repalign.train.Recording` stored by :func:`_recording_arrays` (``models`` None)."""
    settings = _settings(a) if settings is None else settings
    return train.Recording(a["epochs"], a["dh_sq"], a["dy_sq"], a["w"], a["loss"], a["mean_output"], int(a["layer"]),
                           tuple(int(s) for s in a["seeds"]), MappingProxyType(dict(settings)))


def _fit_arrays(fits, loss_fits=None) -> dict[str, np.ndarray]:
    """The eq. (7) fits of every trial (and the loss fits of eq. (9), if given) as plain arrays:
    ``rates`` holds ``rate_h, rate_y`` (and ``rate_ybar``) per trial; :func:`_fits` reads them back."""
    out = {"rates": np.array([[f.rate_h, f.rate_y] for f in fits]), "errors": np.array([f.error for f in fits]),
           "z_theory": np.stack([f.z_theory for f in fits]), "z0": np.stack([f.z0 for f in fits]),
           "fit_success": np.array([f.success for f in fits]), "projected": np.array([f.projected for f in fits]),
           "fit_message": np.array([f.message for f in fits])}
    if loss_fits is not None:
        out["rates"] = np.array([[f.rate_h, f.rate_y, lf.rate_ybar] for f, lf in zip(fits, loss_fits)])
        out.update({"loss_errors": np.array([f.error for f in loss_fits]),
                    "loss_theory": np.stack([f.loss_theory for f in loss_fits]),
                    "loss_fit_success": np.array([f.success for f in loss_fits])})
    return out


def _fits(a: Mapping[str, np.ndarray]) -> list[fit.RateFit]:
    """The :class:`repalign.fit.RateFit` of every trial stored by :func:`_fit_arrays`."""
    return [fit.RateFit(float(r[0]), float(r[1]), z, float(e), bool(ok), z0, bool(pr), str(m))
            for r, z, e, ok, z0, pr, m in zip(a["rates"], a["z_theory"], a["errors"], a["fit_success"], a["z0"],
                                              a["projected"], a["fit_message"])]


# --- experiments ------------------------------------------------------------------------------------------

def _fused_two_points(arch: profiles.Architecture, optimizer: str, device: str) -> bool:
    """Whether ``arch`` trains on the two points through the fused MLP passes of
    :mod:`repalign.fastpath` (dropout, Adam, any MLP on a GPU; not the CPU kernel, not the conv net),
    whose two-row input gradient changed form (and float32 rounding) at the versions named below."""
    import torch

    engine = fastpath.select_engine("auto", variant=arch.variant, optimizer=optimizer, batched=True,
                                    full_batch=True, device=torch.device(device), activation=arch.activation)
    return engine == "fused" and arch.variant != "conv"


def _two_point_version(spec: Mapping[str, Any]) -> int:
    arch = profiles.architecture(spec["name"], spec["profile"])
    return 4 if _fused_two_points(arch, spec.get("optimizer", "sgd"), spec.get("device", "cpu")) else 3


def _grid_cell_version(spec: Mapping[str, Any]) -> int:
    arch = profiles.architecture(spec["name"], spec["profile"])
    return 3 if _fused_two_points(arch, "sgd", spec.get("device", "cpu")) else 2


def _depth_version(spec: Mapping[str, Any]) -> int:
    return 2 if _fused_two_points(depth_architecture(spec), "sgd", spec.get("device", "cpu")) else 1


# version 3: conv and dropout rows train on the fused fast path (float32 rounding differs from the
# reference's; in float64 they agree to rounding error, tests/test_fastpath.py). Version 4, for the
# specs on the fused MLP passes only (dropout, Adam, GPU; _two_point_version): their input gradient at
# two points is taken as g W^T, not (W g^T)^T (measured 3-4x faster per layer on the CPU); the kernel's
# and the conv net's specs keep version 3 and their stored results.
@register("two_point", version=3, chapter="02_universal_dynamics", version_for=_two_point_version)
@_one_torch_thread
def _two_point(spec: Mapping[str, Any]) -> dict[str, np.ndarray]:
    seeds = _seeds(spec)
    run = experiments.run_two_point(spec["name"], profile=spec["profile"], trials=len(seeds), seed=seeds[0],
                                    optimizer=spec["optimizer"], lr=spec["lr"], epochs=spec["epochs"],
                                    dtype=spec["dtype"], device=spec["device"], progress=False)
    return {**_recording_arrays(run.recording), **_fit_arrays(run.fits, run.loss_fits)}


def two_point_run(result) -> experiments.TwoPointRun:
    """The :class:`repalign.experiments.TwoPointRun` of a stored ``two_point`` result, as
    :func:`~repalign.experiments.run_two_point` returned it (``seconds`` is the task's wall time)."""
    a, spec = result.arrays, result.task.spec
    if result.task.experiment != "two_point":
        raise ValueError(f"`result` must be of a two_point task, got {result.task.experiment!r}")
    loss_fits = [fit.LossFit(float(r[2]), lt, float(e), bool(ok))
                 for r, lt, e, ok in zip(a["rates"], a["loss_theory"], a["loss_errors"], a["loss_fit_success"])]
    arch = profiles.architecture(spec["name"], spec["profile"])
    return experiments.TwoPointRun(spec["name"], arch, _recording(a), _fits(a), loss_fits,
                                   float(result.provenance.get("wall_seconds", np.nan)))


# version 2: conv and dropout cells train on the fused fast path (as two_point version 3); version 3 for
# the cells on the fused MLP passes (dropout, GPU), as two_point version 4
@register("grid_cell", version=2, chapter="03_rich_lazy", version_for=_grid_cell_version)
@_one_torch_thread
def _grid_cell(spec: Mapping[str, Any]) -> dict[str, np.ndarray]:
    seeds = _seeds(spec)
    arch = profiles.architecture(spec["name"], spec["profile"])
    return experiments.grid_cell(arch, spec["dx_sq"], spec["dy_target_sq"], seeds=seeds, lr=spec["lr"],
                                 epochs=spec["epochs"], stop_loss=spec["stop_loss"], dtype=spec["dtype"],
                                 device=spec["device"], progress=False)


def distance_grid(results, tau_y_over_tau_h: float, *, drop_loss: float = 1e-3) -> experiments.DistanceGrid:
    """The :class:`repalign.experiments.DistanceGrid` of stored ``grid_cell`` results of one architecture
    (:func:`repalign.experiments.grid_from_cells`; ``seconds`` is the cells' summed wall time), as
    :func:`~repalign.experiments.distance_grid` returns it for the same cells in the same order."""
    results = list(results)
    if not results or any(r.task.experiment != "grid_cell" for r in results):
        raise ValueError("`results` must be a non-empty list of grid_cell results")
    names = {r.task.spec["name"] for r in results}
    if len(names) != 1:
        raise ValueError(f"`results` must be cells of one architecture, got {sorted(names)}")
    cells = [(r.task.spec["dx_sq"], r.task.spec["dy_target_sq"], r.arrays) for r in results]
    seconds = float(sum(r.provenance.get("wall_seconds", np.nan) for r in results))
    return experiments.grid_from_cells(names.pop(), tau_y_over_tau_h, cells, drop_loss=drop_loss, seconds=seconds)


# version 2 for a depth run on the fused MLP passes (a GPU), as two_point version 4
@register("depth", version=1, chapter="07_depth", version_for=_depth_version)
@_one_torch_thread
def _depth(spec: Mapping[str, Any]) -> dict[str, np.ndarray]:
    seeds = _seeds(spec)
    arch = depth_architecture(spec)
    d = data.two_point()
    rec = train.train(arch, d.x, d.y, trials=len(seeds), seed=seeds[0], layer="all", dtype=spec["dtype"],
                      device=spec["device"], progress=False)
    layers = experiments.fit_layers(rec)
    return {"seeds": np.array(rec.seeds), "epochs": rec.epochs, "dh_sq": rec.dh_sq, "dy_sq": rec.dy_sq, "w": rec.w,
            "loss": rec.loss, "layers": layers.layers, "error": layers.error, "rate_h": layers.rate_h,
            "rate_y": layers.rate_y, "success": layers.success, "dh_sq0": layers.dh_sq0}


def depth_architecture(spec: Mapping[str, Any]) -> profiles.Architecture:
    """The network a ``depth`` task trains: Table 1 row ``spec["name"]`` at the spec's width, lr and epochs."""
    if spec.get("name") not in profiles.TABLE1:
        raise ValueError(f"`name` must be one of {', '.join(profiles.TABLE1)}; got {spec.get('name')!r}")
    return replace(profiles.TABLE1[spec["name"]], width=int(spec["width"]), lr=float(spec["lr"]),
                   epochs=int(spec["epochs"]))


def layer_fits(result) -> experiments.LayerFits:
    """The :class:`repalign.experiments.LayerFits` of a stored ``depth`` result, as
    :func:`~repalign.experiments.fit_layers` returned it."""
    if result.task.experiment != "depth":
        raise ValueError(f"`result` must be of a depth task, got {result.task.experiment!r}")
    a = result.arrays
    return experiments.LayerFits(a["layers"], a["error"], a["rate_h"], a["rate_y"], a["success"].astype(bool),
                                 a["dh_sq0"])


# --- task constructors ------------------------------------------------------------------------------------

def _common(profile, seed, trials, dtype, device):
    return {"profile": profile, "seeds": list(range(seed, seed + trials)), "dtype": dtype, "device": device}


def two_point_task(name: str, *, profile: str, seed: int = 0, trials: int = 1, optimizer: str = "sgd",
                   lr: float | None = None, epochs: int | None = None, dtype: str = "float32",
                   device: str = "cpu") -> Task:
    """The task of ``experiments.run_two_point(name, profile=..., trials=..., seed=..., ...)``."""
    if name not in profiles.TABLE1:
        raise ValueError(f"`name` must be one of {', '.join(profiles.TABLE1)}; got {name!r}")
    return Task("two_point", {"name": name, **_common(profile, seed, trials, dtype, device), "optimizer": optimizer,
                              "lr": lr, "epochs": epochs})


def grid_cell_task(name: str, dx_sq: float, dy_target_sq: float, *, profile: str, seeds, lr: float, epochs: int,
                   stop_loss: float, dtype: str = "float32", device: str = "cpu") -> Task:
    """One Fig. 5 grid cell of Table 1 row ``name`` (all ``seeds`` trained together)."""
    seeds = list(seeds)
    return Task("grid_cell", {"name": name, **_common(profile, seeds[0], len(seeds), dtype, device),
                              "dx_sq": float(dx_sq), "dy_target_sq": float(dy_target_sq), "lr": float(lr),
                              "epochs": int(epochs), "stop_loss": float(stop_loss)})


def depth_task(name: str, *, profile: str, width: int, lr: float, epochs: int, seed: int = 0, trials: int = 1,
               dtype: str = "float32", device: str = "cpu") -> Task:
    """Chapter 7's run: Table 1 row ``name`` at ``width``, ``lr``, ``epochs``, every hidden layer recorded."""
    if name not in profiles.TABLE1:
        raise ValueError(f"`name` must be one of {', '.join(profiles.TABLE1)}; got {name!r}")
    return Task("depth", {"name": name, "width": int(width), "lr": float(lr), "epochs": int(epochs),
                          **_common(profile, seed, trials, dtype, device)})


# --- chapters 4 and 5: XOR (pairwise) and blobs ----------------------------------------------------------
# Their networks are given in full in the spec ("arch": every field of profiles.Architecture), so a
# task names exactly what it trains; the chapters' variants (another gain, activation or optimizer)
# are tasks like any other.

_ARCH_FIELDS = tuple(f.name for f in dataclasses.fields(profiles.Architecture))


def _arch_spec(arch: profiles.Architecture) -> dict[str, Any]:
    return dataclasses.asdict(arch)


def spec_architecture(spec: Mapping[str, Any]) -> profiles.Architecture:
    """The :class:`repalign.profiles.Architecture` that ``spec["arch"]`` (every field by name) describes.

    Raises
    ------
    ValueError
        If ``spec["arch"]`` is missing, lacks a field or has an unknown one.
    """
    arch = spec.get("arch")
    if not isinstance(arch, Mapping) or set(arch) != set(_ARCH_FIELDS):
        got = sorted(arch) if isinstance(arch, Mapping) else arch
        raise ValueError(f"`spec['arch']` must map exactly the fields {', '.join(_ARCH_FIELDS)}; got {got!r}")
    return profiles.Architecture(**{k: arch[k] for k in _ARCH_FIELDS})


def _settings_json(settings: Mapping[str, Any]) -> np.ndarray:
    return np.array(json.dumps(_plain(settings), sort_keys=True))


def _read_settings(result) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(str(result["settings_json"])).items()}


def _check_data(spec: Mapping[str, Any], name: str) -> None:
    if spec.get("data") != name:
        raise ValueError(f"`spec['data']` must be {name!r} (the only dataset of this experiment); got "
                         f"{spec.get('data')!r}")


@register("pairwise", version=1, chapter="04_xor")
@_flushed_one_torch_thread
def _pairwise(spec: Mapping[str, Any]) -> dict[str, np.ndarray]:
    _check_data(spec, "xor")
    seeds, arch = _seeds(spec), spec_architecture(spec)
    x, y = data.xor()
    arrays, settings = experiments.pairwise_training(arch, x, y, seeds=seeds, layer=spec["layer"],
                                                     optimizer=spec["optimizer"], lr=spec["lr"],
                                                     epochs=spec["epochs"], dtype=spec["dtype"], device=spec["device"])
    return {"seeds": np.array(settings["seeds"]), **arrays, "settings_json": _settings_json(settings)}


def pairwise_run(result, tau_y_over_tau_h: float, *, name: str | None = None) -> experiments.PairwiseRun:
    """The :class:`repalign.experiments.PairwiseRun` of a stored ``pairwise`` result with the rate ratio
    ``tau_y_over_tau_h``, as :func:`~repalign.experiments.run_pairwise` returns it (``name`` defaults to
    the architecture's)."""
    if result.task.experiment != "pairwise":
        raise ValueError(f"`result` must be of a pairwise task, got {result.task.experiment!r}")
    arch = spec_architecture(result.task.spec)
    x, y = data.xor()
    return experiments.pairwise_run(arch.name if name is None else name, arch, x, y, result.arrays,
                                    _read_settings(result), tau_y_over_tau_h=tau_y_over_tau_h)


def pairwise_task(arch: profiles.Architecture, *, profile: str, seed: int = 0, trials: int = 1,
                  optimizer: str = "sgd", lr: float | None = None, epochs: int | None = None,
                  layer: int | None = None, dtype: str = "float32", device: str = "cpu") -> Task:
    """The task of ``experiments.run_pairwise(..., arch, *data.xor(), seeds=..., ...)`` without the
    prediction (which needs a rate ratio: :func:`pairwise_run`)."""
    if not isinstance(arch, profiles.Architecture):
        raise TypeError(f"`arch` must be a profiles.Architecture, got {type(arch).__name__}")
    return Task("pairwise", {"arch": _arch_spec(arch), "data": "xor", **_common(profile, seed, trials, dtype, device),
                             "optimizer": optimizer, "lr": lr, "epochs": epochs, "layer": layer})


def xor_architecture(row: str, profile: str | None = None, **change) -> profiles.Architecture:
    """Table 2 XOR row ``row`` as chapter 4 runs it: the 20-layer, 500-unit rows at the profile's width
    with the learning rate scaled by its ``lr_factor`` (the 2-layer row exactly), then ``change``."""
    cfg = profiles.settings("xor", profile)
    if row not in profiles.TABLE2 or not row.startswith("xor"):
        raise ValueError(f"`row` must be an XOR row of profiles.TABLE2 "
                         f"({', '.join(k for k in profiles.TABLE2 if k.startswith('xor'))}); got {row!r}")
    arch = profiles.TABLE2[row]
    if arch.hidden_layers > 1:
        arch = replace(arch, width=cfg["width"], lr=arch.lr * cfg["lr_factor"])
    return replace(arch, **change)


def xor_tasks(profile: str | None = None, *, dtype: str = "float32", device: str = "cpu") -> dict[str, Any]:
    """Chapter 4's tasks by role: ``"rate"`` (the default network's two-point run that gives
    ``tau_y/tau_h``), ``"sgd"`` ({network name: pairwise task}: Table 2's rows and the low row at the
    released code's gain and epochs, ``xor_low_code``), ``"released_code"`` (that row with ReLU and the
    loss without 1/2) and ``"adam"`` ({network name: pairwise task})."""
    cfg = profiles.settings("xor", profile)
    profile = cfg["profile"]
    common = {"profile": profile, "seed": cfg["seed"], "trials": cfg["trials"], "dtype": dtype, "device": device}
    nets = {"xor_low": xor_architecture("xor_low", profile),
            "xor_low_code": xor_architecture("xor_low", profile, name="xor_low_code", **cfg["low_code"]),
            **{row: xor_architecture(row, profile) for row in ("xor_intermediate", "xor_high", "xor_2_layers")}}
    code = replace(nets["xor_low_code"], name="xor_low_released_code", activation="relu",
                   lr=2 * nets["xor_low_code"].lr)
    return {"rate": two_point_task("default", profile=profile, seed=cfg["seed"], trials=cfg["rate_trials"],
                                   dtype=dtype, device=device),
            "sgd": {name: pairwise_task(arch, **common) for name, arch in nets.items()},
            "released_code": pairwise_task(code, **common),
            "adam": {name: pairwise_task(nets[name], optimizer="adam", lr=cfg["adam_lr"][name],
                                         epochs=cfg["adam_epochs"][name], **common) for name in cfg["adam_lr"]}}


def _xor(profile, dtype, device):
    groups = xor_tasks(profile, dtype=dtype, device=device)
    return [groups["rate"], *groups["sgd"].values(), groups["released_code"], *groups["adam"].values()]


@register("blobs", version=1, chapter="05_feature_collapse")
@_flushed_one_torch_thread
def _blobs(spec: Mapping[str, Any]) -> dict[str, np.ndarray]:
    _check_data(spec, "blobs")
    seeds, arch = _seeds(spec), spec_architecture(spec)
    run = experiments.run_blobs(arch.name, arch, data.blobs(), seeds=seeds, batch_size=spec["batch_size"],
                                layer=spec["layer"], optimizer=spec["optimizer"], lr=spec["lr"], epochs=spec["epochs"],
                                dtype=spec["dtype"], device=spec["device"])
    return {"seeds": np.array(run.settings["seeds"]), "hidden": run.hidden, "loss": run.loss, "shares": run.shares,
            "gap": run.gap, "pc1": run.pc1, "settings_json": _settings_json(run.settings)}


def blob_run(result) -> experiments.BlobRun:
    """The :class:`repalign.experiments.BlobRun` of a stored ``blobs`` result, as
    :func:`~repalign.experiments.run_blobs` returned it (``seconds`` is the task's wall time)."""
    if result.task.experiment != "blobs":
        raise ValueError(f"`result` must be of a blobs task, got {result.task.experiment!r}")
    a, arch = result.arrays, spec_architecture(result.task.spec)
    return experiments.BlobRun(arch.name, arch, _read_settings(result), a["hidden"], a["loss"], a["shares"], a["gap"],
                               a["pc1"], float(result.provenance.get("wall_seconds", np.nan)))


def blobs_task(arch: profiles.Architecture, *, profile: str, seed: int = 0, trials: int = 1, batch_size: int = 64,
               layer: int = 3, optimizer: str = "sgd", lr: float | None = None, epochs: int | None = None,
               dtype: str = "float32", device: str = "cpu") -> Task:
    """The task of ``experiments.run_blobs(arch.name, arch, data.blobs(), seeds=..., ...)``."""
    if not isinstance(arch, profiles.Architecture):
        raise TypeError(f"`arch` must be a profiles.Architecture, got {type(arch).__name__}")
    return Task("blobs", {"arch": _arch_spec(arch), "data": "blobs", **_common(profile, seed, trials, dtype, device),
                          "batch_size": int(batch_size), "layer": int(layer), "optimizer": optimizer, "lr": lr,
                          "epochs": epochs})


def blob_tasks(profile: str | None = None, *, dtype: str = "float32", device: str = "cpu") -> dict[str, Any]:
    """Chapter 5's tasks by role: ``"rows"`` ({Table 2 row: task}, the paper's tanh networks),
    ``"leaky"`` (the low row with leaky ReLU, as the released code ran) and ``"adam"`` ({row: task})."""
    cfg = profiles.settings("blobs", profile)
    common = {"profile": cfg["profile"], "seed": cfg["seed"], "batch_size": cfg["batch_size"], "layer": cfg["layer"],
              "dtype": dtype, "device": device}
    row = profiles.TABLE2
    return {"rows": {r: blobs_task(row[r], trials=cfg["seeds"], **common) for r in cfg["rows"]},
            "leaky": blobs_task(replace(row["blobs_low"], activation="leaky_relu"), trials=cfg["variant_seeds"],
                                **common),
            "adam": {r: blobs_task(row[r], trials=cfg["variant_seeds"], optimizer="adam", lr=cfg["adam_lr"],
                                   epochs=cfg["adam_epochs"], **common) for r in cfg["adam_rows"]}}


def _blob_tasks(profile, dtype, device):
    groups = blob_tasks(profile, dtype=dtype, device=device)
    return [*groups["rows"].values(), groups["leaky"], *groups["adam"].values()]


# --- a profile's tasks per chapter -----------------------------------------------------------------------

def _universal(profile, dtype, device):
    cfg = profiles.settings("universal", profile)
    out = [two_point_task(name, profile=profile, seed=cfg["seed"], trials=cfg["trials"].get(name, cfg["trials_other"]),
                          dtype=dtype, device=device) for name in cfg["architectures"]]
    adam = cfg["adam"]
    out.append(two_point_task(adam["arch"], profile=profile, seed=cfg["seed"], trials=adam["trials"], optimizer="adam",
                              lr=adam["lr"], epochs=adam["epochs"], dtype=dtype, device=device))
    return out


def rich_lazy_tasks(profile: str | None = None, *, dtype: str = "float32",
                    device: str = "cpu") -> dict[str, Any]:
    """Chapter 3's tasks by role: ``{"gain": [two_point task per Fig. 3 row], "rates": {name: two_point
    task}, "grid": {name: [grid_cell task per cell, dx_sq outer, dy_target_sq inner]}, "code_grid": {name:
    [the same grid read as the released code reads it: dx_sq = dx**2, dy_target_sq = dy**2]}}`` (names: the
    Fig. 5 architectures; ``code_grid`` only for the profile's ``code_reading_architectures``). A cell
    both readings share (e.g. 1.0 and 0.0) is the same task."""
    cfg = profiles.settings("rich_lazy", profile)
    profile, seed = cfg["profile"], cfg["seed"]
    out = {"gain": [two_point_task(name, profile=profile, seed=seed, trials=cfg["gain_trials"], dtype=dtype,
                                   device=device) for name in cfg["gain_rows"]], "rates": {}, "grid": {},
           "code_grid": {}}
    for name in cfg["fig5_architectures"]:
        out["rates"][name] = two_point_task(name, profile=profile, seed=seed, trials=cfg["rate_trials"], dtype=dtype,
                                            device=device)
        arch = profiles.architecture(name, profile)
        seeds, lr = range(seed + 1000, seed + 1000 + cfg["grid_seeds"]), cfg["grid_lr_factor"] * arch.lr
        readings = {"grid": (cfg["grid_dx_sq"], cfg["grid_dy_sq"])}
        if name in cfg["code_reading_architectures"]:
            readings["code_grid"] = ([a * a for a in cfg["grid_dx_sq"]], [b * b for b in cfg["grid_dy_sq"]])
        for role, (dx_values, dy_values) in readings.items():
            out[role][name] = [grid_cell_task(name, a, b, profile=profile, seeds=seeds, lr=lr,
                                              epochs=cfg["grid_epochs"], stop_loss=cfg["stop_loss"], dtype=dtype,
                                              device=device)
                               for a in dx_values for b in dy_values]
    return out


def _rich_lazy(profile, dtype, device):
    groups = rich_lazy_tasks(profile, dtype=dtype, device=device)
    out = list(groups["gain"])
    for name, rate in groups["rates"].items():
        grid = groups["grid"][name]
        out += [rate, *grid, *(t for t in groups["code_grid"].get(name, []) if t not in grid)]  # shared cells once
    return out


def _depth_tasks(profile, dtype, device):
    cfg = profiles.settings("depth", profile)
    return [depth_task(cfg["arch"], profile=profile, width=cfg["width"], lr=cfg["lr"], epochs=cfg["epochs"],
                       seed=cfg["seed"], trials=cfg["trials"], dtype=dtype, device=device)]



def _chapter_key(chapter: str | int) -> str:
    text = f"{int(chapter):02d}" if isinstance(chapter, int) or str(chapter).isdigit() else str(chapter)
    hits = [k for k in CHAPTERS if k == text or k.startswith(f"{text}_")]
    if len(hits) != 1:
        raise ValueError(f"`chapter` must be one of {', '.join(CHAPTERS)} (or its number); got {chapter!r}")
    return hits[0]


def chapter_tasks(chapter: str | int, profile: str | None = None, *, dtype: str = "float32",
                  device: str = "cpu") -> list[Task]:
    """The tasks chapter ``chapter`` (key or number, e.g. ``2``) runs under ``profile`` (default: current)."""
    profile = profiles.settings("universal", profile)["profile"]  # validates the name
    return CHAPTERS[_chapter_key(chapter)](profile, dtype, device)


def plan(profile: str | None = None, chapter: str | int | None = None, *, dtype: str = "float32",
         device: str = "cpu") -> dict[str, list[Task]]:
    """Chapter key -> its tasks, for one chapter or every chapter that has tasks (duplicates kept once:
    a task two chapters share is listed under the first)."""
    keys = list(CHAPTERS) if chapter is None else [_chapter_key(chapter)]
    seen, out = set(), {}
    for key in keys:
        out[key] = [t for t in chapter_tasks(key, profile, dtype=dtype, device=device)
                    if not (t in seen or seen.add(t))]
    return out


# --- chapter 6: MNIST (Figs. 4, 9, 16) ---------------------------------------------------------------------

#: Seeds per ``mnist`` task: the paper profile's 50 SGD trials x 500 epochs on 60,000 images (and its 50
#: Adam trials) split into 10 + 10 tasks, each a few CPU-hours at most; the quick profile's 4 + 2 trials
#: are one task each, trained together exactly as the chapter did before it used the store.
MNIST_SEEDS_PER_TASK = 5


# epochs_field: the minibatch loop draws each epoch's permutations from the trials' seeds and looks no
# further ahead, so a 10-epoch run repeats a 500-epoch run's first 10 records (tests/test_tasks_mnist.py)
@register("mnist", version=1, chapter="06_mnist", epochs_field="epochs",
          records=("dh_sq", "dy_sq", "w", "loss", "mean_output"))
@_flushed_one_torch_thread
def _mnist(spec: Mapping[str, Any]) -> dict[str, np.ndarray]:
    seeds = _seeds(spec)
    train_set = data.mnist("train", progress=False)
    n, n_probe, layer = spec["n_train"], spec["n_probe"], spec["layer"]
    if not isinstance(n, int) or not 1 <= n <= len(train_set):
        raise ValueError(f"`n_train` must be an integer in [1, {len(train_set)}], got {n!r}")
    if not isinstance(n_probe, int) or not 1 <= n_probe <= n:
        raise ValueError(f"`n_probe` must be an integer in [1, n_train={n}], got {n_probe!r}")
    x, y = train_set.x[:n], train_set.y[:n]
    rec = train.train(profiles.TABLE2[spec["row"]], x, y, seeds=seeds, optimizer=spec["optimizer"], lr=spec["lr"],
                      epochs=spec["epochs"], batch_size=spec["batch_size"], pair=tuple(spec["pair"]), layer=layer,
                      keep_models=True, dtype=spec["dtype"], device=spec["device"], progress=False)
    probe = experiments.sorted_first(train_set.labels, n_probe)
    test_set = data.mnist("test", progress=False)
    return {**_recording_arrays(rec), **_fit_arrays(fit.fit_recording(rec)), "probe": probe,
            "sq_distances": geometry.sq_distances(experiments.representations(rec.models, x[probe], layer)),
            "test_accuracy": experiments.accuracy(rec.models, test_set.x, test_set.labels)}


def mnist_task(*, profile: str, seed: int = 0, trials: int = 1, optimizer: str = "sgd", lr: float, epochs: int,
               n_train: int, batch_size: int, row: str = "mnist", pair=(1, 3), layer: int = 3, n_probe: int = 100,
               dtype: str = "float32", device: str = "cpu") -> Task:
    """Chapter 6's run: Table 2 row ``row`` trained on the first ``n_train`` MNIST training images in
    minibatches of ``batch_size`` (trials ``seed .. seed + trials - 1`` together), tracking ``pair`` at
    hidden layer ``layer``; the result also holds the squared layer-``layer`` distances of the first
    ``n_probe`` images sorted by label (Fig. 9) and each network's accuracy on the MNIST test split."""
    if row not in profiles.TABLE2:
        raise ValueError(f"`row` must be one of {', '.join(profiles.TABLE2)}; got {row!r}")
    return Task("mnist", {"row": row, **_common(profile, seed, trials, dtype, device), "optimizer": optimizer,
                          "lr": float(lr), "epochs": int(epochs), "n_train": int(n_train),
                          "batch_size": int(batch_size), "pair": list(pair), "layer": int(layer),
                          "n_probe": int(n_probe)})


def mnist_tasks(profile: str | None = None, *, adam: bool = False, dtype: str = "float32",
                device: str = "cpu") -> list[Task]:
    """Chapter 6's SGD run (or, with ``adam``, its Adam run) under ``profile``, as tasks of
    :data:`MNIST_SEEDS_PER_TASK` consecutive seeds (the last may hold fewer)."""
    cfg = profiles.settings("mnist", profile)
    trials = cfg["adam_trials"] if adam else cfg["trials"]
    kw = {"optimizer": "adam", "lr": cfg["adam_lr"], "epochs": cfg["adam_epochs"]} if adam else {
        "lr": cfg["lr"], "epochs": cfg["epochs"]}
    return [mnist_task(profile=cfg["profile"], seed=cfg["seed"] + k, trials=min(MNIST_SEEDS_PER_TASK, trials - k),
                       n_train=cfg["n_train"], batch_size=cfg["batch_size"], row=cfg["row"], pair=cfg["pair"],
                       layer=cfg["layer"], n_probe=cfg["n_probe"], dtype=dtype, device=device, **kw)
            for k in range(0, trials, MNIST_SEEDS_PER_TASK)]


@dataclass(frozen=True, eq=False)
class MNISTRun:
    """The stored ``mnist`` tasks of one run, their trials concatenated in seed order.

    Attributes
    ----------
    recording : repalign.train.Recording
        The tracked pair at every epoch (``models`` None).
    fits : list of repalign.fit.RateFit
        Eq. (7) fitted to each trial (:func:`repalign.fit.fit_recording`).
    probe : numpy.ndarray, shape (n_probe,)
        Indices of the probe images (:func:`repalign.experiments.sorted_first`).
    sq_distances : numpy.ndarray, shape (trials, n_probe, n_probe)
        Squared distances of the probe images' hidden representations, per trial.
    test_accuracy : numpy.ndarray, shape (trials,)
        Each trained network's accuracy on the 10,000 MNIST test images.
    seconds : float
        The tasks' summed wall time.
    """

    recording: train.Recording
    fits: list
    probe: np.ndarray
    sq_distances: np.ndarray
    test_accuracy: np.ndarray
    seconds: float


def mnist_run(results) -> MNISTRun:
    """The :class:`MNISTRun` of stored ``mnist`` results of one run (e.g. every task of
    :func:`mnist_tasks`), whose specs differ only in their seeds."""
    results = sorted(results, key=lambda r: r.task.spec["seeds"][0])
    if not results or any(r.task.experiment != "mnist" for r in results):
        raise ValueError("`results` must be a non-empty sequence of mnist task results")
    same = [{k: v for k, v in r.task.spec.items() if k != "seeds"} for r in results]
    if any(s != same[0] for s in same):
        raise ValueError("`results` must come from one run: their specs may differ only in their seeds")
    settings = [_settings(r.arrays) for r in results]
    trained = sum((s.pop("epochs_trained") for s in settings), ())
    first = results[0].arrays
    shared = ("epochs", "layer", "probe")
    arrays = {k: first[k] if k in shared else np.concatenate([r.arrays[k] for r in results])
              for k in first if k != "settings_json"}
    return MNISTRun(_recording(arrays, {**settings[0], "epochs_trained": trained}), _fits(arrays), arrays["probe"],
                    arrays["sq_distances"], arrays["test_accuracy"],
                    float(sum(r.provenance.get("wall_seconds", np.nan) for r in results)))


def _mnist_chapter(profile, dtype, device):
    return mnist_tasks(profile, dtype=dtype, device=device) + mnist_tasks(profile, adam=True, dtype=dtype,
                                                                          device=device)


# --- every chapter's tasks -------------------------------------------------------------------------------

#: Chapter key -> function ``(profile, dtype, device) -> list of Task``, in chapter order (which
#: :func:`plan` lists).
CHAPTERS = {"02_universal_dynamics": _universal, "03_rich_lazy": _rich_lazy, "04_xor": _xor,
            "05_feature_collapse": _blob_tasks, "06_mnist": _mnist_chapter, "07_depth": _depth_tasks}
