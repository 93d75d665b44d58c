"""Campaign scaling: the same small campaign with 1 and 2 local workers and on a 2-worker Dask cluster.

    python benchmarks/campaign.py [--tasks 8] [--epochs 1500] [--workers 1 2]

The campaign is ``--tasks`` two-point tasks of the quick profile's default network (20 hidden layers
of 100 units, one seed each, ``--epochs`` epochs, trained and fitted), each run from an empty store.
It prints, for each way of running, the wall time from submission to the last stored result (so the
start of the workers and their imports count, as they do for a user), tasks per minute, and the ratio
to one local worker. An untimed one-task run first fills numba's on-disk cache, so no way of running
pays the kernel's compilation (each worker process still imports and loads it). The Dask cluster (a scheduler and 2 single-threaded workers on 127.0.0.1) is
started before its timer starts, as a user's existing cluster would be; the files it stores are
compared byte for byte with the local run's.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from repalign import campaign, tasks
from repalign.store import Store


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", type=int, default=8)
    p.add_argument("--epochs", type=int, default=1500)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = p.parse_args()
    todo = [tasks.two_point_task("default", profile="quick", seed=s, trials=1, epochs=args.epochs)
            for s in range(args.tasks)]
    tmp = Path(tempfile.mkdtemp(prefix="repalign-bench-"))
    rows, stores = [], {}
    # Untimed warm-up: the first task anywhere compiles the numba kernel (about 20 s) into its on-disk
    # cache; every later worker process loads it from there. Without this the first way of running pays
    # the compilation and the ratios are meaningless.
    campaign.run(todo[:1], Store(tmp / "warm-up"), workers=1, progress=False)
    for k in args.workers:
        store = Store(tmp / f"local{k}")
        start = time.perf_counter()
        campaign.run(todo, store, workers=k, progress=False)
        rows.append((f"local, {k} worker{'s' * (k > 1)}", time.perf_counter() - start))
        stores[rows[-1][0]] = store
    with campaign.local_cluster(tmp, n_workers=2) as address:
        store = Store(tmp / "dask")
        start = time.perf_counter()
        campaign.run(todo, store, scheduler=address, progress=False)
        rows.append(("Dask, 2 workers", time.perf_counter() - start))
        stores[rows[-1][0]] = store
    base = rows[0][1]
    print(f"{args.tasks} tasks: default network (quick profile, width 100), 1 seed, {args.epochs} epochs, "
          "trained and fitted")
    for name, seconds in rows:
        print(f"{name:18s} {seconds:7.1f} s  {60 * args.tasks / seconds:6.1f} tasks/min  x{base / seconds:.2f}")
    ref = stores[rows[0][0]]
    same = all(ref.paths(t)[0].read_bytes() == s.paths(t)[0].read_bytes() for s in stores.values() for t in todo)
    print(f"stored files byte-identical across all runs: {same}")
    per_task = [p["wall_seconds"] for p in ref.tasks()]
    print(f"per-task compute time in a 1-thread worker: {min(per_task):.1f}-{max(per_task):.1f} s")


if __name__ == "__main__":
    main()
