"""A bad-input sweep over the public modules: every call gets a per-call timeout and one outcome class.

    python benchmarks/sweep_bad_inputs.py [--timeout 30] [--jobs 2] [--only MODULE]

Each public function gets a small valid baseline call; then each of its arguments in turn is replaced
by bad or extreme values (NaN, inf, negatives, zero, 1e300, wrong types, wrong shapes, empty inputs,
unknown names). Every call runs in its own forked process with a wall-clock timeout and is classed as

* ``clean``: ValueError/TypeError whose message names the argument that was changed;
* ``unnamed``: ValueError/TypeError whose message does not name that argument;
* ``library``: another exception type defined by repalign (TrainingDiverged, MNISTUnavailableError,
  ClaimsDirError, ...), which names its cause;
* ``other``: any other exception type (IndexError, AttributeError, raw torch or numpy errors, ...);
* ``nonfinite``: returned a result containing NaN or inf;
* ``finite``: returned a finite result (the value was acceptable: e.g. 0 is a valid distance);
* ``timeout``: did not return within the timeout.

It prints the counts per class and lists every call outside ``clean``, ``finite`` and ``library``.
Not a test (pytest does not collect it): a tool for the issue's closing note.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import multiprocessing as mp
import os
import re
import tempfile
import time
import traceback
from collections import Counter

import numpy as np

NAN, INF = float("nan"), float("inf")
NUMBER_BAD = [NAN, INF, -INF, -1.0, 0.0, 1e300, -1e300, "x", None, True, [1.0, 2.0]]
INT_BAD = [0, -1, 2.5, 10**12, "3", None, True, NAN]
STR_BAD = ["", "nope", 3, None, "../x", "a\x00b"]
ARRAY_BAD = ["arr_nan", "arr_inf", "arr_empty", "arr_1d", "arr_3d", "arr_huge", "x", None]


def _fixtures():
    """Objects built once in the parent (children inherit them through fork)."""
    from dataclasses import replace

    import torch

    from repalign import data, linear_networks, linearised, profiles, theory, train

    torch.set_num_threads(1)
    fx = {}
    fx["T"] = np.linspace(0.0, 5.0, 21)
    fx["Z0"] = np.array([1.0, 0.1, 0.05])
    fx["ZS"] = theory.solve(fx["Z0"], fx["T"], rate_h=1.0, rate_y=0.5, dx_sq=1.0, dy_target_sq=0.5)
    fx["LS"] = theory.loss(fx["T"], fx["ZS"], rate_ybar=1.0, dy_target_sq=0.5, offset_sq=0.0)
    fx["H"] = np.random.default_rng(0).normal(size=(6, 4))
    fx["ARCH"] = replace(profiles.TABLE1["default"], width=8, hidden_layers=3)
    fx["CONV"] = replace(profiles.TABLE1["convolution"], width=40, hidden_layers=2)
    d = data.two_point()
    fx["D"] = d
    fx["REC"] = train.train(fx["ARCH"], d.x, d.y, trials=2, epochs=60, progress=False, keep_models=True)
    fx["XY_X"] = np.eye(3)
    fx["XY_Y"] = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.2]]).T
    fx["MODES"] = linear_networks.io_modes(fx["XY_X"], fx["XY_Y"])
    fx["W1"], fx["W2"] = linear_networks.decoupled_init(fx["MODES"], a0=0.01, hidden=4, seed=0)
    fx["TP"] = linearised.TwoPoints(np.array([-1.0]), np.array([0.0]), np.array([0.6]), np.array([1.3]))
    fx["LSTATE"] = linearised.aligned_init(fx["TP"], 4, 0.1, seed=0)
    fx["TMP"] = tempfile.mkdtemp(prefix="sweep-")
    return fx


def _array_bad(kind, base):
    base = np.asarray(base, dtype=float)
    return {
        "arr_nan": np.where(np.ones_like(base, bool), NAN, base) if base.size else np.array([NAN]),
        "arr_inf": np.full_like(base, INF) if base.size else np.array([INF]),
        "arr_empty": np.empty((0,) + base.shape[1:]),
        "arr_1d": np.ones(3),
        "arr_3d": np.ones((2, 2, 2)),
        "arr_huge": np.full_like(base, 1e300) if base.size else np.array([1e300]),
    }.get(kind, kind)


def _cases(fx):
    """(label, function, args, kwargs, {argument: kind}) baselines; kind picks the bad values."""
    from repalign import (
        activations,
        campaign,
        chapter,
        claims,
        data,
        experiments,
        falsification,
        fit,
        geometry,
        linear_networks,
        linearised,
        models,
        plots,
        profiles,
        store,
        tables,
        tasks,
        theory,
        train,
        widgets,
    )

    T, Z0, ZS, LS, H = fx["T"], fx["Z0"], fx["ZS"], fx["LS"], fx["H"]
    rates = dict(rate_h=1.0, rate_y=0.5, dx_sq=1.0, dy_target_sq=0.5)
    r3 = dict(rate_h=1.0, rate_y=0.5, dx_sq=1.0)
    num = "number"
    d = fx["D"]
    base = [
        (theory.initial_state, (0.5, 0.1, 0.3), dict(dy_target_sq=0.5), ["0:number", "1:number", "2:number",
                                                                         "dy_target_sq"]),
        (theory.rhs, (0.0, Z0), rates, ["1:array", *rates]),
        (theory.jacobian, (Z0,), rates, ["0:array", *rates]),
        (theory.solve, (Z0, T), rates, ["0:array", "1:array", *rates, "rtol", "atol", "method:str"]),
        (theory.loss, (T, ZS), dict(rate_ybar=1.0, dy_target_sq=0.5, offset_sq=0.0),
         ["0:array", "1:array", "rate_ybar", "dy_target_sq", "offset_sq"]),
        (theory.conserved_quantity, (Z0,), r3, ["0:array", *r3]),
        (theory.final_distance, (1.0, 0.1), rates, ["0:number", "1:number", *rates]),
        (theory.identical_outputs_solution, (T, 1.0, 0.1), r3, ["0:array", "1:number", "2:number", *r3]),
        (theory.final_distance_cdf, (np.array([0.1, 0.5, 1.0]),), dict(rates, init_scale=0.1),
         ["0:array", *rates, "init_scale"]),
        (theory.final_distance_pdf, (np.array([0.1, 0.5, 1.0]),), dict(rates, init_scale=0.1),
         ["0:array", "init_scale", "dx_sq"]),
        (theory.sample_final_distance, (10,), dict(rates, init_scale=0.1, seed=0),
         ["0:int", "init_scale", "seed:int", "rate_h"]),
        (theory.origin_eigen, (1.0, 0.2), r3, ["0:number", "1:number", *r3]),
        (theory.reduced_jacobian_at_fixed_point, (1.0, 0.2), r3, ["0:number", "1:number", "rate_h"]),
        (fit.fit_rates, (T, ZS, 1.0, 0.5), {}, ["0:array", "1:array", "2:number", "3:number",
                                             "grid_per_decade", "search_records:int", "rtol", "atol",
                                             "tau_h_over_tau_y_bounds:pair"]),
        (fit.fit_rate_ybar, (T, ZS, LS, 0.5, 0.0), {}, ["2:array", "3:number", "4:number", "rate_bounds:pair"]),
        (fit.normalised_error, (ZS, ZS * 1.01), {}, ["0:array", "1:array"]),
        (fit.fit_recording, (fx["REC"],), {}, ["layer_index:int", "0:obj"]),
        (falsification.fit_system, (T, ZS, "eq. (7)", 1.0, 0.5), dict(starts=[(1.0, 0.5)], records=15),
         ["0:array", "1:array", "2:str", "3:number", "4:number", "starts:array", "records:int"]),
        (falsification.system_rhs, ("eq. (7)",), {}, ["0:str"]),
        (linearised.aligned_init, (fx["TP"], 4, 0.1), dict(seed=0), ["1:int", "2:number", "seed:int", "0:obj"]),
        (linearised.flow, (fx["LSTATE"], fx["TP"], np.linspace(0, 1, 5)), dict(rate_h=1.0, rate_y=0.5,
                                                                               rate_ybar=1.0),
         ["2:array", "rate_h", "rate_y", "rate_ybar", "rtol", "atol", "0:obj"]),
        (linearised.gradients, (fx["LSTATE"], fx["TP"]), {}, ["0:obj", "1:obj"]),
        (linear_networks.io_modes, (fx["XY_X"], fx["XY_Y"]), {}, ["0:array", "1:array", "rtol"]),
        (linear_networks.mode_strength, (T,), dict(s=1.0, a0=0.01), ["0:array", "s", "a0", "depth:int", "lam",
                                                                     "tau"]),
        (linear_networks.time_to_learn, (), dict(s=1.0, a0=0.01), ["s", "a0", "depth:int", "fraction", "tau"]),
        (linear_networks.decoupled_init, (fx["MODES"],), dict(a0=0.01, hidden=4, seed=0),
         ["a0", "hidden:int", "seed:int", "lam"]),
        (linear_networks.imbalance, (fx["W1"], fx["W2"]), {}, ["0:array", "1:array"]),
        (linear_networks.effective_initial_strength, (fx["W1"], fx["W2"], fx["MODES"]), {}, ["0:array", "1:array"]),
        (linear_networks.gated_gradient_descent, (fx["XY_X"], fx["XY_Y"], fx["W1"], fx["W2"]),
         dict(lr=0.01, epochs=10), ["lr", "epochs:int", "0:array", "2:array"]),
        (data.two_point, (), {}, ["dx_sq", "dy_target_sq", "x1", "y1", "input_dim:int", "output_dim:int"]),
        (data.blobs, (4, 5), dict(variance=1.0), ["0:int", "1:int", "variance"]),
        (data.mnist, ("train",), dict(cache_dir=fx["TMP"], fetch=False), ["0:str", "cache_dir:str", "fetch:flag",
                                                                            "progress:flag"]),
        (activations.check_activation, ("relu",), {}, ["0:str"]),
        (models.build, (fx["ARCH"],), dict(seed=0), ["seed:int", "input_dim:int", "output_dim:int", "0:obj",
                                                     "dtype:str", "device:str"]),
        (models.build_batched, (fx["ARCH"],), dict(seeds=[0, 1]), ["seeds:array", "input_dim:int", "0:obj"]),
        (models.n_hidden, (fx["ARCH"],), {}, ["0:obj"]),
        (models.default_hidden_layer, (fx["CONV"],), {}, ["convention:str", "0:obj"]),
        (train.train, (fx["ARCH"], d.x, d.y), dict(epochs=5, progress=False),
         ["1:array", "2:array", "layer:int", "convention:str", "trials:int", "seed:int", "seeds:array", "lr",
          "epochs:int", "optimizer:str", "batch_size:int", "pair:pair", "dtype:str", "device:str",
          "engine:str", "stop_loss", "threads:int", "batched:flag", "0:obj"]),
        (experiments.plateau_loss, (fx["REC"],), {}, ["trial:int", "settle", "0:obj"]),
        (experiments.plateau_epochs, (fx["REC"],), {}, ["band", "0:obj"]),
        (experiments.stop_records, (fx["REC"], 1e-3), {}, ["1:number", "0:obj"]),
        (experiments.fit_layers, (fx["REC"],), {}, ["0:obj"]),
        (experiments.pairwise_distances, (H,), {}, ["0:array"]),
        (experiments.sorted_first, (np.array([3, 1, 2, 1]), 2), {}, ["0:array", "1:int"]),
        (experiments.weighted_predictions, (H, H[:, :2], H[:2]), dict(tau_y_over_tau_h=1.0),
         ["0:array", "1:array", "2:array", "tau_y_over_tau_h"]),
        (experiments.representations, (fx["REC"].models, d.x, 2), {}, ["1:array", "2:int", "chunk:int", "0:obj"]),
        (experiments.run_two_point, ("default",), dict(profile="quick", epochs=5, progress=False),
         ["0:str", "profile:str", "trials:int", "seed:int", "optimizer:str", "lr", "epochs:int"]),
        (geometry.sq_distances, (H,), {}, ["0:array", "b:array"]),
        (geometry.low_weight_distances, (H, H[:, :2]), {}, ["0:array", "1:array", "tau_y_over_tau_h"]),
        (geometry.exponential_weighting, (geometry.sq_distances(H),), {}, ["0:array", "scale", "normalise:flag"]),
        (geometry.upper_entries, (geometry.sq_distances(H),), {}, ["0:array", "groups:array"]),
        (geometry.pearson, (H[:, 0], H[:, 1]), {}, ["0:array", "1:array"]),
        (geometry.mds, (H,), dict(seed=0, n_init=1, max_iter=50), ["0:array", "n_components:int", "seed:int",
                                                                   "n_init:int", "max_iter:int"]),
        (geometry.feature_shares, (H, np.array([0, 0, 1, 1, 2, 2])), {}, ["0:array", "1:array"]),
        (geometry.collinearity, (H,), {}, ["0:array"]),
        (geometry.context_gap, (H, np.array([0, 0, 0, 1, 1, 1]), np.array([0, 1, 2, 0, 1, 2])), {},
         ["0:array", "1:array", "2:array"]),
        (profiles.settings, ("universal",), {}, ["0:str", "profile:str"]),
        (profiles.architecture, ("default",), {}, ["0:str", "profile:str"]),
        (claims.check, ("99_sweep", "a claim", 0.1), dict(tolerance=1.0, quiet=True, profile="quick"),
         ["0:str", "1:str", "2:number", "tolerance", "relation:str", "expected", "profile:str", "strict:flag"]),
        (claims.for_chapter, ("99_sweep",), {}, ["0:str", "profile:str"]),
        (claims.scorecard_markdown, ([],), {}, ["0:obj", "compact:flag"]),
        (tables.cell, ("a|b",), {}, ["0:obj"]),
        (tables.markdown_table, (["a", "b"], [[1, 2]]), {}, ["0:obj", "1:obj", "note:str"]),
        (chapter.start, ("99_sweep", "universal"), dict(threads=1, quiet=True), ["0:str", "1:str", "threads:int",
                                                                                  "flush_denormal:flag"]),
        (plots.trajectory, (T, ZS[:, 0], "dh_sq"), {}, ["0:array", "1:array", "2:str", "kind:str"]),
        (plots.loss_curve, (T, LS), {}, ["0:array", "1:array", "plateau", "xscale:str"]),
        (plots.distance_matrix, (geometry.sq_distances(H),), {}, ["0:array", "sd:array", "vmax", "fmt:str"]),
        (plots.identity_scatter, (H[:, 0], H[:, 1]), {}, ["0:array", "1:array"]),
        (plots.three_panel, (T, ZS), {}, ["0:array", "1:array", "z_network:array"]),
        (widgets.gain_lr, (1.0,), {}, ["0:number", "profile:str"]),
        (widgets.explorer_figure, (), dict(t_max=5.0), ["t_max", "gain", "rate_h", "rate_y", "dx_sq", "cos_angle",
                                                        "dy_target_sq"]),
        (widgets.gain_figure, (1.0,), dict(epochs=20, profile="quick"), ["0:number", "epochs:int", "seed:int",
                                                                         "tau_y_over_tau_h", "profile:str"]),
        (store.experiment, ("two_point",), {}, ["0:str"]),
        (store.describe, ([],), {}, ["0:obj"]),
        (store.machine_provenance, ({"seed": 0},), {}, ["0:obj"]),
        (tasks.chapter_tasks, ("02_universal_dynamics",), dict(profile="quick"), ["0:str", "profile:str",
                                                                                  "dtype:str", "device:str"]),
        (tasks.two_point_task, ("default",), dict(profile="quick"), ["0:str", "profile:str", "seed:int",
                                                                     "trials:int", "lr", "epochs:int"]),
        (tasks.depth_task, ("d",), dict(profile="quick", width=8, lr=0.01, epochs=10),
         ["width:int", "lr", "epochs:int", "seed:int", "profile:str"]),
        (tasks.plan, ("quick",), {}, ["0:str", "chapter:str"]),
        (campaign.read_tasks, (os.path.join(fx["TMP"], "missing.json"),), {}, ["0:str"]),
        (campaign.pending, ([], store.Store(fx["TMP"])), {}, ["0:obj", "1:obj"]),
    ]
    del num
    cases = []
    for fn, args, kwargs, targets in base:
        label = f"{fn.__module__.removeprefix('repalign.')}.{fn.__name__}"
        cases.append((label, fn, args, kwargs, None, None))
        for target in targets:
            name, _, kind = target.partition(":")
            kind = kind or "number"
            values = {"number": NUMBER_BAD, "int": INT_BAD, "str": STR_BAD, "array": ARRAY_BAD,
                      "flag": ["no", 0, None], "pair": [(1,), (1, 0), (NAN, 1.0), "ab", None],
                      "obj": [None, 3, "x", object()]}[kind]
            for bad in values:
                cases.append((label, fn, args, kwargs, name, bad))
    return cases


def _arg_name(fn, name):
    """The parameter name of argument ``name`` (an index for positional arguments)."""
    import inspect

    if name.isdigit():
        params = [p.name for p in inspect.signature(fn).parameters.values()]
        return params[int(name)] if int(name) < len(params) else name
    return name


def _nonfinite(obj, depth=0) -> bool:
    import torch

    if depth > 4 or obj is None:
        return False
    if isinstance(obj, float):
        return not math.isfinite(obj)
    if isinstance(obj, np.ndarray):
        return obj.dtype.kind in "fc" and not np.isfinite(obj).all()
    if isinstance(obj, torch.Tensor):
        return obj.is_floating_point() and not bool(torch.isfinite(obj).all())
    if isinstance(obj, dict):
        return any(_nonfinite(v, depth + 1) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return any(_nonfinite(v, depth + 1) for v in obj[:50])
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return any(_nonfinite(getattr(obj, f.name), depth + 1) for f in dataclasses.fields(obj))
    return False


def _run_one(case, conn):
    import warnings

    label, fn, args, kwargs, name, bad = case
    args, kwargs = list(args), dict(kwargs)
    try:
        if name is not None:
            if name.isdigit():
                i = int(name)
                value = _array_bad(bad, args[i]) if isinstance(bad, str) and bad.startswith("arr_") else bad
                args[i] = value
            else:
                base = kwargs.get(name, np.zeros((2, 2)))
                value = _array_bad(bad, base) if isinstance(bad, str) and bad.startswith("arr_") else bad
                kwargs[name] = value
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = fn(*args, **kwargs)
        import matplotlib.pyplot as plt

        plt.close("all")
        conn.send(("nonfinite" if _nonfinite(out) else "finite", ""))
    except (ValueError, TypeError) as exc:
        import repalign

        msg = str(exc)
        pname = None if name is None else _arg_name(fn, name)
        named = pname is not None and (re.search(rf"\b{re.escape(pname)}\b", msg) is not None)
        own = type(exc).__module__.startswith("repalign") and type(exc) not in (ValueError, TypeError)
        del repalign
        conn.send(("clean" if named else ("library" if own else "unnamed"), f"{type(exc).__name__}: {msg[:200]}"))
    except Exception as exc:  # noqa: BLE001
        own = type(exc).__module__.startswith("repalign")
        conn.send(("library" if own else "other",
                   f"{type(exc).__name__}: {str(exc)[:200]} @ {traceback.extract_tb(exc.__traceback__)[-1].name}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", default=None)
    args = parser.parse_args()
    os.environ.setdefault("REPALIGN_CLAIMS_DIR", tempfile.mkdtemp(prefix="sweep-claims-"))
    os.environ.setdefault("REPALIGN_RESULTS_DIR", tempfile.mkdtemp(prefix="sweep-store-"))
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")  # GNU OpenMP does not survive fork()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    fx = _fixtures()
    cases = [c for c in _cases(fx) if args.only is None or c[0].startswith(args.only)]
    ctx = mp.get_context("fork")
    results, running, queue = [], [], list(cases)
    started = time.perf_counter()
    while queue or running:
        while queue and len(running) < args.jobs:
            case = queue.pop(0)
            parent, child = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_run_one, args=(case, child))
            proc.start()
            running.append((case, proc, parent, time.perf_counter()))
        time.sleep(0.005)
        for item in list(running):
            case, proc, parent, t0 = item
            if parent.poll():
                try:
                    outcome = parent.recv()
                except EOFError:
                    outcome = ("other", f"process died with exit code {proc.exitcode}")
                proc.join()
            elif not proc.is_alive():
                outcome = ("other", f"process died with exit code {proc.exitcode}")
            elif time.perf_counter() - t0 > args.timeout:
                proc.kill()
                proc.join()
                outcome = ("timeout", f"no result after {args.timeout:g} s")
            else:
                continue
            running.remove(item)
            results.append((case, outcome))
    counts = Counter(o[0] for _, o in results)
    print(f"{len(results)} calls over {len({c[0].split('.')[0] for c, _ in results})} modules in "
          f"{time.perf_counter() - started:.0f} s (timeout {args.timeout:g} s per call)")
    for cls in ("clean", "library", "finite", "unnamed", "other", "nonfinite", "timeout"):
        print(f"  {cls:10s} {counts.get(cls, 0)}")
    print("\nEvery call outside clean / finite / library:")
    for (label, _, _, _, name, bad), (cls, detail) in sorted(results, key=lambda r: (r[1][0], r[0][0])):
        if cls in ("clean", "finite", "library"):
            continue
        print(f"  [{cls}] {label}({name}={bad!r}): {detail}")
    print("\nNon-finite results and the finite results of bad values are listed with --verbose in the source;"
          " 'finite' includes values that are valid input (e.g. 0 for a distance).")


if __name__ == "__main__":
    main()
