"""Run a profile's tasks outside the notebooks: plan, run (resumable, in parallel or on a Dask cluster),
status and verify.

Usage (also as the console script ``repalign-campaign``)::

    python -m repalign.campaign plan   [--profile P] [--chapter N]
    python -m repalign.campaign run    [--profile P] [--chapter N] [--workers K] [--scheduler tcp://host:8786]
    python -m repalign.campaign status [--profile P]
    python -m repalign.campaign verify [--sample K] [--seed S]

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
:func:`numpy.allclose` at ``rtol=VERIFY_RTOL``, ``atol=VERIFY_ATOL``: see :data:`VERIFY_RTOL`. It exits
with status 1 on a mismatch.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import time
import traceback
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from . import store as _store
from .store import Store, Task

__all__ = ["main", "pending", "run", "estimate", "verify", "read_tasks", "local_cluster", "VERIFY_RTOL", "VERIFY_ATOL"]

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


def _single_thread() -> None:
    """One torch and one numba thread in this process (a worker runs one task per core)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    import numba
    import torch

    torch.set_num_threads(1)
    numba.set_num_threads(1)


def _worker_init() -> None:
    """A local worker: one thread, and Ctrl-C goes to the parent only (which stops the workers)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _single_thread()


def _compute(task: Task):
    """Worker side: ``("ok", arrays, provenance)`` or ``("error", traceback text, None)``."""
    try:
        _single_thread()
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


def verify(store: Store, *, sample: int = 3, seed: int = 0, rtol: float = VERIFY_RTOL, atol: float = VERIFY_ATOL,
           profile: str | None = None) -> list[dict]:
    """Recompute ``sample`` stored tasks chosen at random (``seed``) in this process and compare.

    The command line first sets this process to one torch and one numba thread, as a worker runs.

    Returns one dict per task: ``label``, ``ok``, ``max_abs`` and ``max_rel`` (the largest difference of
    any array) and ``worst`` (that array's name). Stored files of an older result version are skipped.
    """
    if not isinstance(sample, int) or sample < 1:
        raise ValueError(f"`sample` must be an integer >= 1, got {sample!r}")
    candidates = []
    for prov in store.tasks():
        if profile is not None and prov["spec"].get("profile") != profile:
            continue
        try:
            task = Task(prov["experiment"], prov["spec"])
            if task.key == prov["key"]:
                candidates.append(task)
        except ValueError:  # an experiment this code no longer has
            continue
    if not candidates:
        return []
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(candidates), size=min(sample, len(candidates)), replace=False)
    report = []
    for i in sorted(chosen):
        task = candidates[i]
        stored = store.get(task)
        if stored is None:
            report.append({"label": task.label(), "ok": False, "max_abs": np.inf, "max_rel": np.inf,
                           "worst": "(stored file corrupt)"})
            continue
        fresh = task.run()
        report.append(_compare(task, stored.arrays, fresh, rtol, atol))
    return report


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
    import json

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
    for chapter, tasks in _tasks(args).items():
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
    _single_thread()
    report = verify(store, sample=args.sample, seed=args.seed, rtol=args.rtol, atol=args.atol, profile=args.profile)
    if not report:
        print(f"nothing to verify in {store.root}")
        return 0
    for r in report:
        print(f"{'OK  ' if r['ok'] else 'FAIL'} {r['label']}: max |diff| {r['max_abs']:.3g} "
              f"(rel {r['max_rel']:.3g}) in {r['worst'] or '-'}")
    bad = sum(not r["ok"] for r in report)
    print(f"{len(report) - bad}/{len(report)} match within rtol={args.rtol:g}, atol={args.atol:g}")
    return 1 if bad else 0


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
    sub.add_parser("status", parents=[common], help="done / pending / failed per chapter and experiment")
    s = sub.add_parser("verify", parents=[common], help="recompute a random sample of stored tasks and compare")
    s.add_argument("--sample", type=int, default=3)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--rtol", type=float, default=VERIFY_RTOL)
    s.add_argument("--atol", type=float, default=VERIFY_ATOL)
    return p


def main(argv=None) -> int:
    """The command line (see the module docstring); returns the exit status."""
    args = _parser().parse_args(argv)
    store = Store(args.store)
    return {"plan": _cmd_plan, "run": _cmd_run, "status": _cmd_status, "verify": _cmd_verify}[args.command](args, store)


if __name__ == "__main__":
    sys.exit(main())
