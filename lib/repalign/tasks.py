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

>>> [t.label() for t in chapter_tasks("07_depth", "quick")]
['depth(name=default, width=100, lr=0.05, epochs=3000, seeds=[0, 1, 2], dtype=float32, device=cpu)']
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

import numpy as np

from . import data, experiments, fit, geometry, profiles, train
from .store import Task, register

__all__ = ["CHAPTERS", "chapter_tasks", "plan", "two_point_task", "grid_cell_task", "depth_task", "two_point_run"]


def _seeds(spec: Mapping[str, Any]) -> list[int]:
    seeds = [int(s) for s in spec["seeds"]]
    if not seeds or seeds != list(range(seeds[0], seeds[0] + len(seeds))) or seeds[0] < 0:
        raise ValueError(f"`seeds` must be consecutive non-negative integers, got {spec['seeds']!r}")
    return seeds


def _one_torch_thread(function):
    """Run ``function`` with one torch thread, restored afterwards. The compiled kernel's results do not
    depend on its thread count, but torch's float32 reductions do (the convolutional row's fit error is
    0.0801 at 2 threads, 0.0794 at 1): pinning it makes a task's result the same in a notebook, a local
    worker or a cluster worker, whatever the machine's core count."""

    @functools.wraps(function)
    def pinned(spec):
        import torch

        old = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return function(spec)
        finally:
            torch.set_num_threads(old)

    return pinned


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

# version 3: conv and dropout rows train on the fused fast path (float32 rounding differs from the
# reference's; in float64 they agree to rounding error, tests/test_fastpath.py)
@register("two_point", version=3, chapter="02_universal_dynamics")
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


# version 2: conv and dropout cells train on the fused fast path (as two_point version 3)
@register("grid_cell", version=2, chapter="03_rich_lazy")
@_one_torch_thread
def _grid_cell(spec: Mapping[str, Any]) -> dict[str, np.ndarray]:
    seeds = _seeds(spec)
    arch = profiles.architecture(spec["name"], spec["profile"])
    d = data.two_point(spec["dx_sq"], spec["dy_target_sq"])
    rec = train.train(arch, d.x, d.y, seeds=seeds, lr=spec["lr"], epochs=spec["epochs"], stop_loss=spec["stop_loss"],
                      dtype=spec["dtype"], device=spec["device"], progress=False)
    index = experiments.stop_records(rec, spec["stop_loss"])
    return {"seeds": np.array(rec.seeds), "measured": rec.dh_sq[np.arange(len(seeds)), index],
            "dh_sq0": rec.dh_sq[:, 0], "dy_sq0": rec.dy_sq[:, 0], "final_loss": rec.loss[:, -1],
            "epochs_trained": np.asarray(rec.settings["epochs_trained"])}


@register("depth", version=1, chapter="07_depth")
@_one_torch_thread
def _depth(spec: Mapping[str, Any]) -> dict[str, np.ndarray]:
    seeds = _seeds(spec)
    arch = replace(profiles.TABLE1[spec["name"]], width=spec["width"], lr=spec["lr"], epochs=spec["epochs"])
    d = data.two_point()
    rec = train.train(arch, d.x, d.y, trials=len(seeds), seed=seeds[0], layer="all", dtype=spec["dtype"],
                      device=spec["device"], progress=False)
    layers = experiments.fit_layers(rec)
    return {"seeds": np.array(rec.seeds), "epochs": rec.epochs, "dh_sq": rec.dh_sq, "dy_sq": rec.dy_sq, "w": rec.w,
            "loss": rec.loss, "layers": layers.layers, "error": layers.error, "rate_h": layers.rate_h,
            "rate_y": layers.rate_y, "success": layers.success, "dh_sq0": layers.dh_sq0}


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
    return Task("depth", {"name": name, "width": int(width), "lr": float(lr), "epochs": int(epochs),
                          **_common(profile, seed, trials, dtype, device)})


# --- a profile's tasks per chapter -----------------------------------------------------------------------

def _universal(profile, dtype, device):
    cfg = profiles.settings("universal", profile)
    out = [two_point_task(name, profile=profile, seed=cfg["seed"], trials=cfg["trials"].get(name, cfg["trials_other"]),
                          dtype=dtype, device=device) for name in cfg["architectures"]]
    adam = cfg["adam"]
    out.append(two_point_task(adam["arch"], profile=profile, seed=cfg["seed"], trials=adam["trials"], optimizer="adam",
                              lr=adam["lr"], epochs=adam["epochs"], dtype=dtype, device=device))
    return out


def _rich_lazy(profile, dtype, device):
    cfg = profiles.settings("rich_lazy", profile)
    seed = cfg["seed"]
    out = [two_point_task(name, profile=profile, seed=seed, trials=cfg["gain_trials"], dtype=dtype, device=device)
           for name in cfg["gain_rows"]]
    for name in cfg["fig5_architectures"]:
        out.append(two_point_task(name, profile=profile, seed=seed, trials=cfg["rate_trials"], dtype=dtype,
                                  device=device))
        arch = profiles.architecture(name, profile)
        seeds = range(seed + 1000, seed + 1000 + cfg["grid_seeds"])
        out += [grid_cell_task(name, a, b, profile=profile, seeds=seeds, lr=cfg["grid_lr_factor"] * arch.lr,
                               epochs=cfg["grid_epochs"], stop_loss=cfg["stop_loss"], dtype=dtype, device=device)
                for a in cfg["grid_dx_sq"] for b in cfg["grid_dy_sq"]]
    return out


def _depth_tasks(profile, dtype, device):
    cfg = profiles.settings("depth", profile)
    return [depth_task(cfg["arch"], profile=profile, width=cfg["width"], lr=cfg["lr"], epochs=cfg["epochs"],
                       seed=cfg["seed"], trials=cfg["trials"], dtype=dtype, device=device)]


#: Chapter key -> function ``(profile, dtype, device) -> list of Task``.
CHAPTERS = {"02_universal_dynamics": _universal, "03_rich_lazy": _rich_lazy, "07_depth": _depth_tasks}


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


def _flush_denormal(function):
    """Run ``function`` with subnormal floats flushed to zero (``torch.set_flush_denormal``), the former
    mode restored afterwards. Chapter 6 trains so (:func:`repalign.chapter.start` with
    ``flush_denormal=True``: Adam's small weights run ten times slower on subnormals); pinning it in the
    task makes its result the same in the chapter's kernel and in a campaign worker."""

    @functools.wraps(function)
    def flushed(spec):
        import torch

        old = (torch.tensor([1e-320], dtype=torch.float64) * 1.0).item() == 0.0  # torch has no getter
        torch.set_flush_denormal(True)
        try:
            return function(spec)
        finally:
            torch.set_flush_denormal(old)

    return flushed


@register("mnist", version=1, chapter="06_mnist")
@_one_torch_thread
@_flush_denormal
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


CHAPTERS["06_mnist"] = _mnist_chapter
__all__ += ["MNIST_SEEDS_PER_TASK", "mnist_task", "mnist_tasks", "MNISTRun", "mnist_run"]
