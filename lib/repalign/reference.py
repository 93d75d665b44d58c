"""The reference training loop (torch autograd) and what every training path shares with it.

:func:`loss` is eq. (1) and :func:`minibatches` the minibatch order; the fast paths of
:mod:`repalign.fastpath` import both from here, so the reference they are tested against
(``tests/test_fastpath.py``) depends on nothing of theirs. :func:`run` is the autograd loop that
:func:`repalign.train.train` runs for ``engine="reference"`` and wherever the fast paths do not apply
(Adam, conv and dropout networks, unbatched trials).
"""

from __future__ import annotations

from types import MappingProxyType

import numpy as np
import torch

__all__ = ["OPTIMIZERS", "ADAM", "loss", "minibatches", "make_optimizer", "run"]

#: The optimisers :func:`repalign.train.train` offers.
OPTIMIZERS = ("sgd", "adam")
#: Adam's hyperparameters besides the learning rate: torch's defaults (no weight decay, no AMSGrad);
#: :func:`make_optimizer` and the fused Adam of :mod:`repalign.fastpath` both read them here.
ADAM = MappingProxyType({"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False})


def loss(out, y):
    """Eq. (1) per trial: ``1/2 mean_n ||out_n - y_n||^2``; out (T, N, O), y (T, N, O) or (N, O) -> (T,)."""
    return 0.5 * (out - y).square().sum(-1).mean(-1)


def minibatches(rngs, n, batch_size, device):
    """One epoch's minibatch indices, (T, b) each: a fresh permutation per trial from its own generator
    (shared by :func:`run` and :func:`repalign.fastpath.run_sgd_minibatch`, so both train on the same
    minibatches)."""
    perms = np.stack([r.permutation(n) for r in rngs])  # (T, n)
    for start in range(0, n, batch_size):
        yield torch.as_tensor(perms[:, start:start + batch_size], device=device)


def make_optimizer(name, params, lr):
    """Plain SGD (no momentum, no weight decay) or Adam with :data:`ADAM` (torch's defaults)."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.0)
    return torch.optim.Adam(params, lr=lr, **ADAM)


def run(model, *, X, Y, spec, lr, epochs, optimizer, batch_size, full_batch, recorder, seeds, rows, bar, stop):
    """Train one model (a BatchedMLP over ``seeds``, or one network) and fill ``recorder`` rows ``rows``;
    return the number of epochs trained (fewer than ``epochs`` when ``stop(e)`` said so)."""
    batched = hasattr(model, "trials")
    has_dropout = getattr(model, "dropout", 0.0) > 0
    opt = make_optimizer(optimizer, model.parameters(), lr)
    n = X.shape[0]
    rngs = [np.random.default_rng(s) for s in seeds]

    def forward(xb, hidden):
        out, hs = model(xb, hidden=hidden)
        if not batched:  # give a single network's results a trial axis of length 1
            out = out.unsqueeze(0)
            hs = [h.unsqueeze(0) for h in hs] if isinstance(hs, list) else (None if hs is None else hs.unsqueeze(0))
        return out, hs

    def record(e):
        model.eval()
        with torch.no_grad():
            out, hs = forward(X, spec)
            recorder.record(rows, e, out, hs, loss(out, Y))
        model.train()

    model.train()
    for e in range(epochs):
        if full_batch and not has_dropout:
            out, hs = forward(X, spec)  # the training pass also yields the record (no second pass)
            value = loss(out, Y)
            recorder.record(rows, e, out.detach(), _detach(hs), value.detach())
            _step(opt, value)
        else:
            record(e)
            if full_batch:
                out, _ = forward(X, None)
                _step(opt, loss(out, Y))
            else:
                epoch_loss = 0.0
                for idx in minibatches(rngs, n, batch_size, X.device):
                    xb, yb = (X[idx], Y[idx]) if batched else (X[idx[0]], Y[idx[0]])
                    out, _ = forward(xb, None)
                    value = loss(out, yb)
                    epoch_loss = epoch_loss + value.detach() * idx.shape[1]
                    _step(opt, value)
                recorder.loss[rows, e] = epoch_loss / n  # the epoch's minibatch losses (see repalign.train)
        bar.update(1)
        if stop is not None and stop(e):
            epochs = e + 1
            break
    record(epochs)
    return epochs


def _detach(hs):
    return [h.detach() for h in hs] if isinstance(hs, list) else hs.detach()


def _step(opt, value):
    opt.zero_grad(set_to_none=True)
    value.sum().backward()  # the sum over trials gives each trial its own gradient
    opt.step()
