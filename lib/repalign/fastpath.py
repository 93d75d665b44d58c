"""The fast training paths: hand-written backpropagation with fused in-place updates, and the engine choice.

:func:`repalign.train.train` uses these paths for plain SGD on every variant of
:data:`repalign.models.VARIANTS` with a batched model, and for Adam on ``"mlp"`` and ``"skip"``:
``"mlp"`` and ``"skip"`` networks trained as one :class:`~repalign.models.BatchedMLP`, ``"dropout"``
networks as one BatchedMLP with per-trial masks (:class:`DropoutMasks`, CPU only) and ``"conv"``
networks as one :class:`~repalign.models.BatchedConvNet` (conv and dropout: one trial per model on the
CPU, :func:`trials_together`), with full batches (:func:`run_sgd_full_batch`) or minibatches
(:func:`run_sgd_minibatch`; both take ``optimizer=``) -- and the autograd loop of
:mod:`repalign.reference` (``engine="reference"``) everywhere else; :func:`select_engine` makes that
choice, in one place. All compute the same thing; ``tests/test_fastpath.py`` checks that they agree in
float64 to rounding error, the conv and dropout paths against single trials of the reference. Eq. (1)
and the minibatch order come from :mod:`repalign.reference`, the side they are tested against.

Two back ends (:data:`BACKENDS`):

``"kernel"`` (CPU, full batches)
    The compiled numba kernel of :mod:`repalign._kernel`: each weight row is read once in the
    forward pass and read and written once in the backward pass, where the row's share of the input
    gradient and its SGD update are taken in the same sweep. Trials run in parallel, one per core.
    This reaches the memory floor (``benchmarks/train.py`` measures it).
``"fused"`` (any device, CUDA included; full batches and minibatches; SGD, and Adam for mlp/skip)
    Torch operations: each layer's SGD update ``W <- W - lr a^T g`` is a single in-place ``baddbmm_``
    (no gradient tensor), made right after the layer's input gradient ``g W^T`` has been taken from
    the not-yet-updated weights: three passes over the weights per epoch instead of autograd's five.
    BLAS is slow on these skinny products, so on the CPU it is several times slower than the kernel.
    Adam (:data:`repalign.reference.ADAM`, as ``torch.optim.Adam``) writes each layer's gradient into a
    buffer allocated once, then updates every weight, both moments and the step counts in one fused
    in-place kernel (``torch._fused_adam_``, the kernel of ``torch.optim.Adam(fused=True)``), where
    ``torch.optim.Adam``'s default CPU path makes about ten passes over the weights per step.
    The only back end for conv and dropout networks. A convolution is three batched products per
    layer on its unfolded windows (:func:`repalign.networks.unfold_windows`): output, input gradient
    (:func:`repalign.networks.input_gradient`) and weight update, for all trials of the model at once;
    ``benchmarks/conv_dropout.py`` measures it against the reference.

Why it matters. With two data points every layer is a (2 x 500) @ (500 x 500) product: the work is
reading the weights, not arithmetic.

The derivatives of the activations are written out in :mod:`repalign.activations` (:data:`DERIVATIVES`
here) and in the kernel; the fused path applies them with ``Activation.chain`` (torch's own backward op
where the activation names one); tests compare all three with autograd.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ._threads import numba_threads
from .activations import ACTIVATIONS
from .models import VARIANTS, BatchedMLP
from .networks import BatchedConvNet, input_gradient
from .reference import ADAM
from .reference import loss as _loss
from .reference import minibatches as _minibatches

__all__ = ["DERIVATIVES", "BACKENDS", "ENGINES", "FAST_OPTIMIZERS", "supports", "trials_together", "default_backend",
           "select_engine", "run_sgd_full_batch", "run_sgd_minibatch", "DropoutMasks"]

#: The fast path's back ends: the compiled CPU kernel and the fused torch operations.
BACKENDS = ("kernel", "fused")
#: The values of ``train(engine=...)``.
ENGINES = ("auto", "fast", "kernel", "fused", "reference")
#: The optimisers of the fused back end (Adam on the ``batchable`` variants, mlp and skip); the kernel
#: trains plain SGD only.
FAST_OPTIMIZERS = ("sgd", "adam")

#: ``activation -> f(z, a)``: derivative of the activation at pre-activation ``z`` (``a = act(z)``);
#: ``None`` means 1 (linear). A view of :data:`repalign.activations.ACTIVATIONS`.
DERIVATIVES: dict[str, Callable] = {name: a.derivative for name, a in ACTIVATIONS.items()}


def supports(*, variant: str, optimizer: str, batched: bool) -> bool:
    """Whether the fast path covers a configuration (else the reference loop runs): full batches train
    with :func:`run_sgd_full_batch`, minibatches with :func:`run_sgd_minibatch`. Variants with a batched
    model (``VARIANTS[variant].batch``) are covered, on the devices of ``VARIANTS[variant].fast_devices``
    (checked by :func:`select_engine`), with plain SGD; Adam on the ``batchable`` variants (mlp, skip)."""
    if variant not in VARIANTS or not batched:
        return False
    v = VARIANTS[variant]
    return (optimizer == "sgd" and v.batch is not None) or (optimizer in FAST_OPTIMIZERS and v.batchable)


def trials_together(variant: str, device: torch.device, trials: int) -> int:
    """How many of ``trials`` the fast path trains as one batched model; groups of that size train one
    after another. All of them, except on the CPU for a variant with ``VARIANTS[variant].cpu_trials``:
    there the conv network's windows and the dropout network's weights of several trials overflow the
    caches, and one trial at a time was measured fastest (``benchmarks/conv_dropout.py``)."""
    n = VARIANTS[variant].cpu_trials if torch.device(device).type == "cpu" else None
    return trials if n is None else max(1, min(n, trials))


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
        Whether the trials train as one batched model (``VARIANTS[variant].batch``).
    full_batch : bool
        Full-batch training (else minibatches).
    device : torch.device
    activation : str, optional
        The network's activation; one without a kernel code (:class:`repalign.activations.Activation`)
        runs on the fused back end, as do variants the kernel does not cover (``"conv"``, ``"dropout"``).

    Returns
    -------
    str
        ``"reference"`` (the autograd loop) where the fast paths do not apply or were not wanted,
        else the back end: ``"fused"`` for minibatches and Adam, the requested back end, or
        :func:`default_backend` of the device.

    Raises
    ------
    ValueError
        Unknown ``engine``; ``"fast"``, ``"kernel"`` or ``"fused"`` asked for a configuration the fast
        paths do not cover (or on a device outside ``VARIANTS[variant].fast_devices``); ``"kernel"``
        with minibatches, Adam, off the CPU or for a variant or activation it lacks.
    """
    if engine not in ENGINES:
        raise ValueError(f"`engine` must be one of {', '.join(ENGINES)}; got {engine!r}")
    fast_ok = supports(variant=variant, optimizer=optimizer, batched=batched)
    if engine in ("fast", "kernel", "fused") and not fast_ok:
        names = "/".join(repr(k) for k, v in VARIANTS.items() if v.batch is not None)
        adam = "/".join(repr(k) for k, v in VARIANTS.items() if v.batchable)
        raise ValueError(f"`engine={engine!r}` covers only batched {names} networks with optimizer='sgd' "
                         f"(and {adam} with 'adam'); "
                         f"got variant={variant!r}, optimizer={optimizer!r}, batched={batched!r}. "
                         "Use engine='auto'.")
    on = torch.device(device).type
    if fast_ok and on not in VARIANTS[variant].fast_devices:  # e.g. dropout masks: drawn as the CPU draws them
        if engine in ("fast", "kernel", "fused"):
            raise ValueError(f"`engine={engine!r}` trains variant={variant!r} on "
                             f"{'/'.join(VARIANTS[variant].fast_devices)} only, got device={str(device)!r}; "
                             "use engine='auto' or 'reference'")
        fast_ok = False
    if engine == "kernel" and not full_batch:
        raise ValueError("`engine='kernel'` trains full batches only, got minibatches (`batch_size` < n_points); "
                         "use engine='fused' or 'auto' for minibatches")
    if engine == "kernel" and optimizer != "sgd":
        raise ValueError(f"`engine='kernel'` trains plain SGD only, got optimizer={optimizer!r}; "
                         "use engine='fused' or 'auto'")
    if not fast_ok or engine == "reference":
        return "reference"
    if engine == "kernel" and not VARIANTS[variant].kernel:
        raise ValueError(f"`engine='kernel'` has no branch for variant={variant!r}; use engine='fused'")
    in_kernel = VARIANTS[variant].kernel and getattr(ACTIVATIONS.get(activation), "code", 0) is not None
    if engine == "kernel" and not in_kernel:  # unknown activation names: build() says
        raise ValueError(f"`engine='kernel'` has no branch for activation={activation!r}; use engine='fused'")
    backend = ("fused" if not full_batch or not in_kernel or optimizer != "sgd" else engine if engine in BACKENDS
               else default_backend(device))
    if backend == "kernel" and torch.device(device).type != "cpu":
        raise ValueError(f"`engine='kernel'` runs on the CPU only, got device={str(device)!r}; use engine='fused'")
    return backend


@torch.no_grad()
def run_sgd_full_batch(model: BatchedMLP | BatchedConvNet, *, X, Y, spec, lr: float, epochs: int, recorder, rows,
                       bar, backend: str = "fused", stop=None, seeds=None, optimizer: str = "sgd") -> int:
    """Train ``model`` in place for ``epochs`` full-batch steps, filling ``recorder`` like the reference.

    ``optimizer``: one of :data:`FAST_OPTIMIZERS` (``"adam"`` on the ``"fused"`` back end and for a
    :class:`BatchedMLP` only).

    Record ``e`` is taken from the forward pass of epoch ``e`` (before its update), the last record
    after the final update -- exactly what :func:`repalign.train.train` records on its reference path
    (for a dropout model, from a separate pass without dropout, as the reference's eval mode).
    ``backend`` is one of :data:`BACKENDS`; ``"kernel"`` needs a :class:`BatchedMLP` without dropout
    on the CPU. ``stop(e)`` (optional), called after the record of epoch ``e`` is written, ends
    training after that epoch when it returns true (the kernel asks only at the end of each chunk of
    :data:`KERNEL_CHUNK` epochs). ``seeds`` (one per trial) seed a dropout model's masks
    (:class:`DropoutMasks`). Returns the number of epochs trained; the final record is written at that index.
    """
    if not isinstance(model, (BatchedMLP, BatchedConvNet)):
        raise TypeError(f"`model` must be a BatchedMLP or BatchedConvNet, got {type(model).__name__}")
    if backend not in BACKENDS:
        raise ValueError(f"`backend` must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if optimizer not in FAST_OPTIMIZERS or (backend == "kernel" and optimizer != "sgd"):
        raise ValueError(f"`optimizer` must be one of {', '.join(FAST_OPTIMIZERS)} ('sgd' only on the kernel); "
                         f"got {optimizer!r} with backend={backend!r}")
    if backend == "kernel":
        if not isinstance(model, BatchedMLP) or model.dropout > 0:
            raise ValueError("`backend='kernel'` trains BatchedMLPs without dropout only; use backend='fused'")
        if X.device.type != "cpu":
            raise ValueError(f"`backend='kernel'` runs on the CPU only; the data are on {X.device}. "
                             "Use backend='fused'.")
        return _run_kernel(model, X=X, Y=Y, spec=spec, lr=lr, epochs=epochs, recorder=recorder, rows=rows,
                           bar=bar, stop=stop)
    return _run_fused(model, X=X, Y=Y, spec=spec, lr=lr, epochs=epochs, recorder=recorder, rows=rows, bar=bar,
                      stop=stop, seeds=seeds, optimizer=optimizer)


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


class _SGD:
    """Plain SGD, layer by layer: each layer is updated in place as soon as its input gradient is taken."""

    def __init__(self, Ws, bs, lr: float):
        self.Ws, self.bs, self.lr = Ws, bs, lr

    def layer(self, i, inp, g):
        """Update layer ``i`` from its input ``inp`` (T, n, fan_in) and ``g = d loss / d z_i`` (T, n, fan_out)."""
        self.Ws[i].baddbmm_(inp.mT, g, alpha=-self.lr)
        self.bs[i].sub_(g.sum(1, keepdim=True), alpha=self.lr)

    def finish(self):
        """After the backward pass (nothing left to do)."""


class _Adam:
    """Adam (:data:`repalign.reference.ADAM`, what ``torch.optim.Adam`` does): the backward pass writes
    each layer's gradient into a buffer allocated once; :meth:`finish` then steps every parameter, its
    moments and step count in one fused in-place kernel (``torch._fused_adam_``). Element-wise, so the
    trials stay independent."""

    def __init__(self, Ws, bs, lr: float):
        self.params = [t for pair in zip(Ws, bs) for t in pair]
        self.grads = [torch.empty_like(p) for p in self.params]
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        # torch.optim.Adam's own step counts are float32 scalars (exact up to 2**24 steps)
        self.steps = [torch.zeros((), dtype=torch.float32, device=p.device) for p in self.params]
        beta1, beta2 = ADAM["betas"]
        self.kw = dict(lr=lr, beta1=beta1, beta2=beta2, weight_decay=ADAM["weight_decay"], eps=ADAM["eps"],
                       amsgrad=ADAM["amsgrad"], maximize=False)

    def layer(self, i, inp, g):
        torch.bmm(inp.mT, g, out=self.grads[2 * i])
        torch.sum(g, 1, keepdim=True, out=self.grads[2 * i + 1])

    def finish(self):
        torch._foreach_add_(self.steps, 1)
        torch._fused_adam_(self.params, self.grads, self.m, self.v, [], self.steps, **self.kw)


#: The update of each of :data:`FAST_OPTIMIZERS`.
_UPDATES = {"sgd": _SGD, "adam": _Adam}


class _Fused:
    """Forward and backward passes of a BatchedMLP written out, with in-place updates (:class:`_SGD`,
    :class:`_Adam`).

    ``masks`` (optional, in :meth:`forward` and :meth:`step`): one dropout factor per linear layer,
    ``masks[i]`` (T, n, fan_in) multiplying that layer's input (0 or ``1 / (1 - p)``, see
    :class:`DropoutMasks`), as ``nn.Dropout`` does before every linear layer of a dropout MLP.
    """

    def __init__(self, model: BatchedMLP, optimizer: str, lr: float):
        self.act = ACTIVATIONS[model.activation]
        self.skip = model.skip
        self.Ws = [w.data for w in model.weights]  # (T, fan_in, fan_out), updated in place
        self.bs = [b.data for b in model.biases]  # (T, 1, fan_out)
        self.L = model.n_hidden
        self.T = model.trials
        self.update = _UPDATES[optimizer](self.Ws, self.bs, lr)

    def forward(self, x, masks=None):
        """``x`` (T, n, d) -> output, pre-activations, activation outputs, hidden layers (with skips) and
        each linear layer's input (after its dropout factor)."""
        Ws, bs, skip = self.Ws, self.bs, self.skip
        a, zs, ps, hs, ins = x, [], [], [], []
        for i in range(self.L + 1):
            if masks is not None:
                a = a * masks[i]
            ins.append(a)
            if i == self.L:
                break
            z = torch.baddbmm(bs[i], a, Ws[i])
            a = self.act(z)
            zs.append(z)
            ps.append(a)  # the activation's own output (h_i without the skip term)
            if skip and i >= 2:
                a = a + hs[i - 2]
            hs.append(a)
        return torch.baddbmm(bs[self.L], a, Ws[self.L]), zs, ps, hs, ins

    @staticmethod
    def hidden(fwd, spec):
        """The recorded hidden layers of a :meth:`forward` result: all of them or layer ``spec``."""
        hs = fwd[3]
        return hs if spec == "all" else hs[spec - 1]

    def mask_shapes(self, n):
        """The shape of each linear layer's input for ``n`` points (one trial), for :class:`DropoutMasks`."""
        return [(n, w.shape[1]) for w in self.Ws]

    def step(self, x, y, masks=None):
        """One optimiser step on the points ``x`` (T, n, d), targets ``y`` (T or 1, n, O), of the loss
        ``1/2 mean_n ||f - y||^2``; returns the forward pass taken before the update."""
        out, zs, ps, hs, ins = fwd = self.forward(x, masks)
        Ws, skip, L = self.Ws, self.skip, self.L
        g = (out - y) / x.shape[1]  # d loss / d out, per trial (the trials' losses are summed)
        ga = [None] * L  # d loss / d h_i, accumulated (skip connections add to two layers below)
        for i in range(L, -1, -1):
            if i < L:  # g := d loss / d z_i
                g = ga[i]
                if skip and i >= 2:
                    ga[i - 2] = g if ga[i - 2] is None else ga[i - 2] + g
                g = self.act.chain(g, zs[i], ps[i])
            if i > 0:  # input gradient from the weights before their update
                # g W^T, in this form for any number of points. (W g^T)^T, used for two points up to
                # tasks' two_point version 3, was measured 3-4.5x slower here (torch 2.13, one 500 x 500
                # layer, two points: 85 vs 19 us at one thread, 61 vs 18 at two; 5 trials: 439 vs 203);
                # for minibatches the plain form is 2-4x faster too (64 points, 100 x 100, 5 trials)
                back = torch.bmm(g, Ws[i].mT)
                if masks is not None:
                    back = back * masks[i]
                ga[i - 1] = back if ga[i - 1] is None else ga[i - 1] + back
            self.update.layer(i, ins[i], g)
        self.update.finish()
        return fwd


class _ConvFused:
    """Forward and backward passes of a :class:`~repalign.networks.BatchedConvNet` written out, with
    in-place SGD updates: per convolution three batched products (output, input gradient from the
    weights before their update, weight update) on the windows of :func:`~repalign.networks.unfold_windows`."""

    def __init__(self, model: BatchedConvNet, lr: float):
        self.model, self.lr = model, lr
        self.deriv = ACTIVATIONS[model.activation].derivative
        self.K = model.kernel_size
        self.T = model.trials

    def forward(self, x, masks=None):
        """``x`` (T, n, d) -> ``(out, zs, acts, windows)`` of :meth:`BatchedConvNet.layers`."""
        return self.model.layers(x)

    @staticmethod
    def hidden(fwd, spec):
        acts = fwd[2]
        return [BatchedConvNet.flat(h) for h in acts] if spec == "all" else BatchedConvNet.flat(acts[spec - 1])

    def _times_deriv(self, g, z, a):
        d = self.deriv(z, a)
        return g if d is None else g * d

    def step(self, x, y, masks=None):
        """One SGD step on ``x`` (T, n, d), targets ``y``; returns the forward pass before the update."""
        m, lr = self.model, self.lr
        out, zs, acts, windows = fwd = self.forward(x)
        T, n = self.T, x.shape[1]
        g = (out - y) / n  # d loss / d out (T, n, O)
        last = acts[-1].view(T, n, -1)  # the last convolution has one channel
        ga = torch.bmm(g, m.readout_weight.data.mT)  # d loss / d last, from the weights before the update
        m.readout_weight.data.baddbmm_(last.mT, g, alpha=-lr)
        m.readout_bias.data.sub_(g.sum(1, keepdim=True), alpha=lr)
        ga = ga.view(acts[-1].shape)
        for c in range(len(windows) - 1, -1, -1):
            w, b = m.conv_weights[c].data, m.conv_biases[c].data  # (T, C_out, C_in K), (T, C_out, 1)
            gz = self._times_deriv(ga, zs[c + 1], acts[c + 1])  # (T, C_out, n, L_out)
            ga = input_gradient(w, gz, self.K)  # (T, C_in, n, L_in)
            gz = gz.view(T, w.shape[1], -1)
            w.baddbmm_(gz, windows[c].mT, alpha=-lr)
            b.sub_(gz.sum(-1, keepdim=True), alpha=lr)
        gz = self._times_deriv(ga.view(zs[0].shape), zs[0], acts[0])  # the first linear layer (one channel)
        m.lift_weight.data.baddbmm_(x.mT, gz, alpha=-lr)
        m.lift_bias.data.sub_(gz.sum(1, keepdim=True), alpha=lr)
        return fwd


class DropoutMasks:
    """The dropout factors of a batched dropout MLP, drawn per trial exactly as the reference draws them.

    The reference trains a dropout trial alone after ``torch.manual_seed(seed)`` (see
    :func:`repalign.train.train`), and on the CPU each ``nn.Dropout`` call multiplies its input by
    ``torch.empty_like(input).bernoulli_(1 - p) / (1 - p)`` from the default generator. Here each trial
    has its own CPU generator seeded with its seed, and every call draws, per trial and in the
    reference's order (each linear layer's input, first to last, step after step), a factor of the
    same shape and dtype: so trial ``k`` sees exactly the masks of a run of ``seeds[k]`` alone. (On a
    GPU torch draws dropout from another generator; this class is CPU only.)
    """

    def __init__(self, seeds, p: float, dtype: torch.dtype):
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.p, self.dtype = float(p), dtype

    def __call__(self, shapes):
        """One factor (T, *shape) per shape: 0 with probability ``p``, else ``1 / (1 - p)``."""
        keep = 1 - self.p
        out = []
        for shape in shapes:
            m = torch.empty((len(self.generators), *shape), dtype=self.dtype)
            for t, g in enumerate(self.generators):
                m[t].bernoulli_(keep, generator=g)
            out.append(m.div_(keep))
        return out


def _fused_net(model, seeds, optimizer: str, lr: float):
    """The hand-written passes for ``model`` with ``optimizer`` and, for a dropout model, its mask
    source (else None)."""
    if optimizer not in FAST_OPTIMIZERS:
        raise ValueError(f"`optimizer` must be one of {', '.join(FAST_OPTIMIZERS)}; got {optimizer!r}")
    if not isinstance(model, (BatchedMLP, BatchedConvNet)):
        raise TypeError(f"`model` must be a BatchedMLP or BatchedConvNet, got {type(model).__name__}")
    if optimizer != "sgd" and (isinstance(model, BatchedConvNet) or model.dropout > 0):
        raise ValueError(f"the fast path trains conv and dropout models with plain SGD only, got "
                         f"optimizer={optimizer!r}; use engine='reference'")
    if isinstance(model, BatchedConvNet):
        return _ConvFused(model, lr), None
    if model.dropout == 0:
        return _Fused(model, optimizer, lr), None
    if seeds is None or len(seeds) != model.trials:
        raise ValueError(f"a dropout model needs `seeds`, one per trial ({model.trials}), for its masks; "
                         f"got {seeds!r}")
    if model.weights[0].device.type != "cpu":
        raise ValueError("the fast path draws dropout masks on the CPU only (as the reference does there); "
                         f"the model is on {model.weights[0].device}")
    return _Fused(model, optimizer, lr), DropoutMasks(seeds, model.dropout, model.weights[0].dtype)


def _run_fused(model, *, X, Y, spec, lr, epochs, recorder, rows, bar, stop, seeds=None, optimizer="sgd"):
    net, masks = _fused_net(model, seeds, optimizer, lr)
    x = X.expand(net.T, *X.shape)

    def record(e, fwd):
        recorder.record(rows, e, fwd[0], net.hidden(fwd, spec), _loss(fwd[0], Y))

    for e in range(epochs):
        if masks is None:
            record(e, net.step(x, Y))  # the training pass also yields the record
        else:  # records are taken without dropout (eval mode), training passes with it
            record(e, net.forward(x))
            net.step(x, Y, masks(net.mask_shapes(X.shape[0])))
        bar.update(1)
        if stop is not None and stop(e):
            epochs = e + 1
            break
    record(epochs, net.forward(x))
    return epochs


def _rows(A: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``A[idx]`` for row indices ``idx`` (T, b): the same rows, gathered with ``index_select`` (measured
    2x faster than advanced indexing for a (10, 64) batch of MNIST's 784-pixel rows: 0.22 vs 0.43 ms)."""
    return A.index_select(0, idx.reshape(-1)).view(*idx.shape, *A.shape[1:])


@torch.no_grad()
def run_sgd_minibatch(model: BatchedMLP | BatchedConvNet, *, X, Y, spec, lr: float, epochs: int,
                      batch_size: int, seeds, recorder, rows, bar, stop=None, optimizer: str = "sgd") -> int:
    """Minibatch SGD (or Adam: ``optimizer``, one of :data:`FAST_OPTIMIZERS`; mlp and skip only) of
    ``model`` in place with the fused operations, recording like the reference.

    Each trial draws a fresh permutation of the points every epoch from ``numpy.random.default_rng(seed)``
    (the reference loop's order, so both train on the same minibatches); a dropout model draws its
    masks per trial from ``seeds`` (:class:`DropoutMasks`). Record ``e`` holds the tracked
    pair's quantities before epoch ``e`` (a forward pass of the two points only, without dropout) and the
    epoch's mean minibatch loss; the last record is a full pass. Returns the number of epochs trained.
    """
    net, masks = _fused_net(model, seeds, optimizer, lr)
    n = X.shape[0]
    rngs = [np.random.default_rng(s) for s in seeds]
    pair = X[[recorder.i, recorder.j]].expand(net.T, 2, X.shape[1])

    def record_pair(e):
        fwd = net.forward(pair)
        recorder.record(rows, e, fwd[0], net.hidden(fwd, spec), 0.0, pair_only=True)

    for e in range(epochs):
        record_pair(e)
        epoch_loss = 0.0
        for idx in _minibatches(rngs, n, batch_size, X.device):
            yb = _rows(Y, idx)
            drop = None if masks is None else masks(net.mask_shapes(idx.shape[1]))
            out = net.step(_rows(X, idx), yb, drop)[0]
            epoch_loss = epoch_loss + _loss(out, yb) * idx.shape[1]
        recorder.loss[rows, e] = epoch_loss / n
        bar.update(1)
        if stop is not None and stop(e):
            epochs = e + 1
            break
    fwd = net.forward(X.expand(net.T, *X.shape))
    recorder.record(rows, epochs, fwd[0], net.hidden(fwd, spec), _loss(fwd[0], Y))
    return epochs
