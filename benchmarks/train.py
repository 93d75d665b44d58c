"""Training speed on the two-point task, in ms per trial-epoch, with ratios measured in the same run.

    python benchmarks/train.py [--arch default] [--epochs 100] [--trials 1 4] [--threads N]

Times, for one Table 1 architecture (float32, full batch, plain SGD, recording ||dh||^2, ||dy||^2, w
and the loss every epoch):

* ``naive``: the loop a typical user writes (and the released code ran): each epoch, switch to eval
  mode and re-run forward passes on both points to read the tracked quantities (``.item()`` each),
  then a training forward pass, ``backward`` and ``optimizer.step``. One trial.
* ``reference``: ``repalign.train.train(engine="reference")``, the autograd loop that records from the
  training forward pass, for each trial count.
* ``fast``: ``repalign.train.train()`` (``engine="auto"``, the hand-written fused SGD of
  ``repalign.fastpath``), for each trial count.

and prints ms per trial-epoch with each row's speed-up over the naive loop. The memory floor of the
issue (each epoch must read the weights twice and update them once) is estimated from this machine's
measured copy bandwidth on a buffer the size of the weights, and printed for comparison. Then: the time
of one rate fit (``repalign.fit.fit_rates`` on a 6000-epoch recording) and the implied time of the
two-point part of the paper profile at the fastest measured throughput.
"""

from __future__ import annotations

import argparse
import time

import torch

from repalign import data, fit, models, profiles, train


def naive(arch, d, epochs: int, seed: int = 0) -> None:
    """A typical user's loop: separate tracking forward passes with host syncs every epoch."""
    net = models.build(arch, seed=seed)
    opt = torch.optim.SGD(net.parameters(), lr=arch.lr)
    x = torch.tensor(d.x, dtype=torch.float32)
    y = torch.tensor(d.y, dtype=torch.float32)
    layer = models.default_hidden_layer(arch)
    log = []
    for _ in range(epochs):
        net.eval()
        with torch.no_grad():
            o1, h1 = net(x[:1], hidden=layer)
            o2, h2 = net(x[1:], hidden=layer)
            out, _ = net(x)
            dy = o2 - o1
            log.append(((h2 - h1).square().sum().item(), dy.square().sum().item(),
                        (dy.square().sum() - (dy * (y[1] - y[0])).sum()).item(),
                        (0.5 * (out - y).square().sum(1).mean()).item()))
        net.train()
        out, _ = net(x)
        loss = 0.5 * (out - y).square().sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def per_trial_epoch(fn, epochs: int, trials: int, repeats: int) -> float:
    """Best of ``repeats`` runs, in ms per trial-epoch (network construction included)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return 1e3 * best / (epochs * trials)


def floor_ms(arch) -> float:
    """Memory floor per trial-epoch: read all weights twice and read+write them once (4 passes)."""
    n = sum(p.numel() for p in models.build(arch, seed=0).parameters())
    buf = torch.empty(n)
    dst = torch.empty(n)
    dst.copy_(buf)
    best = float("inf")
    for _ in range(20):
        start = time.perf_counter()
        dst.copy_(buf)  # one read + one write = 2 passes
        best = min(best, time.perf_counter() - start)
    return 1e3 * best * 2  # 4 passes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="default", choices=sorted(profiles.TABLE1))
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--trials", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    arch, d = profiles.TABLE1[args.arch], data.two_point()
    E = args.epochs
    print(f"{arch.name}: {arch.hidden_layers} hidden layers x {arch.width} units, {E} epochs, float32, "
          f"{torch.get_num_threads()} torch threads")
    train.train(arch, d.x, d.y, trials=1, epochs=2, progress=False)  # warm-up

    rows = [("naive loop (1 trial)", per_trial_epoch(lambda: naive(arch, d, E), E, 1, args.repeats))]
    for engine in ("reference", "auto"):
        for T in args.trials:
            ms = per_trial_epoch(lambda: train.train(arch, d.x, d.y, trials=T, epochs=E, engine=engine,
                                                     progress=False), E, T, args.repeats)
            rows.append((f"{'fast' if engine == 'auto' else engine} ({T} trial{'s' * (T > 1)})", ms))
    base = rows[0][1]
    floor = floor_ms(arch)
    for name, ms in rows:
        print(f"  {name:24s} {ms:8.2f} ms per trial-epoch   x{base / ms:5.1f} vs naive   "
              f"{ms / floor:5.1f} x floor")
    print(f"  {'memory floor (estimate)':24s} {floor:8.2f} ms per trial-epoch")

    rec = train.train(arch, d.x, d.y, trials=1, epochs=min(arch.epochs, 6000), progress=False)
    start = time.perf_counter()
    f = fit.fit_rates(rec.epochs, rec.z[0], d.dx_sq, d.dy_target_sq)
    fit_s = time.perf_counter() - start
    print(f"fit_rates on {rec.n_records} records: {fit_s:.3f} s (error {f.error:.3g})")

    best = min(ms for _, ms in rows)
    trial_epochs = sum(a.epochs for a in profiles.TABLE1.values())
    print(f"two-point runs of Table 1, one trial each ({trial_epochs} trial-epochs, all rows at this row's "
          f"cost): {best * trial_epochs / 1e3 / 60:.1f} min at the fastest rate above")


if __name__ == "__main__":
    main()
