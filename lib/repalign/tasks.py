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

Chapter 3's tasks grouped by role: :func:`rich_lazy_tasks`; :data:`CHAPTERS` lists each chapter's
tasks flat.

>>> [t.label() for t in chapter_tasks("07_depth", "quick")]
['depth(name=default, width=100, lr=0.05, epochs=3000, seeds=[0, 1, 2], dtype=float32, device=cpu)']
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any

import numpy as np

from . import data, experiments, fit, profiles, train
from .store import Task, register

__all__ = ["CHAPTERS", "chapter_tasks", "plan", "two_point_task", "grid_cell_task", "depth_task", "two_point_run",
           "depth_architecture", "layer_fits", "rich_lazy_tasks", "distance_grid"]


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


# --- experiments ------------------------------------------------------------------------------------------

@register("two_point", version=2, chapter="02_universal_dynamics")
@_one_torch_thread
def _two_point(spec: Mapping[str, Any]) -> dict[str, np.ndarray]:
    seeds = _seeds(spec)
    run = experiments.run_two_point(spec["name"], profile=spec["profile"], trials=len(seeds), seed=seeds[0],
                                    optimizer=spec["optimizer"], lr=spec["lr"], epochs=spec["epochs"],
                                    dtype=spec["dtype"], device=spec["device"], progress=False)
    rec = run.recording
    return {
        "seeds": np.array(rec.seeds), "epochs": rec.epochs, "dh_sq": rec.dh_sq, "dy_sq": rec.dy_sq, "w": rec.w,
        "loss": rec.loss, "mean_output": rec.mean_output, "layer": np.array(rec.layer),
        "settings_json": np.array(json.dumps(dict(rec.settings), sort_keys=True)),
        "rates": run.rates, "errors": run.errors, "loss_errors": np.array([f.error for f in run.loss_fits]),
        "z_theory": np.stack([f.z_theory for f in run.fits]), "z0": np.stack([f.z0 for f in run.fits]),
        "fit_success": np.array([f.success for f in run.fits]), "projected": np.array([f.projected for f in run.fits]),
        "fit_message": np.array([f.message for f in run.fits]),
        "loss_theory": np.stack([f.loss_theory for f in run.loss_fits]),
        "loss_fit_success": np.array([f.success for f in run.loss_fits]),
    }


def two_point_run(result) -> experiments.TwoPointRun:
    """The :class:`repalign.experiments.TwoPointRun` of a stored ``two_point`` result, as
    :func:`~repalign.experiments.run_two_point` returned it (``seconds`` is the task's wall time)."""
    a, spec = result.arrays, result.task.spec
    if result.task.experiment != "two_point":
        raise ValueError(f"`result` must be of a two_point task, got {result.task.experiment!r}")
    settings = {k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(str(a["settings_json"])).items()}
    rec = train.Recording(a["epochs"], a["dh_sq"], a["dy_sq"], a["w"], a["loss"], a["mean_output"], int(a["layer"]),
                          tuple(int(s) for s in a["seeds"]), MappingProxyType(settings))
    fits = [fit.RateFit(float(r[0]), float(r[1]), z, float(e), bool(ok), z0, bool(pr), str(m))
            for r, z, e, ok, z0, pr, m in zip(a["rates"], a["z_theory"], a["errors"], a["fit_success"], a["z0"],
                                              a["projected"], a["fit_message"])]
    loss_fits = [fit.LossFit(float(r[2]), lt, float(e), bool(ok))
                 for r, lt, e, ok in zip(a["rates"], a["loss_theory"], a["loss_errors"], a["loss_fit_success"])]
    arch = profiles.architecture(spec["name"], spec["profile"])
    return experiments.TwoPointRun(spec["name"], arch, rec, fits, loss_fits,
                                   float(result.provenance.get("wall_seconds", np.nan)))


@register("grid_cell", version=1, chapter="03_rich_lazy")
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


@register("depth", version=1, chapter="07_depth")
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
    task}, "grid": {name: [grid_cell task per cell, dx_sq outer, dy_target_sq inner]}}`` (names: the Fig. 5
    architectures)."""
    cfg = profiles.settings("rich_lazy", profile)
    profile, seed = cfg["profile"], cfg["seed"]
    out = {"gain": [two_point_task(name, profile=profile, seed=seed, trials=cfg["gain_trials"], dtype=dtype,
                                   device=device) for name in cfg["gain_rows"]], "rates": {}, "grid": {}}
    for name in cfg["fig5_architectures"]:
        out["rates"][name] = two_point_task(name, profile=profile, seed=seed, trials=cfg["rate_trials"], dtype=dtype,
                                            device=device)
        arch = profiles.architecture(name, profile)
        seeds, lr = range(seed + 1000, seed + 1000 + cfg["grid_seeds"]), cfg["grid_lr_factor"] * arch.lr
        out["grid"][name] = [grid_cell_task(name, a, b, profile=profile, seeds=seeds, lr=lr, epochs=cfg["grid_epochs"],
                                            stop_loss=cfg["stop_loss"], dtype=dtype, device=device)
                             for a in cfg["grid_dx_sq"] for b in cfg["grid_dy_sq"]]
    return out


def _rich_lazy(profile, dtype, device):
    groups = rich_lazy_tasks(profile, dtype=dtype, device=device)
    out = list(groups["gain"])
    for name, rate in groups["rates"].items():
        out += [rate, *groups["grid"][name]]
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
