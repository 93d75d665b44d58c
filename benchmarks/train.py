"""Training speed, in ms per trial-epoch, with ratios measured in the same run.

    python benchmarks/train.py [--arch default] [--epochs 200] [--trials 1 2 4] [--threads N] [--no-mnist]

Times, for one Table 1 architecture (float32, full batch, plain SGD, recording ||dh||^2, ||dy||^2, w
and the loss every epoch):

* ``naive``: the loop a typical user writes (and the released code ran): each epoch, switch to eval
  mode and re-run forward passes on both points to read the tracked quantities (``.item()`` each),
  then a training forward pass, ``backward`` and ``optimizer.step``. One trial.
* ``reference``: ``repalign.train.train(engine="reference")``, the autograd loop that records from the
  training forward pass.
* ``fused``: ``engine="fused"``, the fast path's torch back end (in-place ``baddbmm_`` updates).
* ``kernel``: ``engine="kernel"``, the compiled numba kernel that ``engine="auto"`` uses on the CPU
  (trials run in parallel, one per core).

each for every trial count, and prints ms per trial-epoch with the speed-up over the naive loop and the
ratio to the memory floor. The floor (each epoch must read the weights twice and update them once)
is measured as a kernel that does just that memory traffic and nothing else, with the same threads. Then: the time of one rate fit (``repalign.fit.fit_rates`` on a 6000-epoch recording),
one MNIST epoch at batch 64 for the Table 2 network (784-100-100-100-100-10, random data of MNIST's
shape: the time does not depend on the pixel values), and the implied two-point part of the paper
profile at the fastest measured throughput.
"""

from __future__ import annotations

import argparse
import time

import numba
import numpy as np
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


def per_trial_epoch(fn, epochs: int, trials: int, repeats: int, clock=time.perf_counter) -> float:
    """Throughput in ms per trial-epoch: ``fn(epochs)`` minus ``fn(1)`` (best of ``repeats`` each), so
    that building the networks (~0.1 s per 20 x 500 trial) is not counted as training. ``clock``:
    wall time by default; ``time.process_time`` counts this process's CPU time (steadier on a shared
    machine, equal to wall time for one thread on an idle one)."""
    def best(e):
        out = float("inf")
        for _ in range(repeats):
            start = clock()
            fn(e)
            out = min(out, clock() - start)
        return out

    return 1e3 * (best(epochs) - best(1)) / ((epochs - 1) * trials)


@numba.njit(parallel=True, fastmath={"reassoc"})
def _two_reads_one_write(W, c):
    """Per trial (in parallel): read every weight (a sum), then read and write every weight."""
    acc = np.zeros(W.shape[0], W.dtype)
    for t in numba.prange(W.shape[0]):
        s = W[t, 0] * 0
        for k in range(W.shape[1]):
            s += W[t, k]
        for k in range(W.shape[1]):
            W[t, k] = W[t, k] * c
        acc[t] = s
    return acc


def best_pass_seconds(n_floats: int, trials: int, repeats: int) -> float:
    """Best of ``repeats`` wall times of one 2-reads-1-write pass (:func:`_two_reads_one_write`) over
    ``trials`` x ``n_floats`` float32 weights, the trials in parallel on all threads (after a warm-up)."""
    W = np.ones((trials, n_floats), np.float32)
    _two_reads_one_write(W, np.float32(1.0))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        _two_reads_one_write(W, np.float32(1.0))
        best = min(best, time.perf_counter() - start)
    return best


def floor_ms(arch, trials: int = 4, repeats: int = 20) -> float:
    """Memory floor per trial-epoch: the least memory traffic of one SGD epoch -- read all weights twice
    (forward, backward) and write them once (update) -- measured as a numba kernel that reads each
    trial's weights once and then reads and writes them once (2 reads + 1 write), ``trials`` trials in
    parallel on all threads, as the kernel runs. Best of ``repeats``."""
    n = sum(p.numel() for p in models.build(arch, seed=0).parameters())
    return 1e3 * best_pass_seconds(n, trials, repeats) / trials


def mnist_epoch_s(trials: int, repeats: int) -> float:
    """Seconds for one epoch (60000 images, batch 64) of the Table 2 MNIST network, ``trials`` at once."""
    arch = profiles.TABLE2["mnist"]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(60000, 784, generator=g).numpy()
    y = torch.nn.functional.one_hot(torch.randint(0, 10, (60000,), generator=g), 10).double().numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        train.train(arch, x, y, trials=trials, epochs=1, batch_size=64, progress=False)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="default", choices=sorted(profiles.TABLE1))
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--trials", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--no-mnist", action="store_true", help="skip the MNIST epoch timing")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    arch, d = profiles.TABLE1[args.arch], data.two_point()
    E = args.epochs
    print(f"{arch.name}: {arch.hidden_layers} hidden layers x {arch.width} units, {E} epochs, float32, "
          f"{torch.get_num_threads()} threads")
    for engine in ("kernel", "fused"):  # warm-up (the kernel compiles or loads from its cache here)
        train.train(arch, d.x, d.y, trials=1, epochs=2, progress=False, engine=engine)

    rows = [("naive loop (1 trial)", per_trial_epoch(lambda e: naive(arch, d, e), E, 1, args.repeats))]
    for engine in ("reference", "fused", "kernel"):
        for T in args.trials:
            ms = per_trial_epoch(lambda e: train.train(arch, d.x, d.y, trials=T, epochs=e, engine=engine,
                                                     progress=False), E, T, args.repeats)
            rows.append((f"{engine} ({T} trial{'s' * (T > 1)})", ms))
    base = rows[0][1]
    floor = floor_ms(arch)
    for name, ms in rows:
        print(f"  {name:24s} {ms:8.2f} ms per trial-epoch   x{base / ms:5.1f} vs naive   "
              f"{ms / floor:5.2f} x floor")
    print(f"  {'memory floor (estimate)':24s} {floor:8.2f} ms per trial-epoch")

    rec = train.train(arch, d.x, d.y, trials=1, epochs=min(arch.epochs, 6000), progress=False)
    start = time.perf_counter()
    f = fit.fit_rates(rec.epochs, rec.z[0], d.dx_sq, d.dy_target_sq)
    fit_s = time.perf_counter() - start
    print(f"fit_rates on {rec.n_records} records: {fit_s:.3f} s (error {f.error:.3g})")

    if not args.no_mnist:
        for T in (1, 4):
            s = mnist_epoch_s(T, 1)
            print(f"MNIST epoch (batch 64, Table 2 network, {T} trial{'s' * (T > 1)} at once): {s:.2f} s, "
                  f"{s / T:.2f} s per trial-epoch")

    best = min(ms for _, ms in rows)
    trial_epochs = sum(a.epochs for a in profiles.TABLE1.values())
    print(f"two-point runs of Table 1, one trial each ({trial_epochs} trial-epochs, all rows at this row's "
          f"cost): {best * trial_epochs / 1e3 / 60:.1f} min at the fastest rate above")


if __name__ == "__main__":
    main()
