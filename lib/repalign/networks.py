"""The network classes of :mod:`repalign.models`: :class:`MLP`, :class:`ConvNet`, :class:`BatchedMLP` and
:class:`BatchedConvNet`.

Every model takes ``x`` of shape (batch, input_dim) and has ``forward(x, *, hidden=None)`` returning
``(output, h)``: ``output`` of shape (batch, output_dim) and ``h`` the post-activation output of hidden
layer ``hidden`` (1-based, shape (batch, features)), a list of all of them for ``hidden="all"``, or
``None``. :class:`BatchedMLP` and :class:`BatchedConvNet` do the same for many independent trials at
once, with a leading trial axis. All weights are Xavier-normal with the row's gain, all biases zero
(App. B.1); see :mod:`repalign.models` for the variants built from them and how a network is chosen.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence

import torch
from torch import nn

from .activations import ACTIVATIONS, check_activation

__all__ = ["MLP", "ConvNet", "BatchedMLP", "BatchedConvNet", "unfold_windows", "input_gradient",
           "xavier_normal_", "DROPOUT_P", "CONV_CHANNELS", "CONV_KERNEL"]

DROPOUT_P = 0.1
CONV_CHANNELS = 20
CONV_KERNEL = 11


def _int_at_least(name: str, value, low: int) -> int:
    try:
        out = operator.index(value)
    except TypeError:
        raise ValueError(f"`{name}` must be an integer >= {low}, got {value!r}") from None
    if out < low:
        raise ValueError(f"`{name}` must be an integer >= {low}, got {value!r}")
    return out


def _check_gain(gain) -> float:
    gain = float(gain)
    if not math.isfinite(gain) or gain <= 0:
        raise ValueError(f"`gain` (the Xavier-normal gain) must be finite and > 0, got {gain!r}")
    return gain


def _hidden_spec(hidden, n: int, *, name: str = "hidden"):
    """Validate ``hidden`` (None, 'all' or 1..n) against a model with ``n`` hidden layers; errors name
    the argument ``name`` (``"hidden"`` for ``forward``, ``"layer"`` for :func:`repalign.train.train`)."""
    if hidden is None or (isinstance(hidden, str) and hidden == "all"):
        return hidden
    try:
        k = operator.index(hidden)
    except TypeError:
        raise ValueError(f"`{name}` must be None, 'all' or an integer in [1, {n}], got {hidden!r}") from None
    if not 1 <= k <= n:
        raise ValueError(f"`{name}` must be None, 'all' or an integer in [1, {n}] (this model has {n} "
                         f"hidden layers), got {hidden!r}")
    return k


def _check_x(x, *, input_dim: int, dtype: torch.dtype, trials: int | None = None) -> None:
    """Raise if ``x`` is not what ``forward`` takes: a tensor of the model's dtype, of shape
    (batch, input_dim), or (trials, batch, input_dim) for a batched model; the errors name ``x`` and
    the expected shape instead of surfacing as torch's matmul or dtype errors."""
    shape = f"(batch, {input_dim})" + ("" if trials is None else f" or ({trials}, batch, {input_dim})")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"`x` must be a torch.Tensor of shape {shape}, got {type(x).__name__}")
    if x.dim() not in ((2,) if trials is None else (2, 3)):
        raise ValueError(f"`x` must have shape {shape} (input_dim = {input_dim}), got shape {tuple(x.shape)}")
    if x.shape[-1] != input_dim:
        raise ValueError(f"`x` must have {input_dim} column(s), the model's input_dim; got shape {tuple(x.shape)}")
    if trials is not None and x.dim() == 3 and x.shape[0] != trials:
        raise ValueError(f"`x` must have shape {shape} (the model has {trials} trials), got shape {tuple(x.shape)}")
    if x.dtype != dtype:
        raise ValueError(f"`x` must have the model's dtype {dtype}, got {x.dtype}; convert it with x.to({dtype})")


def _pick(hs: list, hidden):
    if hidden is None:
        return None
    return hs if hidden == "all" else hs[hidden - 1]


def xavier_normal_(weight: torch.Tensor, *, gain: float, generator: torch.Generator) -> torch.Tensor:
    """Fill ``weight`` in place with N(0, std^2), ``std = gain * sqrt(2 / (fan_in + fan_out))``.

    Fans as in :func:`torch.nn.init.xavier_normal_`: ``weight`` has shape (out, in, *kernel) and the
    kernel size multiplies both fans. The draw is made in float64 on the CPU, then cast.
    """
    receptive = math.prod(weight.shape[2:])
    fan_in, fan_out = weight.shape[1] * receptive, weight.shape[0] * receptive
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    draw = torch.randn(tuple(weight.shape), generator=generator, dtype=torch.float64) * std
    with torch.no_grad():
        weight.copy_(draw)
    return weight


def _skip_init(cls, *args, **kwargs):
    """A layer without torch's default initialisation (``_init`` overwrites every parameter)."""
    return torch.nn.utils.skip_init(cls, *args, **kwargs)


def _init(layers, *, gain: float, seed) -> None:
    seed = _int_at_least("seed", seed, 0)
    g = torch.Generator().manual_seed(seed)
    for layer in layers:
        xavier_normal_(layer.weight, gain=gain, generator=g)
        nn.init.zeros_(layer.bias)


class MLP(nn.Module):
    """A fully connected network: ``hidden_layers`` layers of ``width`` units and a linear read-out.

    Parameters
    ----------
    input_dim, output_dim : int
        Input and output dimensions (>= 1).
    width : int
        Units per hidden layer (>= 1).
    hidden_layers : int
        Number of hidden layers (>= 1).
    activation : str
        One of :data:`repalign.activations.ACTIVATIONS`.
    gain : float
        Xavier-normal gain of every weight matrix (> 0).
    skip : bool
        Add the skip connections of the ``"skip"`` variant.
    dropout : float
        Dropout probability before every linear layer, raw input included (0 for none).
    seed : int
        Seed of the initial weights (>= 0).
    dtype : torch.dtype

    Raises
    ------
    ValueError
        Non-positive width, depth or dimension, ``gain <= 0``, unknown activation, dropout outside [0, 1).

    Examples
    --------
    >>> net = MLP(width=8, hidden_layers=3, seed=0)
    >>> out, h = net(torch.zeros(5, 1), hidden=2)
    >>> tuple(out.shape), tuple(h.shape)
    ((5, 1), (5, 8))
    """

    def __init__(self, *, input_dim: int = 1, output_dim: int = 1, width: int, hidden_layers: int,
                 activation: str = "leaky_relu", gain: float = 1.0, skip: bool = False, dropout: float = 0.0,
                 seed: int, dtype: torch.dtype = torch.float32):
        super().__init__()
        input_dim = _int_at_least("input_dim", input_dim, 1)
        output_dim = _int_at_least("output_dim", output_dim, 1)
        width = _int_at_least("width", width, 1)
        hidden_layers = _int_at_least("hidden_layers", hidden_layers, 1)
        self.activation = check_activation(activation)
        gain = _check_gain(gain)
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"`dropout` must lie in [0, 1), got {dropout!r}")
        self.skip, self.dropout = bool(skip), float(dropout)
        dims = [input_dim] + [width] * hidden_layers + [output_dim]
        self.linears = nn.ModuleList(_skip_init(nn.Linear, a, b, dtype=dtype) for a, b in zip(dims[:-1], dims[1:]))
        self._act = ACTIVATIONS[activation]
        self._drop = nn.Dropout(self.dropout) if self.dropout > 0 else None
        _init(self.linears, gain=gain, seed=seed)

    @property
    def n_hidden(self) -> int:
        """Number of hidden layers that ``forward(hidden=...)`` can read."""
        return len(self.linears) - 1

    @property
    def layer_names(self) -> tuple[str, ...]:
        return tuple(f"hidden{k}" for k in range(1, self.n_hidden + 1))

    def forward(self, x: torch.Tensor, *, hidden=None):
        """``(output, h)``: output (batch, output_dim); ``h`` as described in the module docstring."""
        hidden = _hidden_spec(hidden, self.n_hidden)
        first = self.linears[0].weight
        _check_x(x, input_dim=first.shape[1], dtype=first.dtype)
        hs: list[torch.Tensor] = []
        a = x
        for i, lin in enumerate(self.linears[:-1]):
            if self._drop is not None:
                a = self._drop(a)
            a = self._act(lin(a))
            if self.skip and i >= 2:
                a = a + hs[i - 2]
            hs.append(a)
        if self._drop is not None:
            a = self._drop(a)
        return self.linears[-1](a), _pick(hs, hidden)


class ConvNet(nn.Module):
    """The convolutional variant of Table 1 (see the module docstring for the exact layers).

    Parameters
    ----------
    input_dim, output_dim : int
    width : int
        Length of the first linear layer's output, the convolutions' input signal. Must exceed
        ``(conv_hidden_layers + 1) * (kernel_size - 1)`` so that a signal survives the convolutions.
    conv_hidden_layers : int
        Table 1's "hidden layers" (10): there are ``conv_hidden_layers + 1`` convolutions.
    activation, gain, seed, dtype
        As for :class:`MLP`.
    channels, kernel_size : int
        20 and 11 in the paper.

    Raises
    ------
    ValueError
        As :class:`MLP`, and if ``width`` is too small for the convolutions.
    """

    def __init__(self, *, input_dim: int = 1, output_dim: int = 1, width: int, conv_hidden_layers: int,
                 activation: str = "leaky_relu", gain: float = 1.0, seed: int, channels: int = CONV_CHANNELS,
                 kernel_size: int = CONV_KERNEL, dtype: torch.dtype = torch.float32):
        super().__init__()
        input_dim = _int_at_least("input_dim", input_dim, 1)
        output_dim = _int_at_least("output_dim", output_dim, 1)
        width = _int_at_least("width", width, 1)
        n_conv = _int_at_least("hidden_layers", conv_hidden_layers, 1) + 1
        channels = _int_at_least("channels", channels, 1)
        kernel_size = _int_at_least("kernel_size", kernel_size, 1)
        self.activation = check_activation(activation)
        gain = _check_gain(gain)
        out_len = width - n_conv * (kernel_size - 1)
        if out_len < 1:
            raise ValueError(f"`width` must be > (hidden_layers + 1) * (kernel_size - 1) = "
                             f"{n_conv * (kernel_size - 1)} for the conv variant, got {width}")
        chans = [1] + [channels] * (n_conv - 1) + [1]
        self.lift = _skip_init(nn.Linear, input_dim, width, dtype=dtype)
        self.convs = nn.ModuleList(_skip_init(nn.Conv1d, a, b, kernel_size, dtype=dtype)
                                   for a, b in zip(chans[:-1], chans[1:]))
        self.readout = _skip_init(nn.Linear, out_len, output_dim, dtype=dtype)
        self._act = ACTIVATIONS[activation]
        _init([self.lift, *self.convs, self.readout], gain=gain, seed=seed)

    @property
    def n_hidden(self) -> int:
        return len(self.convs) + 1

    @property
    def layer_names(self) -> tuple[str, ...]:
        return ("linear",) + tuple(f"conv{k}" for k in range(1, len(self.convs) + 1))

    def forward(self, x: torch.Tensor, *, hidden=None):
        hidden = _hidden_spec(hidden, self.n_hidden)
        _check_x(x, input_dim=self.lift.weight.shape[1], dtype=self.lift.weight.dtype)
        a = self._act(self.lift(x)).unsqueeze(1)  # (batch, 1 channel, width)
        hs = [a.flatten(1)]
        for conv in self.convs:
            a = self._act(conv(a))
            hs.append(a.flatten(1))
        return self.readout(hs[-1]), _pick(hs, hidden)


class BatchedMLP(nn.Module):
    """``T`` independent :class:`MLP` s evaluated as one batched computation.

    Weight ``l`` is a parameter of shape (T, fan_in, fan_out) (the transposes of the trials' weights,
    stacked) and bias ``l`` of shape (T, 1, fan_out); each layer is one ``torch.baddbmm``. The loss of a
    batched run is the sum of the trials' losses, so every trial gets exactly its own gradient, and any
    element-wise optimiser (SGD, Adam) updates the trials independently.

    Trials with dropout are accepted (``dropout`` keeps their probability) but only evaluated here, in
    eval mode, where dropout is the identity: the per-trial masks are drawn by the training path
    (:func:`repalign.fastpath.run_sgd_full_batch`), and ``forward`` in training mode raises.

    Parameters
    ----------
    models : sequence of MLP
        Trials of identical shape, activation, skip setting and dropout. Their current weights are copied.

    Examples
    --------
    >>> nets = [MLP(width=4, hidden_layers=2, seed=s, dtype=torch.float64) for s in (0, 1)]
    >>> out, h = BatchedMLP(nets)(torch.zeros(2, 3, 1, dtype=torch.float64), hidden="all")
    >>> tuple(out.shape), len(h), tuple(h[0].shape)
    ((2, 3, 1), 2, (2, 3, 4))
    """

    def __init__(self, models: Sequence[MLP]):
        super().__init__()
        models = list(models)
        if not models:
            raise ValueError("`models` must contain at least one MLP")
        first = models[0]
        shapes = [tuple(p.shape) for p in first.parameters()]
        for m in models:
            if not isinstance(m, MLP):
                raise ValueError(f"`models` must be MLPs, got a {type(m).__name__}")
            if ([tuple(p.shape) for p in m.parameters()] != shapes or m.activation != first.activation
                    or m.skip != first.skip or m.dropout != first.dropout):
                raise ValueError("`models` must share shapes, activation, skip setting and dropout")
        self.activation, self.skip, self.dropout = first.activation, first.skip, first.dropout
        self._act = ACTIVATIONS[self.activation]
        with torch.no_grad():
            self.weights = nn.ParameterList(
                nn.Parameter(torch.stack([m.linears[i].weight.mT for m in models]).contiguous())
                for i in range(len(first.linears)))
            self.biases = nn.ParameterList(
                nn.Parameter(torch.stack([m.linears[i].bias for m in models]).unsqueeze(1).contiguous())
                for i in range(len(first.linears)))

    @property
    def trials(self) -> int:
        return self.weights[0].shape[0]

    @property
    def n_hidden(self) -> int:
        return len(self.weights) - 1

    @property
    def layer_names(self) -> tuple[str, ...]:
        return tuple(f"hidden{k}" for k in range(1, self.n_hidden + 1))

    def forward(self, x: torch.Tensor, *, hidden=None):
        """``x`` of shape (T, batch, input_dim), or (batch, input_dim) shared by all trials.

        Returns ``(output, h)`` with a leading trial axis: output (T, batch, output_dim), ``h``
        (T, batch, width), a list of those, or ``None``.
        """
        hidden = _hidden_spec(hidden, self.n_hidden)
        w0 = self.weights[0]
        _check_x(x, input_dim=w0.shape[1], dtype=w0.dtype, trials=self.trials)
        if self.training and self.dropout > 0:
            raise RuntimeError("BatchedMLP draws no dropout masks: evaluate it in eval mode (`.eval()`) and "
                               "train dropout trials with repalign.train.train")
        if x.dim() == 2:
            x = x.expand(self.trials, *x.shape)
        hs: list[torch.Tensor] = []
        a = x
        for i in range(self.n_hidden):
            a = self._act(torch.baddbmm(self.biases[i], a, self.weights[i]))
            if self.skip and i >= 2:
                a = a + hs[i - 2]
            hs.append(a)
        return torch.baddbmm(self.biases[-1], a, self.weights[-1]), _pick(hs, hidden)

    def trial(self, k: int) -> MLP:
        """Trial ``k`` as a stand-alone :class:`MLP` carrying the current weights (a copy)."""
        k = _check_trial(k, self.trials)
        w0 = self.weights[0]
        net = MLP(input_dim=w0.shape[1], output_dim=self.weights[-1].shape[2], width=w0.shape[2],
                  hidden_layers=self.n_hidden, activation=self.activation, skip=self.skip, dropout=self.dropout,
                  seed=0, dtype=w0.dtype)
        with torch.no_grad():
            for lin, w, b in zip(net.linears, self.weights, self.biases):
                lin.weight.copy_(w[k].mT)
                lin.bias.copy_(b[k, 0])
        return net.to(w0.device)



def _check_trial(k, trials: int) -> int:
    k = operator.index(k)
    if not -trials <= k < trials:
        raise ValueError(f"`k` must be in [0, {trials}), got {k}")
    return k


def unfold_windows(a: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """The convolution windows of ``a`` (T, C, n, L) as one matrix per trial, (T, C * K, n * (L - K + 1)).

    Row ``c * K + k`` holds channel ``c`` shifted by ``k``, the order of a Conv1d weight (C_out, C, K)
    flattened to (C_out, C * K), so a convolution is one ``baddbmm`` of that weight with these windows.
    """
    T, C, n, L = a.shape
    out = L - kernel_size + 1
    return a.unfold(-1, kernel_size, 1).permute(0, 1, 4, 2, 3).reshape(T, C * kernel_size, n * out)


def input_gradient(w: torch.Tensor, gz: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """The gradient with respect to a convolution's input, from the gradient ``gz`` (T, C_out, n, L_out)
    with respect to its output and its weights ``w`` (T, C_out, C_in * K) as :class:`BatchedConvNet`
    holds them: the correlation of ``gz``, padded with ``K - 1`` zeros at both ends, with the kernel
    flipped, one ``bmm`` on its :func:`unfold_windows`. Returns (T, C_in, n, L_out + K - 1)."""
    T, c_out, n, _ = gz.shape
    K = kernel_size
    flipped = w.view(T, c_out, -1, K).flip(-1).transpose(1, 2).reshape(T, -1, c_out * K)  # (T, C_in, C_out K)
    cols = unfold_windows(torch.nn.functional.pad(gz, (K - 1, K - 1)), K)
    return torch.bmm(flipped, cols).view(T, flipped.shape[1], n, -1)


class BatchedConvNet(nn.Module):
    """``T`` independent :class:`ConvNet` s evaluated as one batched computation.

    Activations are held as (T, channels, n, length); each convolution is one ``torch.baddbmm`` of the
    trials' weights, flattened to (T, C_out, C_in * K), with the windows of :func:`unfold_windows`
    (an im2col), so all trials and both points of a layer are a single batched matrix product. The
    linear layers are batched as in :class:`BatchedMLP`: ``lift_weight`` (T, input_dim, width),
    ``readout_weight`` (T, out_len, output_dim), biases (T, 1, features); convolution biases are
    (T, C_out, 1). The loss of a batched run is the sum of the trials' losses, so every trial gets
    exactly its own gradient.

    Parameters
    ----------
    models : sequence of ConvNet
        Trials of identical shape and activation. Their current weights are copied.

    Examples
    --------
    >>> nets = [ConvNet(width=40, conv_hidden_layers=2, seed=s, dtype=torch.float64) for s in (0, 1)]
    >>> out, h = BatchedConvNet(nets)(torch.zeros(3, 1, dtype=torch.float64), hidden="all")
    >>> tuple(out.shape), len(h), tuple(h[1].shape)
    ((2, 3, 1), 4, (2, 3, 600))
    """

    def __init__(self, models: Sequence[ConvNet]):
        super().__init__()
        models = list(models)
        if not models:
            raise ValueError("`models` must contain at least one ConvNet")
        first = models[0]
        shapes = [tuple(p.shape) for p in first.parameters()]
        for m in models:
            if not isinstance(m, ConvNet):
                raise ValueError(f"`models` must be ConvNets, got a {type(m).__name__}")
            if [tuple(p.shape) for p in m.parameters()] != shapes or m.activation != first.activation:
                raise ValueError("`models` must share shapes and activation")
        self.activation = first.activation
        self._act = ACTIVATIONS[self.activation]
        self.kernel_size = first.convs[0].kernel_size[0]

        def stack(tensors):
            return nn.Parameter(torch.stack(list(tensors)).contiguous())

        with torch.no_grad():
            self.lift_weight = stack(m.lift.weight.mT for m in models)
            self.lift_bias = stack(m.lift.bias.unsqueeze(0) for m in models)
            self.conv_weights = nn.ParameterList(
                stack(m.convs[i].weight.flatten(1) for m in models) for i in range(len(first.convs)))
            self.conv_biases = nn.ParameterList(
                stack(m.convs[i].bias.unsqueeze(1) for m in models) for i in range(len(first.convs)))
            self.readout_weight = stack(m.readout.weight.mT for m in models)
            self.readout_bias = stack(m.readout.bias.unsqueeze(0) for m in models)

    @property
    def trials(self) -> int:
        return self.lift_weight.shape[0]

    @property
    def n_hidden(self) -> int:
        return len(self.conv_weights) + 1

    @property
    def layer_names(self) -> tuple[str, ...]:
        return ("linear",) + tuple(f"conv{k}" for k in range(1, len(self.conv_weights) + 1))

    def layers(self, x: torch.Tensor):
        """Every intermediate of the forward pass of ``x`` (T, n, input_dim), for the hand-written
        backward pass of :mod:`repalign.fastpath`: ``(out, zs, acts, windows)`` with the output
        (T, n, output_dim), the pre-activations ``zs`` and activations ``acts`` of each hidden layer
        (the first linear layer's (T, n, width), then each convolution's (T, C, n, L)) and the windows
        each convolution read (:func:`unfold_windows`)."""
        T, n = self.trials, x.shape[1]
        z = torch.baddbmm(self.lift_bias, x, self.lift_weight)
        a = self._act(z)
        zs, acts, windows = [z], [a], []
        a = a.unsqueeze(1)  # (T, 1 channel, n, width)
        for w, b in zip(self.conv_weights, self.conv_biases):
            cols = unfold_windows(a, self.kernel_size)
            z = torch.baddbmm(b, w, cols).view(T, w.shape[1], n, -1)
            a = self._act(z)
            zs.append(z)
            acts.append(a)
            windows.append(cols)
        out = torch.baddbmm(self.readout_bias, a.view(T, n, -1), self.readout_weight)  # the last conv has 1 channel
        return out, zs, acts, windows

    @staticmethod
    def flat(h: torch.Tensor) -> torch.Tensor:
        """A hidden layer of :meth:`layers` as :class:`ConvNet` reads it out: (T, n, features), channel-major."""
        return h if h.dim() == 3 else h.transpose(1, 2).flatten(2)

    def forward(self, x: torch.Tensor, *, hidden=None):
        """``x`` of shape (T, batch, input_dim), or (batch, input_dim) shared by all trials; returns
        ``(output, h)`` with a leading trial axis as :class:`BatchedMLP` does."""
        hidden = _hidden_spec(hidden, self.n_hidden)
        if x.dim() == 2:
            x = x.expand(self.trials, *x.shape)
        out, _, acts, _ = self.layers(x)
        if hidden is None:
            return out, None
        return out, [self.flat(h) for h in acts] if hidden == "all" else self.flat(acts[hidden - 1])

    def trial(self, k: int) -> ConvNet:
        """Trial ``k`` as a stand-alone :class:`ConvNet` carrying the current weights (a copy)."""
        k = _check_trial(k, self.trials)
        w0 = self.lift_weight
        net = ConvNet(input_dim=w0.shape[1], output_dim=self.readout_weight.shape[2], width=w0.shape[2],
                      conv_hidden_layers=len(self.conv_weights) - 1, activation=self.activation, seed=0,
                      channels=self.conv_weights[0].shape[1], kernel_size=self.kernel_size, dtype=w0.dtype)
        with torch.no_grad():
            net.lift.weight.copy_(w0[k].mT)
            net.lift.bias.copy_(self.lift_bias[k, 0])
            for conv, w, b in zip(net.convs, self.conv_weights, self.conv_biases):
                conv.weight.copy_(w[k].view_as(conv.weight))
                conv.bias.copy_(b[k, :, 0])
            net.readout.weight.copy_(self.readout_weight[k].mT)
            net.readout.bias.copy_(self.readout_bias[k, 0])
        return net.to(w0.device)
