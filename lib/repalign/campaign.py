"""Run a profile's tasks outside the notebooks: plan, run (resumable, in parallel or on a Dask cluster),
status and verify.

Usage (also as the console script ``repalign-campaign``)::

    python -m repalign.campaign plan   [--profile P] [--chapter N]
    python -m repalign.campaign run    [--profile P] [--chapter N] [--workers K] [--scheduler tcp://host:8786]
    python -m repalign.campaign status [--profile P] [--complete-chapters | --all-complete]
    python -m repalign.campaign verify [--sample K] [--seed S] [--budget SECONDS] [--workers K]
                                       [--prefix-sample K --prefix-epochs E]
    python -m repalign.campaign publish --store CAMPAIGN_STORE [--profile P] [--to DIR]

``--tasks FILE.json`` (a list of ``{"experiment": ..., "spec": {...}}``) replaces a profile's tasks by
your own, e.g. a sweep over more seeds. Every command takes ``--store DIR`` (default
``$REPALIGN_RESULTS_DIR``, else ``results/store/``) and
``--device cpu|cuda`` (part of each task's spec: a GPU run is a different result).

``run`` computes only the tasks the store lacks, so a rerun continues where an interrupted run stopped
(Ctrl-C stops cleanly: finished tasks are stored, the ones in flight are lost). A task that raises is
recorded with its traceback in ``<store>/failed/<experiment>-<key>.txt`` and does not stop the others;
it is retried by the next run and its file removed once it succeeds.

Local runs use a process pool, one task per worker (default: one worker per core), each worker with
one torch and one numba thread, so that the cores are not oversubscribed. ``--scheduler ADDRESS``
submits the same tasks to an existing Dask ``distributed`` cluster (dask-jobqueue, Kubernetes and
cloud deployments all give such an address; start workers with ``--nthreads 1``). In both cases the
workers *return* each result (its arrays and provenance) to this process, which writes it to the store:
that needs no shared filesystem, keeps every write in one process (atomic, never two writers of one
file), and the results are a few hundred kilobytes per task, small beside its minutes of compute. The
workers must have the same ``repalign`` installed (same revision), which the provenance records.

``plan`` estimates the remaining time from the wall times of the tasks already stored (the mean over
stored tasks of the same experiment and Table 1 row, else of the same experiment), divided by the
number of workers.

``verify`` recomputes a seeded random sample of stored tasks and compares every array with
:func:`numpy.allclose` at ``rtol=VERIFY_RTOL``, ``atol=VERIFY_ATOL``: see :data:`VERIFY_RTOL`. ``--seed``
takes an integer or any text (CI passes the commit hash, so that each commit checks other tasks);
``--budget SECONDS`` draws tasks in the seeded order while their recorded wall times still fit in
``SECONDS`` on ``--workers`` workers, so a check of a store of hours-long tasks stays bounded. With
``--profile``, stored results of a task of the profile's plan made at an *older result version* (the code's
output changed and nobody re-ran it) fail the check, with the command that recomputes them.
``--prefix-sample K`` also reruns K tasks too long to recompute whole (an MNIST task of the paper
profile trains for about an hour) for their first ``--prefix-epochs`` epochs and compares those
records of every trajectory (:func:`verify_prefix`). It exits with status 1 on a mismatch or a stale
result.

``publish`` copies a profile's finished tasks from a campaign store into its published store
(``published/<profile>/``, :func:`repalign.store.published_root`), compacted by :func:`compact` (floats
stored as float32), with each task's provenance, and writes ``SUMMARY.md`` there: tasks per chapter,
revisions, machines, CPU-hours and dates. The chapters read the published store when the local one
lacks a task (:func:`repalign.store.cached`).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import traceback
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from . import _threads
from . import store as _store
from .store import Store, Task

__all__ = ["main", "pending", "run", "estimate", "verify", "stale", "compact", "publish", "summary", "seed_from",
           "read_tasks", "local_cluster", "record_stride", "verify_prefix", "VERIFY_RTOL", "VERIFY_ATOL",
           "PUBLISHED_RECORDS"]

#: Tolerance of ``verify``. Every task is deterministic on one machine: the kernel gives byte-identical
#: arrays with 1 or 2 numba threads (measured: the quick profile's default network, 3 seeds x 3000 epochs
#: with its fits, and a Fig. 5 grid cell), torch runs with one thread in every task (repalign.tasks), and a
#: 2-worker Dask cluster write byte-identical files (tests/test_campaign.py). These bounds leave room
#: for another CPU's libm and still catch a 1 % change of one stored value. They are not a cross-back-end
#: tolerance: the same float32 run on the numba kernel and on the fused torch path differs by up to 10 %
#: in the fitted rates (rounding moves the escape from the plateau); in float64 by 5e-6 (README).
VERIFY_RTOL = 1e-4
VERIFY_ATOL = 1e-7
_LIB = str(Path(__file__).resolve().parents[1])  # the package's source root, for worker processes


def _worker_init() -> None:
    """A local worker process: one thread, and Ctrl-C goes to the parent only (which stops the workers).

    The environment variables are set here, at the start of a fresh process and before numba launches
    its thread pool, never in the caller's process: numba re-reads ``NUMBA_NUM_THREADS`` at every
    compilation and refuses a value that differs from its running pool.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def _compute(task: Task):
    """Worker side: ``("ok", arrays, provenance)`` or ``("error", traceback text, None)``.

    One torch and one numba thread for the task (a worker runs one task per core); the caller's thread
    counts are restored afterwards, so an in-process run (``--workers 1``, ``verify``) changes nothing.
    """
    try:
        with _threads.torch_threads(1), _threads.numba_threads(1):
            arrays, prov = _store.run_timed(task)
        return "ok", arrays, prov
    except Exception:  # noqa: BLE001  (recorded with its traceback, the campaign goes on)
        return "error", traceback.format_exc(), None


def _failed_path(store: Store, task: Task) -> Path:
    return store.root / "failed" / f"{task.experiment}-{task.key}.txt"


def _record(store: Store, task: Task, outcome) -> bool:
    status, payload, prov = outcome
    failed = _failed_path(store, task)
    if status == "ok":
        store.put(task, payload, prov)
        failed.unlink(missing_ok=True)
        return True
    _store._atomic_write(failed, f"{task.label()}\nkey {task.key}\nspec {task.canonical}\n\n{payload}".encode())
    return False


def pending(tasks, store: Store) -> list[Task]:
    """The tasks whose result is not (intact) in ``store``."""
    return [t for t in tasks if store.get(t) is None]


def estimate(tasks, store: Store) -> tuple[float, int]:
    """``(seconds, unknown)``: summed estimated wall time of ``tasks`` (one worker) from the stored
    tasks' measured wall times, and how many tasks had no measurement to go by."""
    by_row, by_exp = defaultdict(list), defaultdict(list)
    for prov in store.tasks():
        if "wall_seconds" not in prov:
            continue
        spec = prov["spec"]
        by_row[(prov["experiment"], spec.get("profile"), spec.get("name"))].append(prov["wall_seconds"])
        by_exp[(prov["experiment"], spec.get("profile"))].append(prov["wall_seconds"])
    total, unknown = 0.0, 0
    for t in tasks:
        times = by_row.get((t.experiment, t.spec.get("profile"), t.spec.get("name"))) or \
            by_exp.get((t.experiment, t.spec.get("profile")))
        if times:
            total += float(np.mean(times))
        else:
            unknown += 1
    return total, unknown


def run(tasks, store: Store, *, workers: int | None = None, scheduler: str | None = None,
        progress: bool = True) -> dict[str, int]:
    """Compute and store every task of ``tasks`` missing from ``store``; see the module docstring.

    Returns
    -------
    dict
        ``{"stored": ..., "failed": ..., "skipped": ...}`` (skipped: already in the store).

    Raises
    ------
    KeyboardInterrupt
        After storing what finished, if interrupted.
    """
    from tqdm.auto import tqdm

    todo = pending(tasks, store)
    counts = {"stored": 0, "failed": 0, "skipped": len(list(tasks)) - len(todo)}
    if not todo:
        return counts
    bar = tqdm(total=len(todo), unit="task", disable=not progress, dynamic_ncols=True)

    def done(task, outcome):
        ok = _record(store, task, outcome)
        counts["stored" if ok else "failed"] += 1
        bar.update()
        if not ok:
            bar.write(f"FAILED {task.label()}: traceback in {_failed_path(store, task)}")

    try:
        if scheduler:
            _run_dask(todo, scheduler, done)
        else:
            _run_local(todo, workers, done)
    finally:
        bar.close()
    return counts


def _run_local(todo, workers, done) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    workers = _default_workers() if workers is None else workers
    if workers < 1:
        raise ValueError(f"`workers` must be >= 1, got {workers}")
    ctx = multiprocessing.get_context("spawn")  # a clean interpreter: no inherited torch/numba thread pools
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init)
    try:
        queue = list(reversed(todo))
        running = {}
        while queue or running:
            while queue and len(running) < workers:  # submit as workers free up: Ctrl-C leaves little in flight
                task = queue.pop()
                running[pool.submit(_compute, task)] = task
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                task = running.pop(future)
                exc = future.exception()
                done(task, ("error", "".join(traceback.format_exception(exc)), None) if exc else future.result())
    except BaseException:  # Ctrl-C (or an error storing a result): stop the workers, lose only what was in flight
        for proc in list(getattr(pool, "_processes", {}).values()):  # the executor has no public terminate()
            proc.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()


def _run_dask(todo, address, done) -> None:
    from distributed import Client, as_completed

    with Client(address, timeout="30s") as client:
        futures = client.map(_compute, todo, key=[f"{t.experiment}-{t.key}" for t in todo], pure=False)
        tasks = dict(zip((f.key for f in futures), todo))
        try:
            for future in as_completed(futures):
                task = tasks[future.key]
                if future.status == "error":
                    exc = future.exception()
                    done(task, ("error", "".join(traceback.format_exception(exc)), None))
                else:
                    done(task, future.result())
                future.release()
        except BaseException:
            client.cancel(futures)
            raise


def _default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def seed_from(seed: int | str) -> int:
    """A sampling seed from an integer, or from any text (e.g. a commit hash: the first 16 hex digits of
    its SHA-256), so that ``verify --seed "$(git rev-parse HEAD)"`` checks other tasks on each commit."""
    if isinstance(seed, bool) or not isinstance(seed, (int, str)):
        raise TypeError(f"`seed` must be an int or a string, got {seed!r}")
    if isinstance(seed, int) or seed.strip().isdigit():
        value = int(seed)
        if value < 0:
            raise ValueError(f"`seed` must be >= 0, got {value}")
        return value
    if not seed.strip():
        raise ValueError("`seed` must be an integer or a non-empty string, got ''")
    return int(hashlib.sha256(seed.strip().encode()).hexdigest()[:16], 16)


#: Records a published trajectory keeps at most (:func:`compact`). A paper-profile two-point run records
#: every one of its 6000 epochs; its figures and the chapters' trajectory checks need far fewer (the
#: fastest transition of the paper profile, the plateau escape, spans a few hundred epochs), and chapter
#: 3's eleven 50-trial runs would otherwise take 120 MB. The fitted rates, fit errors and final values
#: are computed from every epoch when the task runs and are published exactly (in float32).
PUBLISHED_RECORDS = 1000


def record_stride(n_records: int, keep: int = PUBLISHED_RECORDS) -> int:
    """The stride :func:`compact` thins ``n_records`` records with: 1 up to ``keep``, else the smallest
    stride that leaves at most ``keep`` records (the last record is always kept as well)."""
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 2:
        raise ValueError(f"`keep` must be an integer >= 2, got {keep!r}")
    return 1 if n_records <= keep else -(-(n_records - 1) // (keep - 1))


def compact(arrays) -> dict[str, np.ndarray]:
    """What a published store keeps of a task's arrays: float64 stored as float32 (a relative rounding
    of 6e-8, far inside :data:`VERIFY_RTOL`), and trajectories of more than :data:`PUBLISHED_RECORDS`
    records thinned to every :func:`record_stride`-th record plus the last one.

    A trajectory is an array whose second axis (trials first) runs over the task's ``epochs`` record
    array; ``epochs`` is thinned with it, so a loaded ``Recording`` names the epoch of every record it
    keeps. Everything else (rates, fit errors, final distances, representations) is kept whole.
    ``verify`` compacts a fresh result the same way before comparing it with a compacted one."""
    out = {k: (np.asarray(a, dtype=np.float32) if np.asarray(a).dtype == np.float64 else np.asarray(a))
           for k, a in arrays.items()}
    epochs = out.get("epochs")
    if epochs is None or epochs.ndim != 1:
        return out
    n = len(epochs)
    stride = record_stride(n, PUBLISHED_RECORDS)
    if stride == 1:
        return out
    keep = np.unique(np.append(np.arange(0, n, stride), n - 1))
    for k, a in out.items():
        if k == "epochs":
            out[k] = a[keep]
        elif a.ndim >= 2 and a.shape[1] == n:
            out[k] = np.ascontiguousarray(a[:, keep])
    return out


def _stored_tasks(store: Store, profile: str | None) -> list[tuple[Task, dict]]:
    out = []
    for prov in store.tasks():
        if profile is not None and prov["spec"].get("profile") != profile:
            continue
        try:
            task = Task(prov["experiment"], prov["spec"])
            if task.key == prov["key"]:
                out.append((task, prov))
        except ValueError:  # an experiment this code no longer has
            continue
    return out


def stale(store: Store, tasks) -> list[tuple[Task, int]]:
    """The tasks of ``tasks`` that ``store`` holds only at an older result version: ``(task, stored version)``.

    A result version is bumped when the code's output for the same spec changes; a store whose files
    still carry the old version no longer serves those tasks, and nobody re-ran them."""
    current = {(t.experiment, _store._canonical(dict(t.spec))): t for t in tasks}
    out = []
    for prov in store.tasks():
        t = current.get((prov.get("experiment"), _store._canonical(prov.get("spec", {}))))
        if t is not None and prov.get("result_version") != t.version and t not in store:
            out.append((t, prov.get("result_version")))
    return out


def verify(store: Store, *, sample: int = 3, seed: int | str = 0, rtol: float = VERIFY_RTOL, atol: float = VERIFY_ATOL,
           profile: str | None = None, budget: float | None = None, workers: int = 1) -> list[dict]:
    """Recompute ``sample`` stored tasks chosen at random (``seed``, see :func:`seed_from`) and compare.

    With ``budget`` (seconds), tasks are drawn in the seeded order and kept while the sum of their stored
    wall times fits in ``budget * workers`` (at most ``sample`` of them; a task longer than the budget is
    never drawn). ``workers > 1`` recomputes them in that many processes; ``workers=1`` in this one, with
    one torch and one numba thread as a worker runs (the caller's counts are restored afterwards).

    Returns one dict per task: ``label``, ``ok``, ``max_abs`` and ``max_rel`` (the largest difference of
    any array), ``worst`` (that array's name) and ``seconds`` (the stored wall time). Stored files of an
    older result version are skipped here (see :func:`stale`).
    """
    if isinstance(sample, bool) or not isinstance(sample, int) or sample < 1:
        raise ValueError(f"`sample` must be an integer >= 1, got {sample!r}")
    if budget is not None and not (isinstance(budget, (int, float)) and budget > 0 and np.isfinite(budget)):
        raise ValueError(f"`budget` must be a positive number of seconds, got {budget!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"`workers` must be an integer >= 1, got {workers!r}")
    candidates = _stored_tasks(store, profile)
    if not candidates:
        return []
    order = np.random.default_rng(seed_from(seed)).permutation(len(candidates))
    chosen, spent = [], 0.0
    for i in order:
        if len(chosen) == sample:
            break
        cost = float(candidates[i][1].get("wall_seconds", 0.0))
        if budget is not None and spent + cost > budget * workers:
            continue
        chosen.append(int(i))
        spent += cost
    chosen.sort()
    report = []
    todo = []
    for i in chosen:
        task, prov = candidates[i]
        stored = store.get(task)
        if stored is None:
            report.append({"label": task.label(), "ok": False, "max_abs": np.inf, "max_rel": np.inf,
                           "worst": "(stored file corrupt)", "seconds": prov.get("wall_seconds")})
        else:
            todo.append((task, stored))
    fresh_results = {}
    if workers == 1:
        with _threads.torch_threads(1), _threads.numba_threads(1):  # as a worker runs; restored afterwards
            for task, _ in todo:
                fresh_results[task] = task.run()
    else:
        def done(task, outcome):
            status, payload, _ = outcome
            if status != "ok":
                raise RuntimeError(f"recomputing {task.label()} failed:\n{payload}")
            fresh_results[task] = payload

        _run_local([t for t, _ in todo], workers, done)
    for task, stored in todo:
        fresh = fresh_results[task]
        if stored.provenance.get("compacted"):
            fresh = compact(fresh)
        row = _compare(task, stored.arrays, fresh, rtol, atol)
        row["seconds"] = stored.provenance.get("wall_seconds")
        report.append(row)
    return report


def verify_prefix(store: Store, *, sample: int = 1, epochs: int = 10, seed: int | str = 0,
                  rtol: float = VERIFY_RTOL, atol: float = VERIFY_ATOL, profile: str | None = None) -> list[dict]:
    """Check stored tasks too long to recompute whole (a paper-profile MNIST task trains for a CPU-hour)
    on their first ``epochs`` epochs.

    Candidates are the stored tasks of experiments registered with an ``epochs_field`` and ``records``
    (see :func:`repalign.store.register`) that trained for more than ``epochs`` epochs; ``sample`` of
    them are drawn in a seeded order (``seed``, see :func:`seed_from`), each rerun in this process (one
    torch and one numba thread, as a worker runs) with its spec's epochs set to ``epochs``, and each of
    the ``records`` arrays at the stored epochs below ``epochs`` (those the thinning of :func:`compact`
    kept) compared with the rerun's records of the same epochs, at ``rtol``/``atol``. The rerun's last
    record (a full pass after its last epoch) and everything computed from the whole run (fits and
    their theory curves, final distances, test accuracy) are not compared.

    Returns one dict per task as :func:`verify` does, its ``label`` naming the epochs checked.
    """
    if isinstance(sample, bool) or not isinstance(sample, int) or sample < 1:
        raise ValueError(f"`sample` must be an integer >= 1, got {sample!r}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"`epochs` must be an integer >= 1, got {epochs!r}")
    candidates = []
    for task, _prov in _stored_tasks(store, profile):
        exp = _store.experiment(task.experiment)
        total = task.spec.get(exp.epochs_field) if exp.epochs_field else None
        if isinstance(total, int) and total > epochs:
            candidates.append((task, exp))
    if not candidates:
        return []
    order = np.random.default_rng(seed_from(seed)).permutation(len(candidates))[:sample]
    report = []
    for i in sorted(int(k) for k in order):
        task, exp = candidates[i]
        label = f"{task.label()} (first {epochs} of {task.spec[exp.epochs_field]} epochs)"
        stored = store.get(task)
        if stored is None:
            report.append({"label": label, "ok": False, "max_abs": np.inf, "max_rel": np.inf,
                           "worst": "(stored file corrupt)", "seconds": None})
            continue
        short = Task(task.experiment, {**dict(task.spec), exp.epochs_field: epochs})
        with _threads.torch_threads(1), _threads.numba_threads(1):
            t0 = time.perf_counter()
            fresh = short.run()
            took = time.perf_counter() - t0
        if stored.provenance.get("compacted"):
            fresh = compact(fresh)
        row = _compare(task, *_prefix_records(stored.arrays, fresh, epochs, exp.records), rtol, atol)
        row.update(label=label, seconds=took)
        report.append(row)
    return report


def _prefix_records(stored, fresh, epochs: int, names) -> tuple[dict, dict]:
    """The record arrays ``names`` of ``stored`` at its recorded epochs below ``epochs`` (the second axis
    runs over the ``epochs`` array), and ``fresh``'s at the same epochs."""
    se, fe = np.asarray(stored["epochs"]), np.asarray(fresh["epochs"])
    keep = np.flatnonzero(se < epochs)
    at = np.searchsorted(fe, se[keep])
    if keep.size == 0 or at.max() >= fe.size or not np.array_equal(fe[at], se[keep]):
        raise ValueError(f"the rerun's records (epochs {fe.tolist()[:3]}...) do not cover the stored epochs "
                         f"below {epochs}")
    a = {"epochs": se[keep]}
    b = {"epochs": fe[at]}
    for name in names:
        arr, other = np.asarray(stored[name]), np.asarray(fresh[name])
        if arr.ndim < 2 or arr.shape[1] != se.size or other.ndim < 2 or other.shape[1] != fe.size:
            raise ValueError(f"`{name}` is registered as a record array but does not run over the records")
        a[name], b[name] = arr[:, keep], other[:, at]
    return a, b


def _compare(task, stored, fresh, rtol, atol) -> dict:
    row = {"label": task.label(), "ok": set(stored) == set(fresh), "max_abs": 0.0, "max_rel": 0.0, "worst": ""}
    for name in sorted(set(stored) & set(fresh)):
        a, b = np.asarray(stored[name]), np.asarray(fresh[name])
        if a.shape != b.shape or a.dtype.kind != b.dtype.kind:
            row.update(ok=False, worst=f"{name} (shape or type)")
            continue
        if a.dtype.kind not in "fc":
            if not np.array_equal(a, b):
                row.update(ok=False, worst=name, max_abs=np.inf)
            continue
        diff = np.abs(a - b)
        m = float(np.nanmax(diff)) if diff.size else 0.0
        rel = float(np.nanmax(diff / np.maximum(np.abs(a), 1e-300))) if diff.size else 0.0
        if not np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True):
            row["ok"] = False
        if m > row["max_abs"]:
            row.update(max_abs=m, max_rel=rel, worst=name)
    return row


def publish(source: Store, tasks, destination: Store) -> dict[str, int]:
    """Copy the tasks of ``tasks`` that ``source`` holds into ``destination``, compacted (:func:`compact`).

    Each published file keeps its task's provenance (revision, machine, times) with ``"compacted"``
    and the SHA-256 of the original file added. A task already published from the same original is
    left alone; one published from another original (a re-run) is replaced. Files of the same task at
    another result version (superseded by the one published) are deleted, so the published store
    holds one result per task.

    Returns ``{"published": ..., "unchanged": ..., "missing": ..., "superseded": ...}`` (missing: not
    in ``source``; superseded: files deleted).
    """
    if Path(source.root).resolve() == Path(destination.root).resolve():
        raise ValueError(f"publishing needs two stores; both are {source.root}")
    counts = {"published": 0, "unchanged": 0, "missing": 0, "superseded": 0}
    by_spec = defaultdict(list)  # (experiment, canonical spec) -> keys published at any version
    for prov in destination.tasks():
        if {"experiment", "spec", "key"} <= set(prov):
            by_spec[(prov["experiment"], _store._canonical(prov["spec"]))].append(prov["key"])
    for task in tasks:
        original = source.get(task)
        if original is None:
            counts["missing"] += 1
            continue
        for key in by_spec.get((task.experiment, _store._canonical(dict(task.spec))), []):
            if key != task.key:
                for path in (Path(destination.root) / task.experiment).glob(f"{key}.*"):
                    path.unlink()
                counts["superseded"] += 1
        there = destination.get(task) if task in destination else None
        made_from = None if there is None else there.provenance.get("compacted", {}).get("from_sha256")
        if made_from == original.provenance["sha256"]:
            counts["unchanged"] += 1
            continue
        prov = {k: v for k, v in original.provenance.items()
                if k not in ("store", "sha256", "arrays", "key", "spec", "experiment", "result_version")}
        n_records = len(original.arrays["epochs"]) if "epochs" in original.arrays else 0
        prov["compacted"] = {"from_sha256": original.provenance["sha256"], "floats": "float32",
                             "record_stride": record_stride(n_records, PUBLISHED_RECORDS), "records": n_records}
        destination.put(task, compact(original.arrays), prov)
        counts["published"] += 1
    return counts


def summary(store: Store, plan: dict[str, list[Task]]) -> str:
    """A Markdown summary of what ``store`` holds of each chapter's tasks in ``plan``: done / total, the
    revisions and machines that computed them, CPU-hours (wall time x torch threads) and dates."""
    rows = []
    totals = Counter()
    for chapter, tasks in plan.items():
        provs = [r.provenance for r in (store.get(t) for t in tasks) if r is not None]
        cpu_h = sum(float(p.get("wall_seconds", 0.0)) * int(p.get("torch_threads") or 1) for p in provs) / 3600
        revs = sorted({str(p.get("git_revision", "?"))[:7] + ("-dirty" if p.get("git_dirty") else "") for p in provs})
        machines = sorted({f"{p.get('device', '?')}, {p.get('cpu_count', '?')} CPUs" for p in provs})
        days = sorted(str(p.get(k, "?"))[:16].replace("T", " ") for p in provs for k in ("started", "finished"))
        when = f"{days[0]} to {days[-1]} UTC" if days else "-"
        rows.append([chapter, f"{len(provs)} / {len(tasks)}", f"{cpu_h:.2f}", ", ".join(revs) or "-",
                     "; ".join(machines) or "-", when])
        totals.update(done=len(provs), total=len(tasks))
        totals["cpu_h"] += cpu_h
    from .tables import markdown_table

    table = markdown_table(["chapter", "tasks stored", "CPU-hours", "revisions", "machines", "computed"], rows)
    return (f"{totals['done']} of {totals['total']} tasks stored, {totals['cpu_h']:.2f} CPU-hours.\n\n{table}\n")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def local_cluster(workdir, n_workers: int = 2, *, timeout: float = 90):
    """Context manager: a real Dask scheduler and ``n_workers`` single-threaded worker processes on
    127.0.0.1 (subprocesses, started in ``workdir``, stopped on exit); yields the scheduler address.

    For trying ``--scheduler`` on one machine and for the tests and benchmark; a real cluster is started
    by its own tools (``dask scheduler`` / ``dask worker``, dask-jobqueue, Kubernetes, ...).
    """
    from distributed import Client

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": _LIB + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cli = [sys.executable, "-m"]
    procs = [subprocess.Popen(cli + ["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port),
                                     "--no-dashboard"], cwd=workdir, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        for _ in range(n_workers):
            procs.append(subprocess.Popen(cli + ["distributed.cli.dask_worker", address, "--nthreads", "1",
                                                 "--no-nanny", "--no-dashboard", "--memory-limit", "0"],
                                          cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + timeout
        while True:  # the scheduler may need a moment before it accepts clients
            try:
                with Client(address, timeout="5s") as client:
                    client.wait_for_workers(n_workers, timeout=max(1, deadline - time.monotonic()))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


def _tasks(args) -> dict[str, list[Task]]:
    if args.tasks:
        return {Path(args.tasks).stem: read_tasks(args.tasks)}
    from . import tasks

    return tasks.plan(args.profile, args.chapter, device=args.device)


def read_tasks(path) -> list[Task]:
    """The tasks listed in a JSON file: ``[{"experiment": ..., "spec": {...}}, ...]`` (``--tasks FILE``)."""
    try:
        rows = json.loads(Path(path).read_text())
        return [Task(r["experiment"], r["spec"]) for r in rows]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"--tasks {path}: expected a JSON list of {{'experiment': ..., 'spec': {{...}}}} "
                         f"({exc})") from exc


def _fmt_seconds(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"


def _cmd_plan(args, store) -> int:
    workers = args.workers or _default_workers()
    total_left, total_unknown = 0.0, 0
    for chapter, tasks in _tasks(args).items():
        todo = pending(tasks, store)
        seconds, unknown = estimate(todo, store)
        total_left += seconds
        total_unknown += unknown
        if unknown == len(todo) and todo:
            when = "no estimate yet (no task of these kinds has been measured)"
        else:
            note = f" + {unknown} tasks of kinds never measured" if unknown else ""
            when = f"estimated {_fmt_seconds(seconds / workers)} on {workers} workers{note}"
        print(f"{chapter}: {len(tasks)} tasks, {len(tasks) - len(todo)} done, {len(todo)} to run, {when}")
        for exp, n in sorted(Counter(t.experiment for t in todo).items()):
            print(f"    {exp}: {n} to run")
        if args.verbose:
            for t in todo:
                print(f"      {t.label()}")
    unmeasured = f", plus {total_unknown} tasks with no measured time to go by" if total_unknown else ""
    print(f"remaining: {_fmt_seconds(total_left / workers)} on {workers} workers (from measured per-task times"
          f"{unmeasured})")
    return 0


def _cmd_run(args, store) -> int:
    everything = [t for tasks in _tasks(args).values() for t in tasks]
    start = time.perf_counter()
    try:
        counts = run(everything, store, workers=args.workers, scheduler=args.scheduler, progress=not args.quiet)
    except KeyboardInterrupt:
        print("\ninterrupted: finished tasks are stored; run the same command again to continue", file=sys.stderr)
        return 130
    print(f"stored {counts['stored']}, failed {counts['failed']}, already stored {counts['skipped']} "
          f"in {time.perf_counter() - start:.1f} s ({store.root})")
    return 1 if counts["failed"] else 0


def _cmd_status(args, store) -> int:
    failed_dir = store.root / "failed"
    plan = _tasks(args)
    if args.complete_chapters or args.all_complete:
        if args.tasks:
            raise SystemExit("--complete-chapters and --all-complete are about the book's chapters: they cannot be "
                             "combined with --tasks")
        from . import tasks as _tasks_module

        book = Path(_LIB).parent / "book"
        done = [book / f"{key}.md" for key in plan
                if all(t in store for t in _tasks_module.chapter_tasks(key, args.profile, device=args.device))]
        if args.all_complete:  # an exit status for scripts: 0 when every chapter with tasks is complete
            missing = [key for key in plan if book / f"{key}.md" not in done]
            print("every chapter's tasks are stored" if not missing else f"incomplete: {', '.join(missing)}")
            return 0 if not missing else 1
        print(" ".join(os.path.relpath(path) for path in done))
        return 0
    for chapter, tasks in plan.items():
        by = defaultdict(Counter)
        for t in tasks:
            state = "done" if t in store else "failed" if _failed_path(store, t).exists() else "pending"
            by[t.experiment][state] += 1
        for exp, c in by.items():
            print(f"{chapter:24s} {exp:12s} done {c['done']:4d}  pending {c['pending']:4d}  failed {c['failed']:4d}")
    if failed_dir.exists() and any(failed_dir.iterdir()):
        print(f"tracebacks of failed tasks: {failed_dir}")
    return 0


def _cmd_verify(args, store) -> int:
    code = 0
    if args.profile is not None:
        old = stale(store, [t for tasks in _tasks(args).values() for t in tasks])
        for task, version in old:
            print(f"STALE {task.label()}: stored at result version {version}, the code is at version {task.version}")
        if old:
            print(f"{len(old)} stored results are of an older result version (the code's output changed and they "
                  f"were not re-run). Recompute them with `python -m repalign.campaign run --profile {args.profile} "
                  f"--store CAMPAIGN_STORE`, then `python -m repalign.campaign publish --store CAMPAIGN_STORE "
                  f"--profile {args.profile}`.")
            code = 1
    report = verify(store, sample=args.sample, seed=args.seed, rtol=args.rtol, atol=args.atol, profile=args.profile,
                    budget=args.budget, workers=args.workers or 1)
    for r in report:
        took = "" if r.get("seconds") is None else f" [stored run {_fmt_seconds(float(r['seconds']))}]"
        print(f"{'OK  ' if r['ok'] else 'FAIL'} {r['label']}: max |diff| {r['max_abs']:.3g} "
              f"(rel {r['max_rel']:.3g}) in {r['worst'] or '-'}{took}")
    prefix = []
    if args.prefix_sample:
        prefix = verify_prefix(store, sample=args.prefix_sample, epochs=args.prefix_epochs, seed=args.seed,
                               rtol=args.rtol, atol=args.atol, profile=args.profile)
        for r in prefix:
            print(f"{'OK  ' if r['ok'] else 'FAIL'} {r['label']}: max |diff| {r['max_abs']:.3g} "
                  f"(rel {r['max_rel']:.3g}) in {r['worst'] or '-'} [rerun {_fmt_seconds(float(r['seconds']))}]")
        if not prefix:
            print(f"no stored task trains for more than {args.prefix_epochs} epochs of an experiment with an "
                  "epochs field: no prefix to check")
    report += prefix
    if not report:
        print(f"nothing to verify in {store.root}")
        return code
    bad = sum(not r["ok"] for r in report)
    print(f"{len(report) - bad}/{len(report)} match within rtol={args.rtol:g}, atol={args.atol:g}")
    return 1 if bad else code


def _cmd_publish(args, store) -> int:
    from . import tasks as _tasks_module
    from .profiles import current

    profile = args.profile or current()
    target = Store(args.to) if args.to else _store.published_store(profile)
    if target is None:
        root = _store.published_root(profile)
        if root is None:
            raise SystemExit("no published store outside a source checkout: give --to DIR")
        target = Store(root)
    plan = _tasks_module.plan(profile, args.chapter, device=args.device) if not args.tasks else _tasks(args)
    counts = publish(store, [t for tasks in plan.values() for t in tasks], target)
    full_plan = _tasks_module.plan(profile, None, device=args.device) if not args.tasks else plan
    text = (f"# Published {profile}-profile results\n\nWritten by `python -m repalign.campaign publish` from "
            f"`{store.root}`; one `.npz` + `.json` (provenance) per task, floats as float32.\n\n"
            + summary(target, full_plan))
    _store._atomic_write(target.root / "SUMMARY.md", text.encode())
    print(f"published {counts['published']}, unchanged {counts['unchanged']}, not yet computed {counts['missing']}, "
          f"superseded files of an older result version deleted {counts['superseded']} "
          f"-> {target.root} (summary in SUMMARY.md)")
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="repalign-campaign", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--store", help="result store directory (default $REPALIGN_RESULTS_DIR or results/store)")
    common.add_argument("--profile", choices=("quick", "paper"), default=None, help="default: $BOOK_PROFILE or quick")
    common.add_argument("--chapter", default=None, help="chapter number or key (default: every chapter with tasks)")
    common.add_argument("--tasks", default=None, help="a JSON file listing the tasks to use instead of a profile's")
    common.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    common.add_argument("--workers", type=int, default=None, help="local worker processes (default: one per core)")
    s = sub.add_parser("plan", parents=[common], help="tasks, how many are done, estimated remaining time")
    s.add_argument("-v", "--verbose", action="store_true", help="list every task still to run")
    s = sub.add_parser("run", parents=[common], help="compute the missing tasks")
    s.add_argument("--scheduler", default=None, help="address of a Dask distributed scheduler, e.g. tcp://host:8786")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s = sub.add_parser("status", parents=[common], help="done / pending / failed per chapter and experiment")
    s.add_argument("--complete-chapters", action="store_true",
                   help="print only the book paths of the chapters whose tasks are all stored")
    s.add_argument("--all-complete", action="store_true",
                   help="exit 0 if every chapter's tasks are stored, else 1 (naming the incomplete chapters)")
    s = sub.add_parser("verify", parents=[common], help="recompute a random sample of stored tasks and compare")
    s.add_argument("--sample", type=int, default=3)
    s.add_argument("--seed", default="0", help="an integer or any text, e.g. a commit hash (default 0)")
    s.add_argument("--budget", type=float, default=None,
                   help="draw tasks while their stored wall times fit in this many seconds on --workers workers")
    s.add_argument("--rtol", type=float, default=VERIFY_RTOL)
    s.add_argument("--atol", type=float, default=VERIFY_ATOL)
    s.add_argument("--prefix-sample", type=int, default=0,
                   help="also check this many long tasks (e.g. MNIST) on their first --prefix-epochs epochs")
    s.add_argument("--prefix-epochs", type=int, default=10)
    s = sub.add_parser("publish", parents=[common], help="copy finished tasks, compacted, into the published store")
    s.add_argument("--to", default=None, help="published store directory (default published/<profile>)")
    return p


def main(argv=None) -> int:
    """The command line (see the module docstring); returns the exit status."""
    args = _parser().parse_args(argv)
    store = Store(args.store)
    commands = {"plan": _cmd_plan, "run": _cmd_run, "status": _cmd_status, "verify": _cmd_verify,
                "publish": _cmd_publish}
    return commands[args.command](args, store)


if __name__ == "__main__":
    sys.exit(main())
