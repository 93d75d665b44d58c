"""XOR (full batch, 4 points) and blobs (minibatches of 64): ``engine="auto"`` vs a plain PyTorch loop.

    python benchmarks/xor_blobs.py [--epochs 20] [--repeats 2] [--threads 1] [--trials 10]

``plain``: the loop a user writes, one trial: ``nn.Sequential`` of ``nn.Linear`` and the activation,
``torch.optim.SGD``, eq. (1), a shuffled index per epoch (blobs), no tracking. ``auto``:
``repalign.train.train`` (records the tracked pair every epoch), ``--trials`` trials at once (chapter
4's paper profile trains 10). Prints CPU (``time.process_time``) and wall ms per trial-epoch and the
ratio; wall times on a loaded machine are not reliable.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn
from train import per_trial_epoch  # benchmarks/train.py

from repalign import data, models, profiles
from repalign import train as training


def plain(arch, x, y, epochs: int, batch_size: int | None, seed: int = 0) -> None:
    """One trial of a user's loop (the same Xavier-normal initial weights as models.build)."""
    net = models.build(arch, input_dim=x.shape[1], output_dim=y.shape[1], seed=seed)
    act = {"leaky_relu": nn.LeakyReLU(), "tanh": nn.Tanh()}[arch.activation]
    layers = []
    for lin in net.linears[:-1]:
        layers += [lin, act]
    seq = nn.Sequential(*layers, net.linears[-1])
    opt = torch.optim.SGD(seq.parameters(), lr=arch.lr)
    X, Y = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    n = X.shape[0]
    b = batch_size or n
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        idx = torch.randperm(n, generator=g) if b < n else torch.arange(n)
        for s in range(0, n, b):
            j = idx[s:s + b]
            loss = 0.5 * (seq(X[j]) - Y[j]).square().sum(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--trials", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    xor = data.xor()
    blobs = data.blobs()
    cases = [("xor_intermediate", xor, None), ("blobs_high", blobs, 64)]
    for name, d, bs in cases:
        arch = profiles.TABLE2[name]
        T = args.trials
        rows = {}
        for label, fn, trials in (
                ("plain (1 trial)", lambda e: plain(arch, d.x, d.y, e, bs), 1),
                (f"auto ({T} trials)", lambda e: training.train(arch, d.x, d.y, trials=T, epochs=e, batch_size=bs,
                                                              progress=False), T)):
            fn(2)
            rows[label] = tuple(per_trial_epoch(fn, args.epochs, trials, args.repeats, clock=c)
                                for c in (time.process_time, time.perf_counter))
        base = rows["plain (1 trial)"][0]
        print(f"{name}: {arch.hidden_layers} x {arch.width}, {d.x.shape[0]} points, batch {bs or 'full'}")
        for label, (cpu, wall) in rows.items():
            print(f"  {label:18s} {cpu:8.2f} ms CPU ({wall:8.2f} wall) per trial-epoch   x{base / cpu:5.2f} vs plain")


if __name__ == "__main__":
    main()
