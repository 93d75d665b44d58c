"""The network classes of :mod:`repalign.models`: :class:`MLP`, :class:`ConvNet` and :class:`BatchedMLP`.

Every model takes ``x`` of shape (batch, input_dim) and has ``forward(x, *, hidden=None)`` returning
``(output, h)``: ``output`` of shape (batch, output_dim) and ``h`` the post-activation output of hidden
layer ``hidden`` (1-based, shape (batch, features)), a list of all of them for ``hidden="all"``, or
``None``. :class:`BatchedMLP` does the same for many independent trials at once, with a leading trial axis.
All weights are Xavier-normal with the row's gain, all biases zero (App. B.1); see :mod:`repalign.models`
for the variants built from them and how a network is chosen.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence

import torch
from torch import nn

from .activations import ACTIVATIONS, check_activation

__all__ = ["MLP", "ConvNet", "BatchedMLP", "xavier_normal_", "DROPOUT_P", "CONV_CHANNELS", "CONV_KERNEL"]

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
    """``T`` independent :class:`MLP` s (no dropout) evaluated as one batched computation.

    Weight ``l`` is a parameter of shape (T, fan_in, fan_out) (the transposes of the trials' weights,
    stacked) and bias ``l`` of shape (T, 1, fan_out); each layer is one ``torch.baddbmm``. The loss of a
    batched run is the sum of the trials' losses, so every trial gets exactly its own gradient, and any
    element-wise optimiser (SGD, Adam) updates the trials independently.

    Parameters
    ----------
    models : sequence of MLP
        Trials of identical shape, activation and skip setting, without dropout. Their current weights
        are copied.

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
            if not isinstance(m, MLP) or m.dropout > 0:
                raise ValueError("`models` must be MLPs without dropout (use a loop over trials for dropout)")
            if ([tuple(p.shape) for p in m.parameters()] != shapes or m.activation != first.activation
                    or m.skip != first.skip):
                raise ValueError("`models` must share shapes, activation and skip setting")
        self.activation, self.skip = first.activation, first.skip
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
        k = operator.index(k)
        if not -self.trials <= k < self.trials:
            raise ValueError(f"`k` must be in [0, {self.trials}), got {k}")
        w0 = self.weights[0]
        net = MLP(input_dim=w0.shape[1], output_dim=self.weights[-1].shape[2], width=w0.shape[2],
                  hidden_layers=self.n_hidden, activation=self.activation, skip=self.skip, seed=0, dtype=w0.dtype)
        with torch.no_grad():
            for lin, w, b in zip(net.linears, self.weights, self.biases):
                lin.weight.copy_(w[k].mT)
                lin.bias.copy_(b[k, 0])
        return net.to(w0.device)

