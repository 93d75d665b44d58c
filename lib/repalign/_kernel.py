"""The compiled CPU kernel of the fast path (numba): one pass over each weight matrix per direction.

With two data points a 500 x 500 layer is pure memory traffic: ~1 MB of weights for ~0.5 M
multiply-adds. BLAS, built for big products, reads such skinny products several times slower than
memory allows. This kernel streams every weight row once in the forward pass and once in the backward
pass, where it takes the row's share of the input gradient ``g W^T`` and applies the SGD update
``W <- W - lr a^T g`` in the same sweep (both from the not-yet-updated row, so it is the exact SGD step).
That is the memory floor: read the weights twice, write them once. Trials run in parallel,
one per thread (``numba.prange``), each on its own weights, so no synchronisation is needed.

:func:`run` is called by :func:`repalign.fastpath.run_sgd_full_batch`; use that. The kernel is compiled
on first use (a few seconds) and cached on disk next to this file (or in numba's user cache).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from .activations import ACTIVATIONS, LEAKY_SLOPE

__all__ = ["ACTIVATION_CODES", "run"]

#: Activation name -> the integer the kernel switches on (from :data:`repalign.activations.ACTIVATIONS`).
ACTIVATION_CODES = {name: a.code for name, a in ACTIVATIONS.items() if a.code is not None}
# The branches below, keyed by those codes (numba reads these globals as compile-time constants).
_LINEAR, _RELU, _LEAKY, _ELU, _TANH = (ACTIVATION_CODES[k] for k in ("linear", "relu", "leaky_relu", "elu", "tanh"))
_LEAKY_COMPLEMENT = 1.0 - LEAKY_SLOPE

# Re-association lets LLVM vectorise the dot products; no assumptions about NaN or infinities, so a
# diverging run still shows NaN exactly as on the reference path.
_FM = {"reassoc", "contract", "nsz", "arcp"}
_JIT = dict(fastmath=_FM, cache=True, nogil=True)


@nb.njit(inline="always", **_JIT)
def _act(code, z):
    if code == _LINEAR:
        return z
    if code == _RELU:
        return max(z, z * 0)
    if code == _LEAKY:
        return max(z, z * LEAKY_SLOPE)
    if code == _ELU:
        return z if z > 0 else math.expm1(z)  # ELU, alpha = 1
    if code == _TANH:
        return math.tanh(z)
    return z / (1 + math.exp(-z))  # SiLU ("swish")


@nb.njit(inline="always", **_JIT)
def _dact(code, z, a):
    """Derivative at pre-activation ``z`` with ``a = act(z)``."""
    one = z * 0 + 1
    if code == _LINEAR:
        return one
    if code == _RELU:
        return (z > 0) * one
    if code == _LEAKY:
        return (z > 0) * (one * _LEAKY_COMPLEMENT) + LEAKY_SLOPE
    if code == _ELU:
        return one if z > 0 else math.exp(z)
    if code == _TANH:
        return 1 - a * a
    s = 1 / (1 + math.exp(-z))
    return s * (1 + z * (1 - s))


@nb.njit(**_JIT)
def _forward_layer(a, W, b, z):
    """``z = b + a @ W``; a (N, din), W (din, dout), b (dout,), z (N, dout)."""
    N, din = a.shape
    dout = W.shape[1]
    for n in range(N):
        for j in range(dout):
            z[n, j] = b[j]
    for i in range(din):
        Wi = W[i]
        for n in range(N):
            c = a[n, i]
            zn = z[n]
            for j in range(dout):
                zn[j] += c * Wi[j]


@nb.njit(**_JIT)
def _backward_layer(a, g, W, b, back, lr, want_back):
    """One sweep over the rows of W: ``back += g @ W.T`` (if ``want_back``), then ``W -= lr a.T @ g``
    and ``b -= lr sum_n g_n``. a (N, din), g (N, dout), back (N, din)."""
    N, din = a.shape
    dout = W.shape[1]
    if N == 2:  # the two-point case, fused: each weight is loaded and stored once
        g0 = g[0]
        g1 = g[1]
        for i in range(din):
            Wi = W[i]
            c0 = lr * a[0, i]
            c1 = lr * a[1, i]
            s0 = Wi[0] * 0
            s1 = s0
            for j in range(dout):
                w = Wi[j]
                s0 += w * g0[j]
                s1 += w * g1[j]
                Wi[j] = w - (c0 * g0[j] + c1 * g1[j])
            if want_back:
                back[0, i] += s0
                back[1, i] += s1
    else:  # any number of points: all input-gradient dots from the old row, then the update in pairs
        for i in range(din):
            Wi = W[i]
            if want_back:
                for n in range(N):
                    gn = g[n]
                    acc = Wi[0] * 0
                    for j in range(dout):
                        acc += Wi[j] * gn[j]
                    back[n, i] += acc
            n = 0
            while n + 1 < N:
                ga_ = g[n]
                gb_ = g[n + 1]
                ca = lr * a[n, i]
                cb = lr * a[n + 1, i]
                for j in range(dout):
                    Wi[j] -= ca * ga_[j] + cb * gb_[j]
                n += 2
            if n < N:
                gn = g[n]
                c = lr * a[n, i]
                for j in range(dout):
                    Wi[j] -= c * gn[j]
    for j in range(dout):
        u = b[j] * 0
        for n in range(N):
            u += g[n, j]
        b[j] -= lr * u


@nb.njit(parallel=True, **_JIT)
def run(Ws, bs, X, Y, code, skip, lr, e_start, e_stop, final, pi, pj, rec_layers, outs, dh):
    """Train every trial for epochs ``e_start .. e_stop - 1`` in place, recording as it goes.

    Ws[l] (T, fan_in, fan_out) and bs[l] (T, fan_out): the layers' weights and biases (numba typed
    lists of views into the model's tensors, updated in place); all hidden layers have the same width.
    X (N, input_dim), Y (N, output_dim). ``code``: :data:`ACTIVATION_CODES`. ``skip``: add the hidden
    output two layers below from the 3rd hidden layer on. Epoch ``e`` writes, from its forward pass
    (before its update), ``outs[t, e]`` (N, output_dim) and ``dh[t, e, k] = ||h_pj - h_pi||^2`` at
    hidden layer ``rec_layers[k]`` (0-based). ``final``: after the last epoch, one more forward pass
    recorded at ``e_stop``.
    """
    T = Ws[0].shape[0]
    L = len(Ws) - 1
    N = X.shape[0]
    H = Ws[0].shape[2]
    O = Y.shape[1]
    dt = Ws[0].dtype
    for t in nb.prange(T):
        z = np.empty((L, N, H), dt)  # pre-activations
        p = np.empty((L, N, H), dt)  # activations
        h = np.empty((L, N, H), dt)  # hidden outputs (p plus the skip term)
        ga = np.empty((L, N, H), dt)  # d loss / d h, then d loss / d z
        out = np.empty((N, O), dt)
        gout = np.empty((N, O), dt)
        last = e_stop + 1 if final else e_stop
        for e in range(e_start, last):
            for l in range(L):
                _forward_layer(X if l == 0 else h[l - 1], Ws[l][t], bs[l][t], z[l])
                for n in range(N):
                    for j in range(H):
                        v = _act(code, z[l, n, j])
                        p[l, n, j] = v
                        h[l, n, j] = v + h[l - 2, n, j] if (skip and l >= 2) else v
            _forward_layer(h[L - 1], Ws[L][t], bs[L][t], out)
            outs[t, e] = out
            for k in range(rec_layers.shape[0]):
                r = rec_layers[k]
                s = 0.0
                for j in range(H):
                    d = h[r, pj, j] - h[r, pi, j]
                    s += d * d
                dh[t, e, k] = s
            if e == e_stop:
                break
            for n in range(N):
                for k in range(O):
                    gout[n, k] = (out[n, k] - Y[n, k]) / N
            ga[:] = 0
            _backward_layer(h[L - 1], gout, Ws[L][t], bs[L][t], ga[L - 1], lr, True)
            for l in range(L - 1, -1, -1):
                if skip and l >= 2:
                    ga[l - 2] += ga[l]
                for n in range(N):
                    for j in range(H):
                        ga[l, n, j] *= _dact(code, z[l, n, j], p[l, n, j])
                if l == 0:
                    _backward_layer(X, ga[0], Ws[0][t], bs[0][t], ga[0], lr, False)
                else:
                    _backward_layer(h[l - 1], ga[l], Ws[l][t], bs[l][t], ga[l - 1], lr, True)


def as_lists(weights, biases):
    """Numba typed lists of numpy views of a :class:`~repalign.models.BatchedMLP`'s CPU tensors."""
    Ws = nb.typed.List([w.detach().numpy() for w in weights])
    bs = nb.typed.List([b.detach().numpy().reshape(b.shape[0], b.shape[-1]) for b in biases])
    return Ws, bs


