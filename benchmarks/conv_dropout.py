"""Training speed of Table 1's convolutional and dropout rows: reference vs ``engine="auto"``, same run.

    python benchmarks/conv_dropout.py [--epochs 20] [--repeats 2] [--threads 1] [--rows convolution dropout]

For each row at its Table 1 size (float32, full batch, plain SGD, two points, the default read-out
layer) and each trial count the paper profile trains together -- chapter 2's trials per row
(``profiles.settings("universal", "paper")``), chapter 3's rate trials and its single-trial grid cells
(``profiles.settings("rich_lazy", "paper")``) -- it prints ms per trial-epoch of

* ``reference``: ``train(engine="reference")``, the autograd loop, one trial after another (so its
  cost per trial-epoch does not depend on the trial count; it is timed at 1 trial and at chapter 2's
  count only);
* ``auto``: ``train(engine="auto")``, which now trains all trials together on the fused path
  (a :class:`repalign.models.BatchedConvNet`, or a BatchedMLP with per-trial dropout masks),

with the speed-up, and the implied paper-profile time of these rows for chapter 2 (trials x epochs)
and chapter 3's rate fits (the grid cells stop early, so their time is only bounded: 25 cells x
``grid_epochs``). Times are CPU time of this process (``time.process_time``) and wall time; the
store's tasks run with one torch thread, the default here. On a loaded machine the wall times are
not reliable; CPU times are steadier (but shared caches still slow them).
"""

from __future__ import annotations

import argparse
import time

import torch
from train import per_trial_epoch  # benchmarks/train.py

from repalign import data, profiles
from repalign import train as training


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", default=["convolution", "dropout"], choices=["convolution", "dropout"])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the store's tasks use 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ch2, ch3 = profiles.settings("universal", "paper"), profiles.settings("rich_lazy", "paper")
    t2, t_rate, t_grid = ch2["trials_other"], ch3["rate_trials"], ch3["grid_seeds"]
    counts = sorted({t_grid, t2, t_rate})
    d = data.two_point()
    print(f"{torch.get_num_threads()} torch thread(s), {args.epochs} epochs, float32; trial counts: chapter 2 "
          f"{t2} per row, chapter 3 {t_rate} rate trials and {t_grid} per grid cell")
    for name in args.rows:
        arch = profiles.TABLE1[name]
        print(f"{name}: {arch.hidden_layers} hidden layers, width {arch.width}, variant {arch.variant!r}")

        def timed(engine, T):
            def fn(e):
                training.train(arch, d.x, d.y, trials=T, epochs=e, engine=engine, progress=False)
            fn(2)  # warm-up
            return tuple(per_trial_epoch(fn, args.epochs, T, args.repeats, clock=c)
                         for c in (time.process_time, time.perf_counter))

        ref = {T: timed("reference", T) for T in sorted({1, t2})}
        base = min(cpu for cpu, _ in ref.values())
        for T, (cpu, wall) in ref.items():
            print(f"  reference {T:3d} trial(s): {cpu:7.2f} ms CPU ({wall:7.2f} wall) per trial-epoch")
        auto = {T: timed("auto", T) for T in counts}
        for T, (cpu, wall) in auto.items():
            print(f"  auto      {T:3d} trial(s): {cpu:7.2f} ms CPU ({wall:7.2f} wall) per trial-epoch   "
                  f"x{base / cpu:4.1f} vs reference")
        for label, T, epochs in (("chapter 2", t2, arch.epochs), ("chapter 3 rate fits", t_rate, arch.epochs),
                                 ("chapter 3 grid (at most)", t_grid, 25 * ch3["grid_epochs"])):
            n = T * epochs
            print(f"  {label:25s} {n:8d} trial-epochs: reference {base * n / 6e4:6.1f} min, "
                  f"auto {auto[T][0] * n / 6e4:6.1f} min (CPU)")


if __name__ == "__main__":
    main()
