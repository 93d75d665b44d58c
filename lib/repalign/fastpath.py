"""The fast training paths: hand-written backpropagation with fused in-place SGD updates, and the engine choice.

:func:`repalign.train.train` uses these paths for the common case of the book -- plain SGD on
``"mlp"`` or ``"skip"`` networks (the batchable variants of :data:`repalign.models.VARIANTS`) trained as
one :class:`~repalign.models.BatchedMLP`, with full batches (:func:`run_sgd_full_batch`) or minibatches
(:func:`run_sgd_minibatch`) -- and the autograd loop of :mod:`repalign.reference`
(``engine="reference"``) everywhere else; :func:`select_engine` makes that choice, in one place. All
compute the same thing; ``tests/test_fastpath.py`` checks that they agree in float64 to rounding error.
Eq. (1) and the minibatch order come from :mod:`repalign.reference`, the side they are tested against.

Two back ends (:data:`BACKENDS`):

``"kernel"`` (CPU, full batches)
    The compiled numba kernel of :mod:`repalign._kernel`: each weight row is read once in the
    forward pass and read and written once in the backward pass, where the row's share of the input
    gradient and its SGD update are taken in the same sweep. Trials run in parallel, one per core.
    This reaches the memory floor (``benchmarks/train.py`` measures it).
``"fused"`` (any device, CUDA included; full batches and minibatches)
    Torch operations: each layer's update ``W <- W - lr a^T g`` is a single in-place ``baddbmm_``
    (no gradient tensor), made right after the layer's input gradient ``g W^T`` has been taken from
    the not-yet-updated weights: three passes over the weights per epoch instead of autograd's five.
    BLAS is slow on these skinny products, so on the CPU it is several times slower than the kernel.

Why it matters. With two data points every layer is a (2 x 500) @ (500 x 500) product: the work is
reading the weights, not arithmetic.

The derivatives of the activations are written out in :mod:`repalign.activations` (:data:`DERIVATIVES`
here) and in the kernel; tests compare both with autograd.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ._threads import numba_threads
from .activations import ACTIVATIONS
from .models import VARIANTS, BatchedMLP
from .reference import loss as _loss
from .reference import minibatches as _minibatches

__all__ = ["DERIVATIVES", "BACKENDS", "ENGINES", "supports", "default_backend", "select_engine",
           "run_sgd_full_batch", "run_sgd_minibatch"]

#: The fast path's back ends: the compiled CPU kernel and the fused torch operations.
BACKENDS = ("kernel", "fused")
#: The values of ``train(engine=...)``.
ENGINES = ("auto", "fast", "kernel", "fused", "reference")

#: ``activation -> f(z, a)``: derivative of the activation at pre-activation ``z`` (``a = act(z)``);
#: ``None`` means 1 (linear). A view of :data:`repalign.activations.ACTIVATIONS`.
DERIVATIVES: dict[str, Callable] = {name: a.derivative for name, a in ACTIVATIONS.items()}


def supports(*, variant: str, optimizer: str, batched: bool) -> bool:
    """Whether the fast path covers a configuration (else the reference loop runs): full batches train
    with :func:`run_sgd_full_batch`, minibatches with :func:`run_sgd_minibatch`."""
    return variant in VARIANTS and VARIANTS[variant].batchable and optimizer == "sgd" and batched


def default_backend(device: torch.device) -> str:
    """``"kernel"`` on the CPU, ``"fused"`` elsewhere (the kernel cannot reach GPU memory)."""
    return "kernel" if torch.device(device).type == "cpu" else "fused"


def select_engine(engine: str, *, variant: str, optimizer: str, batched: bool, full_batch: bool,
                  device: torch.device, activation: str | None = None) -> str:
    """The training path that runs: ``"kernel"``, ``"fused"`` or ``"reference"``.

    Parameters
    ----------
    engine : {"auto", "fast", "kernel", "fused", "reference"}
        What :func:`repalign.train.train` was asked for (see its docstring).
    variant, optimizer : str
        ``Architecture.variant`` and the optimiser name.
    batched : bool
        Whether the trials train as one :class:`~repalign.models.BatchedMLP`.
    full_batch : bool
        Full-batch training (else minibatches).
    device : torch.device
    activation : str, optional
        The network's activation; one without a kernel code (:class:`repalign.activations.Activation`)
        runs on the fused back end.

    Returns
    -------
    str
        ``"reference"`` (the autograd loop) where the fast paths do not apply or were not wanted,
        else the back end: ``"fused"`` for minibatches, the requested back end, or
        :func:`default_backend` of the device.

    Raises
    ------
    ValueError
        Unknown ``engine``; ``"fast"``, ``"kernel"`` or ``"fused"`` asked for a configuration the fast
        paths do not cover; ``"kernel"`` with minibatches, off the CPU or for an activation it lacks.
    """
    if engine not in ENGINES:
        raise ValueError(f"`engine` must be one of {', '.join(ENGINES)}; got {engine!r}")
    fast_ok = supports(variant=variant, optimizer=optimizer, batched=batched)
    if engine in ("fast", "kernel", "fused") and not fast_ok:
        names = "/".join(repr(k) for k, v in VARIANTS.items() if v.batchable)
        raise ValueError(f"`engine={engine!r}` covers only batched {names} networks with optimizer='sgd'; "
                         f"got variant={variant!r}, optimizer={optimizer!r}, batched={batched!r}. "
                         "Use engine='auto'.")
    if engine == "kernel" and not full_batch:
        raise ValueError("`engine='kernel'` trains full batches only, got minibatches (`batch_size` < n_points); "
                         "use engine='fused' or 'auto' for minibatches")
    if not fast_ok or engine == "reference":
        return "reference"
    in_kernel = getattr(ACTIVATIONS.get(activation), "code", 0) is not None  # unknown names: build() says
    if engine == "kernel" and not in_kernel:
        raise ValueError(f"`engine='kernel'` has no branch for activation={activation!r}; use engine='fused'")
    backend = ("fused" if not full_batch or not in_kernel else engine if engine in BACKENDS
               else default_backend(device))
    if backend == "kernel" and torch.device(device).type != "cpu":
        raise ValueError(f"`engine='kernel'` runs on the CPU only, got device={str(device)!r}; use engine='fused'")
    return backend


@torch.no_grad()
def run_sgd_full_batch(model: BatchedMLP, *, X, Y, spec, lr: float, epochs: int, recorder, rows, bar,
                       backend: str = "fused", stop=None) -> int:
    """Train ``model`` in place for ``epochs`` full-batch SGD steps, filling ``recorder`` like the reference.

    Record ``e`` is taken from the forward pass of epoch ``e`` (before its update), the last record
    after the final update -- exactly what :func:`repalign.train.train` records on its reference path.
    ``backend`` is one of :data:`BACKENDS`; ``"kernel"`` needs the model on the CPU. ``stop(e)``
    (optional), called after the record of epoch ``e`` is written, ends training after that epoch when
    it returns true (the kernel asks only at the end of each chunk of :data:`KERNEL_CHUNK` epochs).
    Returns the number of epochs trained; the final record is written at that index.
    """
    if not isinstance(model, BatchedMLP):
        raise TypeError(f"`model` must be a BatchedMLP, got {type(model).__name__}")
    if backend not in BACKENDS:
        raise ValueError(f"`backend` must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if backend == "kernel":
        if X.device.type != "cpu":
            raise ValueError(f"`backend='kernel'` runs on the CPU only; the data are on {X.device}. "
                             "Use backend='fused'.")
        return _run_kernel(model, X=X, Y=Y, spec=spec, lr=lr, epochs=epochs, recorder=recorder, rows=rows,
                           bar=bar, stop=stop)
    return _run_fused(model, X=X, Y=Y, spec=spec, lr=lr, epochs=epochs, recorder=recorder, rows=rows, bar=bar,
                      stop=stop)


#: Epochs per kernel call: the progress bar advances between calls (the call overhead is ~0.1 ms).
KERNEL_CHUNK = 50


def _run_kernel(model, *, X, Y, spec, lr, epochs, recorder, rows, bar, stop):
    from . import _kernel  # numba is imported (and the kernel compiled or loaded) on first use

    Ws, bs = _kernel.as_lists(model.weights, model.biases)
    dtype = Ws[0].dtype
    x = X.numpy().astype(dtype, copy=False)
    y = Y.numpy().astype(dtype, copy=False)
    T, L = model.trials, model.n_hidden
    rec = np.arange(L) if spec == "all" else np.array([spec - 1])
    outs = np.empty((T, epochs + 1) + y.shape, dtype)
    dh = np.empty((T, epochs + 1, len(rec)), dtype)
    code = _kernel.ACTIVATION_CODES[model.activation]
    with numba_threads(min(T, torch.get_num_threads())):  # one per trial at most; restored afterwards
        return _kernel_loop(Ws, bs, x, y, code, model.skip, dtype.type(lr), epochs, rec, outs, dh, spec=spec,
                            recorder=recorder, rows=rows, bar=bar, stop=stop)


def _kernel_loop(Ws, bs, x, y, code, skip, lr, epochs, rec, outs, dh, *, spec, recorder, rows, bar, stop):
    from . import _kernel

    i, j = recorder.i, recorder.j
    done = 0  # records already handed to the recorder

    def flush(upto):  # hand records done .. upto-1 to the recorder, each exactly once
        nonlocal done
        block = dh[:, done:upto] if spec == "all" else dh[:, done:upto, 0]
        recorder.record_block(rows, torch.from_numpy(outs[:, done:upto]), torch.from_numpy(block), start=done)
        done = upto

    start = 0
    while start < epochs:
        end = min(start + KERNEL_CHUNK, epochs)
        _kernel.run(Ws, bs, x, y, code, skip, lr, start, end, False, i, j, rec, outs, dh)
        bar.update(end - start)
        start = end
        if stop is not None and start < epochs:
            flush(end)  # the stop rule reads the recorded loss
            if stop(end - 1):
                break
    _kernel.run(Ws, bs, x, y, code, skip, lr, start, start, True, i, j, rec, outs, dh)
    flush(start + 1)
    return start


class _Fused:
    """Forward and backward passes of a BatchedMLP written out, with in-place SGD updates."""

    def __init__(self, model: BatchedMLP):
        self.act = ACTIVATIONS[model.activation]
        self.deriv = ACTIVATIONS[model.activation].derivative
        self.skip = model.skip
        self.Ws = [w.data for w in model.weights]  # (T, fan_in, fan_out), updated in place
        self.bs = [b.data for b in model.biases]  # (T, 1, fan_out)
        self.L = model.n_hidden
        self.T = model.trials

    def forward(self, x):
        """``x`` (T, n, d) -> output, pre-activations, activation outputs and hidden layers (with skips)."""
        Ws, bs, skip = self.Ws, self.bs, self.skip
        a, zs, ps, hs = x, [], [], []
        for i in range(self.L):
            z = torch.baddbmm(bs[i], a, Ws[i])
            a = self.act(z)
            zs.append(z)
            ps.append(a)  # the activation's own output (h_i without the skip term)
            if skip and i >= 2:
                a = a + hs[i - 2]
            hs.append(a)
        return torch.baddbmm(bs[self.L], a, Ws[self.L]), zs, ps, hs

    def step(self, x, y, lr):
        """One SGD step on the points ``x`` (T, n, d), targets ``y`` (T or 1, n, O), of the loss
        ``1/2 mean_n ||f - y||^2``; returns the forward pass taken before the update."""
        out, zs, ps, hs = fwd = self.forward(x)
        Ws, bs, skip, L = self.Ws, self.bs, self.skip, self.L
        g = (out - y) / x.shape[1]  # d loss / d out, per trial (the trials' losses are summed)
        ga = [None] * L  # d loss / d h_i, accumulated (skip connections add to two layers below)
        for i in range(L, -1, -1):
            if i < L:  # g := d loss / d z_i
                g = ga[i]
                if skip and i >= 2:
                    ga[i - 2] = g if ga[i - 2] is None else ga[i - 2] + g
                d = self.deriv(zs[i], ps[i])
                if d is not None:
                    g = g * d
            inp = x if i == 0 else hs[i - 1]
            if i > 0:  # input gradient from the weights before their update
                # g W^T, computed as (W g^T)^T: BLAS is several times faster on this form of the
                # skinny product (measured: ~60 vs ~180 us for a 500 x 500 layer and two points)
                back = torch.bmm(Ws[i], g.mT).mT.contiguous()
                ga[i - 1] = back if ga[i - 1] is None else ga[i - 1] + back
            Ws[i].baddbmm_(inp.mT, g, alpha=-lr)
            bs[i].sub_(g.sum(1, keepdim=True), alpha=lr)
        return fwd


def _run_fused(model, *, X, Y, spec, lr, epochs, recorder, rows, bar, stop):
    net = _Fused(model)
    x = X.expand(net.T, *X.shape)

    def record(e, out, hs):
        recorder.record(rows, e, out, hs if spec == "all" else hs[spec - 1], _loss(out, Y))

    for e in range(epochs):
        out, zs, ps, hs = net.step(x, Y, lr)
        record(e, out, hs)
        bar.update(1)
        if stop is not None and stop(e):
            epochs = e + 1
            break
    out, _, _, hs = net.forward(x)
    record(epochs, out, hs)
    return epochs


@torch.no_grad()
def run_sgd_minibatch(model: BatchedMLP, *, X, Y, spec, lr: float, epochs: int, batch_size: int, seeds,
                      recorder, rows, bar, stop=None) -> int:
    """Minibatch SGD of ``model`` in place with the fused operations, recording like the reference.

    Each trial draws a fresh permutation of the points every epoch from ``numpy.random.default_rng(seed)``
    (the reference loop's order, so both train on the same minibatches). Record ``e`` holds the tracked
    pair's quantities before epoch ``e`` (a forward pass of the two points only) and the epoch's mean
    minibatch loss; the last record is a full pass. Returns the number of epochs trained.
    """
    if not isinstance(model, BatchedMLP):
        raise TypeError(f"`model` must be a BatchedMLP, got {type(model).__name__}")
    net = _Fused(model)
    n = X.shape[0]
    rngs = [np.random.default_rng(s) for s in seeds]
    pair = X[[recorder.i, recorder.j]].expand(net.T, 2, X.shape[1])

    def record_pair(e):
        out, _, _, hs = net.forward(pair)
        recorder.record(rows, e, out, hs if spec == "all" else hs[spec - 1], 0.0, pair_only=True)

    for e in range(epochs):
        record_pair(e)
        epoch_loss = 0.0
        for idx in _minibatches(rngs, n, batch_size, X.device):
            yb = Y[idx]
            out = net.step(X[idx], yb, lr)[0]
            epoch_loss = epoch_loss + _loss(out, yb) * idx.shape[1]
        recorder.loss[rows, e] = epoch_loss / n
        bar.update(1)
        if stop is not None and stop(e):
            epochs = e + 1
            break
    out, _, _, hs = net.forward(X.expand(net.T, *X.shape))
    recorder.record(rows, epochs, out, hs if spec == "all" else hs[spec - 1], _loss(out, Y))
    return epochs
