"""The fast training path: hand-written backpropagation with fused in-place SGD updates.

:func:`repalign.train.train` uses this path for the common case of the book -- plain SGD, full batch,
``"mlp"`` or ``"skip"`` networks trained as one :class:`~repalign.models.BatchedMLP` -- and the
autograd loop of :mod:`repalign.train` (``engine="reference"``) everywhere else. Both compute the same
thing; ``tests/test_fastpath.py`` checks that they agree in float64 to rounding error.

Why it is faster. With two data points every layer is a (2 x 500) @ (500 x 500) product: the work is
reading the weights, not arithmetic. Autograd reads each weight matrix in the forward pass, again in
the backward pass, writes a gradient of the same size and then reads weight and gradient again in
the optimiser step. Here each layer's update ``W <- W - lr a^T g`` is a single in-place
``baddbmm_`` (a rank-``n_points`` update with no gradient tensor), made right after the layer's
input gradient ``g W^T`` has been taken from the not-yet-updated weights. That is the exact SGD step,
with three passes over the weights per epoch instead of five, and about a quarter of the Python and
dispatcher calls. ``benchmarks/train.py`` measures the gain.

The derivatives of the activations are written out here (:data:`DERIVATIVES`); a test compares each
with autograd.
"""

from __future__ import annotations

from typing import Callable

import torch

from .models import ACTIVATIONS, BatchedMLP

__all__ = ["DERIVATIVES", "supports", "run_sgd_full_batch"]

_LEAKY_SLOPE = 0.01  # torch's default negative slope, used by models.ACTIVATIONS["leaky_relu"]


def _d_linear(z, a):
    return None  # derivative 1: the caller skips the multiplication


def _d_relu(z, a):
    return (z > 0).to(z.dtype)


def _d_leaky_relu(z, a):
    return torch.where(z > 0, z.new_ones(()), z.new_full((), _LEAKY_SLOPE))  # slope in z's dtype


def _d_elu(z, a):
    return torch.where(z > 0, torch.ones_like(z), torch.exp(z))  # alpha = 1, as F.elu


def _d_tanh(z, a):
    return 1.0 - a * a


def _d_silu(z, a):
    s = torch.sigmoid(z)
    return s * (1.0 + z * (1.0 - s))


#: ``activation -> f(z, a)``: derivative of the activation at pre-activation ``z`` (``a = act(z)``);
#: ``None`` means 1 (linear).
DERIVATIVES: dict[str, Callable] = {
    "linear": _d_linear,
    "relu": _d_relu,
    "leaky_relu": _d_leaky_relu,
    "elu": _d_elu,
    "tanh": _d_tanh,
    "silu": _d_silu,
}
assert set(DERIVATIVES) == set(ACTIVATIONS)


def supports(*, variant: str, optimizer: str, full_batch: bool, batched: bool) -> bool:
    """Whether :func:`run_sgd_full_batch` covers a configuration (else the reference loop runs)."""
    return variant in ("mlp", "skip") and optimizer == "sgd" and full_batch and batched


@torch.no_grad()
def run_sgd_full_batch(model: BatchedMLP, *, X, Y, spec, lr: float, epochs: int, recorder, rows, bar) -> None:
    """Train ``model`` in place for ``epochs`` full-batch SGD steps, filling ``recorder`` like the reference.

    Record ``e`` is taken from the forward pass of epoch ``e`` (before its update), the last record
    after the final update -- exactly what :func:`repalign.train.train` records on its reference path.
    """
    if not isinstance(model, BatchedMLP):
        raise TypeError(f"`model` must be a BatchedMLP, got {type(model).__name__}")
    act = ACTIVATIONS[model.activation]
    deriv = DERIVATIVES[model.activation]
    skip = model.skip
    Ws = [w.data for w in model.weights]  # (T, fan_in, fan_out), updated in place
    bs = [b.data for b in model.biases]  # (T, 1, fan_out)
    L = model.n_hidden
    T = model.trials
    x = X.expand(T, *X.shape)
    n = X.shape[0]

    def forward():
        a, zs, ps, hs = x, [], [], []
        for i in range(L):
            z = torch.baddbmm(bs[i], a, Ws[i])
            a = act(z)
            zs.append(z)
            ps.append(a)  # the activation's own output (h_i without the skip term)
            if skip and i >= 2:
                a = a + hs[i - 2]
            hs.append(a)
        return torch.baddbmm(bs[L], a, Ws[L]), zs, ps, hs

    def record(e, out, hs):
        loss = 0.5 * (out - Y).square().sum(-1).mean(-1)
        picked = hs if spec == "all" else hs[spec - 1]
        recorder.record(rows, e, out, picked, loss)

    for e in range(epochs):
        out, zs, ps, hs = forward()
        record(e, out, hs)
        g = (out - Y) / n  # d loss / d out, per trial (the trials' losses are summed)
        ga = [None] * L  # d loss / d h_i, accumulated (skip connections add to two layers below)
        for i in range(L, -1, -1):
            if i < L:  # g := d loss / d z_i
                g = ga[i]
                if skip and i >= 2:
                    ga[i - 2] = g if ga[i - 2] is None else ga[i - 2] + g
                d = deriv(zs[i], ps[i])
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
        bar.update(1)
    out, _, _, hs = forward()
    record(epochs, out, hs)
