"""The networks of the two-point experiments (paper App. B.1, Table 1) and their hidden-layer read-out.

Every model takes ``x`` of shape (batch, input_dim) and has ``forward(x, *, hidden=None)`` returning
``(output, h)``: ``output`` of shape (batch, output_dim) and ``h`` the post-activation output of hidden
layer ``hidden`` (1-based, shape (batch, features)), a list of all of them for ``hidden="all"``, or
``None``. :class:`BatchedMLP` does the same for many independent trials at once, with a leading trial axis.

Variants (``Architecture.variant``):

``"mlp"``
    ``hidden_layers`` fully connected layers of ``width`` units, then a linear read-out.
``"skip"``
    As ``"mlp"``; from the 3rd hidden layer on, each hidden layer's post-activation output has the
    (already skip-summed) output of the hidden layer two below added ("a skip connection on each layer
    jumping over the next two layers").
``"dropout"``
    As ``"mlp"`` with dropout (p = 0.1) before every linear layer, the raw input included.
``"conv"``
    As the released code: Linear(input_dim -> width), then Conv1d 1 -> 20 channels, ``hidden_layers - 1``
    Conv1d 20 -> 20 and a Conv1d 20 -> 1, all kernel 11, stride 1, no padding, with bias; then
    Linear(width - 10 (hidden_layers + 1) -> output_dim). For Table 1 (width 500, 10 layers) that is
    11 convolutions and a Linear(390 -> 1). An activation follows the first linear layer and every
    convolution (the facts do not say; this is our reading). Hidden layer 1 is the first linear layer's
    output and hidden layer ``k + 1`` the ``k``-th convolution's output, flattened channel-major, so
    :attr:`ConvNet.n_hidden` is ``hidden_layers + 2``; :attr:`ConvNet.layer_names` names them.

All weights are Xavier-normal with the row's gain, all biases zero (App. B.1). Initial weights are drawn
in float64 from ``torch.Generator().manual_seed(seed)`` layer by layer in forward order and then cast, so a
model's initial weights depend only on the seed, not on the dtype or the device.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .profiles import Architecture

__all__ = [
    "ACTIVATIONS",
    "VARIANTS",
    "CONVENTIONS",
    "MLP",
    "ConvNet",
    "BatchedMLP",
    "build",
    "build_batched",
    "n_hidden",
    "default_hidden_layer",
    "xavier_normal_",
]

ACTIVATIONS = {
    "linear": lambda a: a,
    "relu": F.relu,
    "leaky_relu": F.leaky_relu,  # negative slope 0.01, the torch default the released code used
    "elu": F.elu,
    "tanh": torch.tanh,
    "silu": F.silu,  # the paper's "swish"
}
VARIANTS = ("mlp", "skip", "conv", "dropout")
CONVENTIONS = ("paper", "code")
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


def _check_activation(name) -> str:
    if name not in ACTIVATIONS:
        raise ValueError(f"`activation` must be one of {', '.join(ACTIVATIONS)}; got {name!r}")
    return name


def _hidden_spec(hidden, n: int):
    """Validate ``hidden`` (None, 'all' or 1..n) against a model with ``n`` hidden layers."""
    if hidden is None or (isinstance(hidden, str) and hidden == "all"):
        return hidden
    try:
        k = operator.index(hidden)
    except TypeError:
        raise ValueError(f"`hidden` must be None, 'all' or an integer in [1, {n}], got {hidden!r}") from None
    if not 1 <= k <= n:
        raise ValueError(f"`hidden` must be None, 'all' or an integer in [1, {n}] (this model has {n} "
                         f"hidden layers), got {hidden!r}")
    return k


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
        One of :data:`ACTIVATIONS`.
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
        self.activation = _check_activation(activation)
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
        self.activation = _check_activation(activation)
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


def _check_arch(arch) -> Architecture:
    if not isinstance(arch, Architecture):
        raise ValueError(f"`arch` must be a profiles.Architecture (e.g. profiles.TABLE1['default']), got {arch!r}")
    if arch.variant not in VARIANTS:
        raise ValueError(f"`arch.variant` must be one of {', '.join(VARIANTS)}; got {arch.variant!r}")
    return arch


def build(arch: Architecture, *, input_dim: int = 1, output_dim: int = 1, seed: int,
          dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> nn.Module:
    """The network of one Table 1 row, freshly initialised from ``seed``.

    Parameters
    ----------
    arch : profiles.Architecture
        Activation, gain, width, hidden layers and variant (lr and epochs are not used here).
    input_dim, output_dim : int, keyword-only
    seed : int, keyword-only
        Seed of the initial weights (>= 0).
    dtype, device : keyword-only

    Returns
    -------
    MLP or ConvNet

    Raises
    ------
    ValueError
        Unknown variant or activation, non-positive width or depth, ``gain <= 0``, negative seed.

    References
    ----------
    App. B.1 ("Architectures") and Table 1.

    Examples
    --------
    >>> from dataclasses import replace
    >>> from repalign.profiles import TABLE1
    >>> net = build(replace(TABLE1["default"], width=16, hidden_layers=4), seed=0)
    >>> net.n_hidden, tuple(net(torch.zeros(2, 1))[0].shape)
    (4, (2, 1))
    """
    arch = _check_arch(arch)
    common = dict(input_dim=input_dim, output_dim=output_dim, width=arch.width, activation=arch.activation,
                  gain=arch.gain, seed=seed, dtype=dtype)
    if arch.variant == "conv":
        net = ConvNet(conv_hidden_layers=arch.hidden_layers, **common)
    else:
        net = MLP(hidden_layers=arch.hidden_layers, skip=arch.variant == "skip",
                  dropout=DROPOUT_P if arch.variant == "dropout" else 0.0, **common)
    return net.to(device)


def build_batched(arch: Architecture, *, seeds: Sequence[int], input_dim: int = 1, output_dim: int = 1,
                  dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> BatchedMLP:
    """``len(seeds)`` trials of an ``"mlp"`` or ``"skip"`` row as one :class:`BatchedMLP`.

    Trial ``k`` starts from exactly the weights of ``build(arch, seed=seeds[k])``.

    Raises
    ------
    ValueError
        For the ``"conv"`` and ``"dropout"`` variants, an empty ``seeds``, or as :func:`build`.
    """
    arch = _check_arch(arch)
    if arch.variant not in ("mlp", "skip"):
        raise ValueError(f"`arch.variant` must be 'mlp' or 'skip' for a batched model, got {arch.variant!r}")
    seeds = list(seeds)
    if not seeds:
        raise ValueError("`seeds` must contain at least one seed")
    nets = [build(arch, input_dim=input_dim, output_dim=output_dim, seed=s, dtype=dtype) for s in seeds]
    return BatchedMLP(nets).to(device)


def n_hidden(arch: Architecture) -> int:
    """Number of readable hidden layers of ``build(arch)``: ``hidden_layers``, or ``hidden_layers + 2`` for conv."""
    arch = _check_arch(arch)
    return arch.hidden_layers + 2 if arch.variant == "conv" else arch.hidden_layers


def default_hidden_layer(arch: Architecture, *, convention: str = "paper") -> int:
    """The hidden layer whose representation the two-point experiments read out (1-based).

    App. B: "The hidden layer H considered for all models is always the layer exactly halfway through
    the network." For an even number ``n`` of hidden layers two layers are equally halfway; the released
    code takes the later one for the 20-layer networks (the 11th) and for the shallow one (the 2nd of 2),
    so ``"paper"`` uses ``n // 2 + 1`` for every fully connected variant. The code and this reading
    disagree only for the dropout network (10 hidden layers): the code reads its 3rd hidden layer,
    ``"paper"`` its 6th. **We follow the paper by default**, since its stated method is the primary
    target and nothing in it suggests that the dropout network was read elsewhere; ``convention="code"``
    gives the released code's choice, which made the published dropout curves. For the CNN both read
    the output of convolution ``hidden_layers // 2`` (the 5th of Table 1's 10), which is hidden layer
    ``hidden_layers // 2 + 1`` in :class:`ConvNet` numbering.

    Parameters
    ----------
    arch : profiles.Architecture
    convention : {"paper", "code"}, keyword-only

    Returns
    -------
    int
        A hidden layer in ``[1, n_hidden(arch)]``.

    Raises
    ------
    ValueError
        Unknown ``convention`` or variant.

    Examples
    --------
    >>> from repalign.profiles import TABLE1
    >>> [default_hidden_layer(TABLE1[k]) for k in ("default", "shallow", "convolution", "dropout")]
    [11, 2, 6, 6]
    >>> default_hidden_layer(TABLE1["dropout"], convention="code")
    3
    """
    arch = _check_arch(arch)
    if convention not in CONVENTIONS:
        raise ValueError(f"`convention` must be one of {', '.join(CONVENTIONS)}; got {convention!r}")
    n = arch.hidden_layers
    if arch.variant == "conv":
        return 1 + max(n // 2, 1)
    if arch.variant == "dropout" and convention == "code":
        return min(3, n)
    return n // 2 + 1
