"""Thread counts under load: torch's default vs one thread vs the library's choice, next to a busy process.

    python benchmarks/threads.py [--epochs 200] [--widths 100 500] [--trials 1 4]

For the two-point default network (Table 1 ``default`` row, quick-profile depth, the given widths) and
each of the fused torch path (``train(..., engine="fused")``) and the numba kernel (``engine="kernel"``),
times ms per trial-epoch with ``threads`` = torch's default (``torch.get_num_threads()`` at start), 1,
and None (the library's choice, :func:`repalign._threads.train_threads`), first with nothing else
started by this script, then while a second process runs a busy Python loop. It prints each time and
the ratios default/1 and auto/1 measured in the same run: relative numbers, meaningful on a shared
machine where absolute times are not. It also checks that torch's and numba's thread settings are the
same after every call as before.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import replace

import numba
import torch

from repalign import data, profiles
from repalign.train import train


def ms_per_trial_epoch(engine: str, threads: int | None, trials: int, width: int, epochs: int) -> float:
    arch = replace(profiles.architecture("default", "quick"), width=width)
    d = data.two_point()
    train(arch, d.x, d.y, trials=trials, epochs=5, engine=engine, threads=threads, progress=False)  # warm-up
    before = (torch.get_num_threads(), numba.get_num_threads())
    start = time.perf_counter()
    train(arch, d.x, d.y, trials=trials, epochs=epochs, engine=engine, threads=threads, progress=False)
    elapsed = time.perf_counter() - start
    after = (torch.get_num_threads(), numba.get_num_threads())
    if after != before:
        raise RuntimeError(f"train changed the thread settings (torch, numba) from {before} to {after}")
    return elapsed / epochs / trials * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--widths", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--trials", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args()
    default = torch.get_num_threads()
    print(f"torch default threads {default}, numba threads {numba.get_num_threads()}; "
          f"ms per trial-epoch, ratios from the same run (shared machine: compare ratios, not times)")
    for busy in (False, True):
        other = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
        try:
            for engine in ("fused", "kernel"):
                for trials in args.trials:
                    for width in args.widths:
                        t = {k: ms_per_trial_epoch(engine, k, trials, width, args.epochs) for k in (default, 1, None)}
                        print(f"{'busy second process' if busy else 'no extra load      '}  {engine:6s} "
                              f"trials {trials} width {width:4d}: default ({default}) {t[default]:8.3f}  "
                              f"1 thread {t[1]:8.3f}  auto {t[None]:8.3f}   default/1 {t[default] / t[1]:6.2f}  "
                              f"auto/1 {t[None] / t[1]:5.2f}", flush=True)
        finally:
            if other is not None:
                other.kill()
                other.wait()


if __name__ == "__main__":
    main()
