"""Training speed of `repalign.train.train` on the two-point task, in ms per trial-epoch.

    python benchmarks/train.py [--arch default] [--epochs 50] [--trials 1 4]

Times a run of `--epochs` epochs (network construction included) for each trial count and prints
ms per trial-epoch with the ratio against the single-trial run measured in the same process.
"""

from __future__ import annotations

import argparse
import time

from repalign import data, profiles, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="default", choices=sorted(profiles.TABLE1))
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--trials", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args()
    arch, d = profiles.TABLE1[args.arch], data.two_point()
    train.train(arch, d.x, d.y, trials=1, epochs=2, progress=False)  # warm-up
    base = None
    print(f"{arch.name}: {arch.hidden_layers} hidden layers x {arch.width} units, {args.epochs} epochs, float32")
    for trials in args.trials:
        start = time.perf_counter()
        train.train(arch, d.x, d.y, trials=trials, epochs=args.epochs, progress=False)
        per = 1e3 * (time.perf_counter() - start) / (args.epochs * trials)
        base = per if base is None else base
        print(f"  {trials:3d} trial(s): {per:8.2f} ms per trial-epoch  (x{base / per:.1f} vs the first row)")


if __name__ == "__main__":
    main()
