"""Chapter 6's store tasks: the time of one paper-profile ``mnist`` task, and the profile's estimated cost.

    python benchmarks/mnist_tasks.py [--epochs 2 4]

Runs, from nothing (no store), the first task of chapter 6's paper-profile SGD run and of its Adam run
(:func:`repalign.tasks.mnist_tasks`: 5 seeds on all 60,000 images, batch size and learning rates of
the profile), each twice, with the two ``--epochs`` counts, in one process with one torch thread as a
campaign worker runs. The difference of the two times is the cost per epoch; the rest is the task's
fixed work (loading MNIST, the fits, the probe distances, the test accuracy), small and noisy. A full
task is estimated as fixed work + per-epoch cost x the profile's epochs, from wall time and from this
process's CPU time (one thread: on a loaded machine the CPU time is what an idle core would take, the
wall time is not). It prints both, the Adam/SGD ratio of the per-epoch cost measured in this run, the
number of tasks and the CPU-hours of the paper profile's chapter 6. (At the quick profile's 6,000
images the per-epoch cost at a few epochs is lost in the fits' run-to-run variation.)
"""

from __future__ import annotations

import argparse
import time

from repalign import tasks
from repalign.store import Task


def _times(task: Task, epochs: int) -> tuple[float, float]:
    """(wall, CPU) seconds of ``task`` run with ``epochs`` epochs."""
    short = Task(task.experiment, {**task.spec, "epochs": epochs})
    wall, cpu = time.perf_counter(), time.process_time()
    short.run()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, nargs=2, default=[2, 4])
    args = p.parse_args()
    lo, hi = sorted(args.epochs)
    if not 2 <= lo < hi:
        raise SystemExit(f"--epochs needs two different counts >= 2 (a fit needs 3 records), got {args.epochs}")
    import torch

    torch.set_num_threads(1)
    rows = {}
    for adam in (False, True):
        first = tasks.mnist_tasks("paper", adam=adam)[0]
        (w1, c1), (w2, c2) = _times(first, lo), _times(first, hi)
        per = ((w2 - w1) / (hi - lo), (c2 - c1) / (hi - lo))
        rows[adam] = (first, per, (w1 - lo * per[0], c1 - lo * per[1]))
    cpu_total = 0.0
    print(f"first paper-profile mnist task timed at {lo} and {hi} epochs, 1 torch thread; wall / CPU seconds")
    for adam, (task, per, fixed) in rows.items():
        s = task.spec
        n_tasks = len(tasks.mnist_tasks("paper", adam=adam))
        full = [f + e * s["epochs"] for f, e in zip(fixed, per)]
        cpu_total += n_tasks * full[1]
        print(f"{'adam' if adam else 'sgd':4s}: {len(s['seeds'])} seeds x {s['n_train']} images, per epoch "
              f"{per[0]:.2f} / {per[1]:.2f} s ({per[1] / rows[False][1][1]:.2f}x SGD, CPU), fixed {fixed[0]:.1f} / "
              f"{fixed[1]:.1f} s; full task ({s['epochs']} epochs) {full[0] / 60:.1f} / {full[1] / 60:.1f} min; "
              f"{n_tasks} tasks")
    print(f"paper profile, chapter 6: about {cpu_total / 3600:.1f} CPU-hours (one thread per task)")

if __name__ == "__main__":
    main()
