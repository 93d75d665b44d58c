"""The result of :func:`repalign.train.train`: :class:`Recording`, and the :class:`Recorder` that fills it.

Every training path (the autograd loop of :mod:`repalign.reference` and the fast paths of
:mod:`repalign.fastpath`) writes its records into one preallocated :class:`Recorder`; see
:mod:`repalign.train` for what is recorded and when.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .reference import loss

__all__ = ["Recording", "Recorder"]


@dataclass(frozen=True, eq=False)
class Recording:
    """Per-epoch measurements of one or more trials (arrays read-only, float64).

    Attributes
    ----------
    epochs : numpy.ndarray, shape (n_records,)
        ``0, 1, ..., epochs``: record ``e`` is the network after ``e`` epochs of updates.
    dh_sq : numpy.ndarray, shape (trials, n_records) or (trials, n_records, n_layers)
        ``||dh||^2`` at ``layer``; the last axis runs over the layers when ``layer`` is a tuple.
    dy_sq, w, loss : numpy.ndarray, shape (trials, n_records)
        ``||dy||^2``, ``w`` and the full-dataset loss of eq. (1) (with minibatches: the epoch's mean
        minibatch loss, see the module docstring).
    mean_output : numpy.ndarray, shape (trials, n_records, output_dim)
        Mean prediction over the tracked pair.
    layer : int or tuple of int
        The hidden layer(s) recorded (1-based; a tuple for ``layer="all"``).
    seeds : tuple of int
        Seed of each trial (initial weights, minibatch order, dropout masks).
    settings : Mapping
        The architecture's fields, every training option actually used, and the tracked pair's
        ``dx_sq = ||x_j - x_i||^2`` and ``dy_target_sq = ||y_j - y_i||^2`` (what a fit needs).
    models : tuple of torch.nn.Module or None
        The trained networks, one per trial, if ``keep_models=True``.
    """

    epochs: np.ndarray
    dh_sq: np.ndarray
    dy_sq: np.ndarray
    w: np.ndarray
    loss: np.ndarray
    mean_output: np.ndarray
    layer: int | tuple[int, ...]
    seeds: tuple[int, ...]
    settings: Mapping[str, Any]
    models: tuple | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        s = self.settings
        return (f"Recording({s['name']!r}, trials={self.trials}, epochs={self.n_records - 1}, layer={self.layer}, "
                f"optimizer={s['optimizer']!r}, lr={s['lr']}, dtype={s['dtype']!r}, seeds={self.seeds}, "
                f"final loss median={np.median(self.loss[:, -1]):.3g})")

    @property
    def trials(self) -> int:
        return self.dy_sq.shape[0]

    @property
    def n_records(self) -> int:
        return self.epochs.shape[0]

    @property
    def z(self) -> np.ndarray:
        """``(dh_sq, dy_sq, w)`` stacked on a last axis: (trials, n_records, 3), or
        (trials, n_records, n_layers, 3) when several layers were recorded -- the state of eq. (7)."""
        dy, w = self.dy_sq, self.w
        if self.dh_sq.ndim == 3:
            dy = np.broadcast_to(dy[..., None], self.dh_sq.shape)
            w = np.broadcast_to(w[..., None], self.dh_sq.shape)
        return np.stack([self.dh_sq, dy, w], axis=-1)


class Recorder:
    """Preallocated on-device buffers; ``record`` writes one epoch for all trials without a host sync."""

    def __init__(self, trials, n_records, n_layers, output_dim, y, pair, dtype, device):
        self.i, self.j = pair
        self.y = y
        self.dtarget = y[self.j] - y[self.i]  # (output_dim,)
        shape = (trials, n_records)
        kw = dict(dtype=dtype, device=device)
        self.dh = torch.empty(shape + ((n_layers,) if n_layers else ()), **kw)
        self.dy, self.w, self.loss = (torch.empty(shape, **kw) for _ in range(3))
        self.mean = torch.empty(shape + (output_dim,), **kw)

    @torch.no_grad()
    def record(self, rows, e, out, hs, loss, *, pair_only=False):
        """Write epoch ``e`` of trials ``rows`` (a slice): ``out`` (T, N, O), ``hs`` (T, N, F) or a list of
        them, ``loss`` (T,), all with a leading trial axis of the slice's length. ``pair_only``: ``out``
        and ``hs`` hold only the tracked pair's two rows, ``i`` then ``j``."""
        i, j = (0, 1) if pair_only else (self.i, self.j)
        dout = out[:, j] - out[:, i]
        dy = dout.square().sum(-1)
        self.dy[rows, e] = dy
        self.w[rows, e] = dy - (dout * self.dtarget).sum(-1)
        self.mean[rows, e] = 0.5 * (out[:, i] + out[:, j])
        self.loss[rows, e] = loss
        if isinstance(hs, list):
            self.dh[rows, e] = torch.stack([(h[:, j] - h[:, i]).square().sum(-1) for h in hs], -1)
        else:
            self.dh[rows, e] = (hs[:, j] - hs[:, i]).square().sum(-1)

    @torch.no_grad()
    def record_block(self, rows, outs, dh, *, start=0):
        """Write records ``start .. start+k-1`` of trials ``rows`` at once: ``outs`` (T, k, N, O) and ``dh``
        (T, k) or (T, k, n_layers), as computed by the compiled kernel."""
        i, j = self.i, self.j
        k = slice(start, start + outs.shape[1])
        dout = outs[:, :, j] - outs[:, :, i]
        dy = dout.square().sum(-1)
        self.dy[rows, k] = dy
        self.w[rows, k] = dy - (dout * self.dtarget).sum(-1)
        self.mean[rows, k] = 0.5 * (outs[:, :, i] + outs[:, :, j])
        self.loss[rows, k] = loss(outs, self.y)
        self.dh[rows, k] = dh

    def hold(self, rows, last):
        """Training of ``rows`` stopped after ``last`` epochs: the later records repeat record ``last``."""
        for t in (self.dh, self.dy, self.w, self.loss, self.mean):
            t[rows, last + 1:] = t[rows, last:last + 1]

    def truncate(self, n_records, trials=None):
        for name in ("dh", "dy", "w", "loss", "mean"):
            setattr(self, name, getattr(self, name)[:trials, :n_records])

    def arrays(self):
        out = []
        for t in (self.dh, self.dy, self.w, self.loss, self.mean):
            a = t.detach().to("cpu", torch.float64).numpy().copy()
            a.flags.writeable = False
            out.append(a)
        return out
