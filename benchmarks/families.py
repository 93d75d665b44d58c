"""Every network family the paper profile trains: our engine, a plain PyTorch loop, the reference, a floor.

    python benchmarks/families.py [--quick] [--threads 2] [--families two_point mnist_sgd ...]

For each family (the Table 1/2 rows the chapters train, at the paper's widths and float32) it times,
in ms per trial-epoch and in one process (interleaved, so the ratios are fair on a loaded machine):

* ``auto``: ``repalign.train.train(engine="auto")`` at the family's trial count (it picks whatever fast
  path applies, so new fast paths show up here without changes);
* ``plain``: the loop a user would write: ``nn.Sequential`` of ``nn.Linear`` and the activation (the conv
  family: our ``ConvNet``, an ordinary ``nn.Module``), ``torch.optim.SGD``/``Adam``, a fresh
  ``torch.randperm`` per epoch for minibatches, one trial at a time, no tracking;
* ``reference``: ``train(engine="reference")``, the autograd loop, same trials as ``auto``;
* ``floor``: the larger of two lower bounds measured on this machine, the binding one named:
  ``memory`` (full-batch families only; minibatch weights stay in cache): the weights' traffic per epoch
  (SGD: read twice, write once; Adam: also the gradient written and read and both moments read and
  written, 9 passes) at the bandwidth of a streaming read/write of that many bytes (the numba kernel of
  ``benchmarks/train.py``); and ``gemm``:
  the family's multiply-adds (forward, input gradient but none for the input layer, weight gradient;
  counted with hooks on ``nn.Linear``/``nn.Conv1d``) at the best ``torch.matmul`` throughput measured
  at the family's own largest layer shape and at 1024^3.

Then the paper profile: per chapter, the trial-epochs each family trains (from ``repalign.tasks.plan``
for chapters 2, 3, 7 -- Fig. 5 grid cells counted at their epoch limit, an upper bound -- and from
``repalign.profiles`` for chapters 4-6), times ``auto``'s ms per trial-epoch, against the same sum at the
floor. Two-point rows other than the measured one (narrow, shallow, the 1-layer XOR row) are scaled by
their parameter count (their cost is memory traffic).

MNIST uses random data of MNIST's shape (784 inputs, one-hot of 10 classes; the time does not depend on
the pixel values) on ``--mnist-images`` images, the per-epoch time scaled to 60,000.
Thread counts are fixed (``--threads``, torch and numba) and printed. Timings are best of
``--repeats`` and are only as good as the machine is idle.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numba
import numpy as np
import torch
from torch import nn

from repalign import data, models, profiles, tasks
from repalign.activations import LEAKY_SLOPE
from repalign.train import train

_spec = importlib.util.spec_from_file_location("_bench_train", Path(__file__).with_name("train.py"))
_bench_train = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_bench_train)
per_trial_epoch = _bench_train.per_trial_epoch  # best(E epochs) - best(1 epoch), per trial-epoch

MNIST_IMAGES = 60_000


@dataclass(frozen=True)
class Family:
    """One family: a row, its data, minibatch size, optimiser and the trials ``auto`` trains together."""

    name: str
    arch: profiles.Architecture
    x: np.ndarray
    y: np.ndarray
    batch_size: int | None
    optimizer: str
    lr: float
    trials: int
    epochs: int  # epochs timed (minus one epoch: see per_trial_epoch)
    scale: float = 1.0  # per-epoch time multiplier (MNIST subset -> 60,000 images)


def _mnist_like(n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 784, generator=g).numpy()
    y = nn.functional.one_hot(torch.randint(0, 10, (n,), generator=g), 10).float().numpy()
    return x, y


def families(quick: bool, mnist_images: int) -> list[Family]:
    d2, xor, blobs = data.two_point(), data.xor(), data.blobs()
    t1, t2 = profiles.TABLE1, profiles.TABLE2
    mx, my = _mnist_like(mnist_images)
    mn = profiles.settings("mnist", "paper")
    bl = profiles.settings("blobs", "paper")
    uni = profiles.settings("universal", "paper")
    trials = uni["trials_other"]

    def e(full: int, short: int) -> int:
        return short if quick else full

    return [
        Family("two_point", t1["default"], d2.x, d2.y, None, "sgd", t1["default"].lr, trials, e(200, 60)),
        Family("two_point_adam", t1["default"], d2.x, d2.y, None, "adam", uni["adam"]["lr"], uni["adam"]["trials"],
               e(100, 30)),
        Family("conv", t1["convolution"], d2.x, d2.y, None, "sgd", t1["convolution"].lr, trials, e(60, 20)),
        Family("dropout", t1["dropout"], d2.x, d2.y, None, "sgd", t1["dropout"].lr, trials, e(100, 30)),
        Family("xor", t2["xor_intermediate"], xor.x, xor.y, None, "sgd", t2["xor_intermediate"].lr,
               profiles.settings("xor", "paper")["trials"], e(100, 30)),
        Family("blobs", t2["blobs_low"], blobs.x, blobs.y, bl["batch_size"], "sgd", t2["blobs_low"].lr,
               bl["seeds"], e(4, 2)),
        Family("mnist_sgd", t2["mnist"], mx, my, mn["batch_size"], "sgd", mn["lr"], e(10, 5), e(3, 2),
               MNIST_IMAGES / mnist_images),
        Family("mnist_adam", t2["mnist"], mx, my, mn["batch_size"], "adam", mn["adam_lr"], e(10, 5), e(3, 2),
               MNIST_IMAGES / mnist_images),
    ]


# --- the plain PyTorch loop ----------------------------------------------------------------------------

_PLAIN_ACT = {"leaky_relu": lambda: nn.LeakyReLU(LEAKY_SLOPE), "tanh": nn.Tanh, "relu": nn.ReLU,
              "linear": nn.Identity, "elu": nn.ELU, "silu": nn.SiLU}


def plain_network(f: Family) -> nn.Module:
    """What a user writes: nn.Sequential of Linear + activation (+ Dropout); the conv row is our ConvNet."""
    a = f.arch
    if a.variant == "conv":
        return models.build(a, input_dim=f.x.shape[1], output_dim=f.y.shape[1], seed=0)
    dims = [f.x.shape[1]] + [a.width] * a.hidden_layers
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(dims[:-1], dims[1:]):
        if a.variant == "dropout":
            layers.append(nn.Dropout(models.DROPOUT_P))
        layers += [nn.Linear(fan_in, fan_out), _PLAIN_ACT[a.activation]()]
    if a.variant == "dropout":
        layers.append(nn.Dropout(models.DROPOUT_P))
    layers.append(nn.Linear(dims[-1], f.y.shape[1]))
    return nn.Sequential(*layers)


def plain_run(f: Family, epochs: int, seed: int = 0) -> None:
    """One trial of the plain loop for ``epochs`` epochs (its network built inside, as train() does)."""
    torch.manual_seed(seed)
    net = plain_network(f)
    opt = (torch.optim.SGD(net.parameters(), lr=f.lr) if f.optimizer == "sgd"
           else torch.optim.Adam(net.parameters(), lr=f.lr))
    x, y = torch.tensor(f.x, dtype=torch.float32), torch.tensor(f.y, dtype=torch.float32)
    n = x.shape[0]
    bs = f.batch_size or n
    for _ in range(epochs):
        perm = torch.randperm(n) if bs < n else None
        for start in range(0, n, bs):
            xb, yb = (x, y) if perm is None else (x[perm[start:start + bs]], y[perm[start:start + bs]])
            out = net(xb)
            out = out[0] if isinstance(out, tuple) else out  # our ConvNet returns (output, hidden)
            loss = 0.5 * (out - yb).square().sum(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()


# --- floors --------------------------------------------------------------------------------------------

def multiply_adds(f: Family) -> float:
    """Multiply-adds of one trial-epoch: forward + input gradient (not for the input layer) + weight
    gradient of every nn.Linear / nn.Conv1d, counted from the output sizes with forward hooks."""
    net = models.build(f.arch, input_dim=f.x.shape[1], output_dim=f.y.shape[1], seed=0)
    counts = []

    def hook(mod, inp, out):
        counts.append(out.numel() * mod.weight[0].numel())  # outputs x (fan_in x kernel) each

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv1d))]
    n = f.x.shape[0]
    with torch.no_grad():
        net(torch.zeros(n, f.x.shape[1]))
    for h in handles:
        h.remove()
    return 3 * sum(counts) - counts[0]  # the input layer needs no input gradient


def gemm_gflops(shapes, threads: int, repeats: int = 5) -> dict[tuple, float]:
    """Best torch.matmul GFLOP/s (2 flops per multiply-add) at each (m, k, n)."""
    out = {}
    for m, k, n in shapes:
        a, b = torch.randn(m, k), torch.randn(k, n)
        c = torch.empty(m, n)
        reps = max(1, int(2e8 / (m * k * n)))  # ~0.2 G multiply-adds per timing
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            for _ in range(reps):
                torch.matmul(a, b, out=c)
            best = min(best, (time.perf_counter() - t) / reps)
        out[(m, k, n)] = 2 * m * k * n / best / 1e9
    return out


def bandwidth_gbs(n_floats: int, trials: int, repeats: int = 10) -> float:
    """GB/s of a streaming 2-reads-1-write pass over ``trials`` x ``n_floats`` float32 (numba, parallel)."""
    return 3 * 4 * n_floats * trials / _bench_train.best_pass_seconds(n_floats, trials, repeats) / 1e9


def floor_ms(f: Family, peak: float, threads: int) -> tuple[float, str, dict]:
    """(ms per trial-epoch, which bound binds, details) for family ``f``."""
    net = models.build(f.arch, input_dim=f.x.shape[1], output_dim=f.y.shape[1], seed=0)
    n_params = sum(p.numel() for p in net.parameters())
    passes = 3 if f.optimizer == "sgd" else 9
    if f.batch_size is None:
        bw = bandwidth_gbs(n_params, f.trials)
        mem = passes * 4 * n_params / bw / 1e9 * 1e3
    else:  # minibatches: the small weights stay in cache over the many steps; no memory bound is claimed
        bw, mem = float("nan"), 0.0
    macs = multiply_adds(f)
    big = max((m for m in net.modules() if isinstance(m, nn.Linear)), key=lambda m: m.weight.numel())
    shape = (f.batch_size or f.x.shape[0], big.in_features, big.out_features)
    rate = max(peak, gemm_gflops([shape], threads)[shape])
    gemm = 2 * macs / rate / 1e9 * 1e3
    detail = dict(bandwidth=bw, macs=macs, gflops=rate, mem=mem * f.scale, gemm=gemm * f.scale)
    return max(mem, gemm) * f.scale, ("memory" if mem >= gemm else "gemm"), detail


# --- the paper profile ---------------------------------------------------------------------------------

def _params(arch, input_dim=1, output_dim=1) -> int:
    return sum(p.numel() for p in models.build(arch, input_dim=input_dim, output_dim=output_dim, seed=0).parameters())


def paper_work() -> dict[str, list[tuple[str, float]]]:
    """Chapter -> [(family, trial-epochs in units of that family's measured row)]."""
    t1, t2 = profiles.TABLE1, profiles.TABLE2
    base = _params(t1["default"])
    out: dict[str, list[tuple[str, float]]] = {}
    for chapter, todo in tasks.plan("paper").items():
        rows = []
        for t in todo:
            if t.experiment not in ("two_point", "grid_cell", "depth"):
                continue  # chapters 4-6 are estimated from their settings below
            spec = t.spec
            arch = t1[spec["name"]]
            epochs = spec.get("epochs") or arch.epochs
            te = len(spec["seeds"]) * epochs
            if arch.variant in ("conv", "dropout"):
                rows.append((arch.variant, te))
            else:
                width = spec.get("width", arch.width)
                fam = "two_point_adam" if spec.get("optimizer") == "adam" else "two_point"
                rows.append((fam, te * _params(replace(arch, width=width)) / base))
        out[chapter] = rows
    xor = profiles.settings("xor", "paper")
    xbase = _params(t2["xor_intermediate"], 2)
    rows = []
    for name in ("xor_low", "xor_intermediate", "xor_high", "xor_2_layers"):
        rows.append(("xor", xor["trials"] * t2[name].epochs * _params(t2[name], 2) / xbase))
    rows.append(("xor", xor["trials"] * xor["low_code"]["epochs"]))
    for name, ep in xor["adam_epochs"].items():  # Adam on XOR: at the SGD family's cost x Adam's traffic ratio
        row = t2[name.removesuffix("_code")]
        rows.append(("xor_adam", xor["trials"] * ep * _params(row, 2) / xbase))
    out["04_xor"] = rows
    bl = profiles.settings("blobs", "paper")
    rows = [("blobs", bl["seeds"] * t2[r].epochs) for r in bl["rows"]]
    rows += [("blobs", bl["variant_seeds"] * t2["blobs_low"].epochs)]  # the leaky ReLU variant
    rows += [("blobs_adam", bl["variant_seeds"] * bl["adam_epochs"]) for _ in bl["adam_rows"]]
    out["05_feature_collapse"] = rows
    mn = profiles.settings("mnist", "paper")
    out["06_mnist"] = [("mnist_sgd", mn["trials"] * mn["epochs"]), ("mnist_adam", mn["adam_trials"] * mn["adam_epochs"])]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer epochs, trials and images (~1-2 min idle)")
    p.add_argument("--threads", type=int, default=2, help="torch and numba threads (default 2)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--mnist-images", type=int, default=None, help="MNIST-shaped images (default 12000; quick 3000)")
    p.add_argument("--families", nargs="+", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    images = args.mnist_images or (3000 if args.quick else 12000)
    fams = [f for f in families(args.quick, images) if args.families is None or f.name in args.families]
    print(f"threads: torch {torch.get_num_threads()}, numba {numba.get_num_threads()}; float32; best of "
          f"{args.repeats}; MNIST-shaped random data on {images} images, times scaled to {MNIST_IMAGES}")
    peak_shape = (1024, 1024, 1024)
    peak = gemm_gflops([peak_shape], args.threads)[peak_shape]
    print(f"torch.matmul at 1024^3: {peak:.1f} GFLOP/s")
    header = (f"{'family':15s} {'T':>3s} {'engine':>9s} {'auto':>9s} {'plain':>9s} {'reference':>9s} {'floor':>9s}"
              f"  {'auto/plain':>10s} {'auto/floor':>10s}  floor by")
    print(header)
    measured = {}
    for f in fams:
        kw = dict(trials=f.trials, batch_size=f.batch_size, optimizer=f.optimizer, lr=f.lr, progress=False)
        eng = train(f.arch, f.x, f.y, epochs=1, **kw).settings["engine"]  # warm-up (compiles the kernel)
        # E epochs minus 1: building the networks and the run's final full pass over the data are not
        # training (charging them to one epoch of a subsampled MNIST, scaled to 60,000 images, overstated
        # its epoch by 30-80 %)
        timer = per_trial_epoch
        auto = timer(lambda e: train(f.arch, f.x, f.y, epochs=e, **kw), f.epochs, f.trials, args.repeats) * f.scale
        plain = timer(lambda e: plain_run(f, e), f.epochs, 1, args.repeats) * f.scale
        ref = timer(lambda e: train(f.arch, f.x, f.y, epochs=e, engine="reference", **kw), f.epochs,
                    f.trials, args.repeats) * f.scale
        fl, by, det = floor_ms(f, peak, args.threads)
        measured[f.name] = (auto, fl)
        print(f"{f.name:15s} {f.trials:3d} {eng:>9s} {auto:9.2f} {plain:9.2f} {ref:9.2f} {fl:9.2f}  "
              f"{auto / plain:10.2f} {auto / fl:10.2f}  {by} (mem {det['mem']:.2f} ms at {det['bandwidth']:.1f} "
              f"GB/s; gemm {det['gemm']:.2f} ms: {det['macs'] / 1e6:.1f} M MACs at {det['gflops']:.0f} GFLOP/s)")
    print("(ms per trial-epoch; auto and reference train T trials together, plain one at a time)")
    # Adam on XOR / blobs: not timed separately; the SGD family's time x (Adam/SGD ratio of the 2-point net)
    for fam in ("xor", "blobs"):
        if fam in measured and "two_point" in measured and "two_point_adam" in measured:
            r = measured["two_point_adam"][0] / measured["two_point"][0], \
                measured["two_point_adam"][1] / measured["two_point"][1]
            measured[f"{fam}_adam"] = (measured[fam][0] * r[0], measured[fam][1] * r[1])
    print("\npaper profile estimate (trial-epochs x ms per trial-epoch, one process):")
    total_a = total_f = 0.0
    for chapter, rows in paper_work().items():
        a = f_ = 0.0
        missing = set()
        for fam, te in rows:
            if fam not in measured:
                missing.add(fam)
                continue
            a += te * measured[fam][0] / 1e3
            f_ += te * measured[fam][1] / 1e3
        total_a, total_f = total_a + a, total_f + f_
        note = f"  (not measured: {', '.join(sorted(missing))})" if missing else ""
        print(f"  {chapter:22s} auto {a / 3600:7.2f} h   floor {f_ / 3600:7.2f} h   ratio "
              f"{a / f_ if f_ else float('nan'):5.2f}{note}")
    print(f"  {'total':22s} auto {total_a / 3600:7.2f} h   floor {total_f / 3600:7.2f} h   ratio "
          f"{total_a / total_f if total_f else float('nan'):5.2f}")
    print("  (chapter 3's Fig. 5 grid counted at its 40,000-epoch limit: an upper bound; XOR/blobs Adam "
          "scaled from the 2-point Adam/SGD ratio)")


if __name__ == "__main__":
    main()
