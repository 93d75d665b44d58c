"""The networks of the two-point experiments (paper App. B.1, Table 1): the variant registry, the model
interface and the hidden-layer read-out. The network classes live in :mod:`repalign.networks`.

Every model takes ``x`` of shape (batch, input_dim) and has ``forward(x, *, hidden=None)`` returning
``(output, h)``: ``output`` of shape (batch, output_dim) and ``h`` the post-activation output of hidden
layer ``hidden`` (1-based, shape (batch, features)), a list of all of them for ``hidden="all"``, or
``None``. :class:`BatchedMLP` and :class:`BatchedConvNet` do the same for many independent trials at once,
with a leading trial axis.

Variants (``Architecture.variant``), registered in :data:`VARIANTS` (adding one is one entry there):

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
    convolution (what we know of the released code does not say; this is our reading, see
    book/reproduction_notes.md). Hidden layer 1 is the first linear layer's
    output and hidden layer ``k + 1`` the ``k``-th convolution's output, flattened channel-major, so
    :attr:`ConvNet.n_hidden` is ``hidden_layers + 2``; :attr:`ConvNet.layer_names` names them.

All weights are Xavier-normal with the row's gain, all biases zero (App. B.1). Initial weights are drawn
in float64 from ``torch.Generator().manual_seed(seed)`` layer by layer in forward order and then cast, so a
model's initial weights depend only on the seed, not on the dtype or the device.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from .activations import ACTIVATIONS
from .networks import CONV_CHANNELS, CONV_KERNEL, DROPOUT_P, MLP, BatchedConvNet, BatchedMLP, ConvNet, xavier_normal_
from .profiles import Architecture

__all__ = [
    "ACTIVATIONS",
    "VARIANTS",
    "Variant",
    "Network",
    "BatchedNetwork",
    "CONVENTIONS",
    "MLP",
    "ConvNet",
    "BatchedMLP",
    "BatchedConvNet",
    "build",
    "build_batched",
    "n_hidden",
    "default_hidden_layer",
    "check_convention",
    "xavier_normal_",
    "DROPOUT_P",
    "CONV_CHANNELS",
    "CONV_KERNEL",
]

CONVENTIONS = ("paper", "code")


@runtime_checkable
class Network(Protocol):
    """What training and the experiments need from a network (:class:`MLP` and :class:`ConvNet` have it).

    ``forward(x, hidden=k)`` returns ``(output, h)``: output (batch, output_dim) and the post-activation
    output of hidden layer ``k`` (1-based, (batch, features)), a list of every hidden layer for
    ``hidden="all"``, or ``None`` for ``hidden=None``. Torch's ``nn.Module`` supplies the rest
    (``parameters``, ``state_dict``, ``load_state_dict``, ``train``, ``eval``).
    """

    activation: str

    @property
    def n_hidden(self) -> int:
        """Number of hidden layers that ``forward(hidden=...)`` can read."""

    @property
    def layer_names(self) -> tuple[str, ...]:
        """A name for each readable hidden layer, in order."""

    def forward(self, x: torch.Tensor, *, hidden=None) -> tuple[torch.Tensor, torch.Tensor | list | None]:
        """``(output, h)`` as described above."""

    def state_dict(self, *args, **kwargs) -> Mapping[str, torch.Tensor]:
        """The parameters by name (``nn.Module.state_dict``)."""


@runtime_checkable
class BatchedNetwork(Network, Protocol):
    """A :class:`Network` of ``trials`` independent networks with a leading trial axis (:class:`BatchedMLP`,
    :class:`BatchedConvNet`)."""

    @property
    def trials(self) -> int:
        """Number of trials evaluated together."""

    def trial(self, k: int) -> Network:
        """Trial ``k`` as a stand-alone network (a copy)."""


def _halfway(n: int, convention: str) -> int:
    return n // 2 + 1


def _dropout_layer(n: int, convention: str) -> int:
    return min(3, n) if convention == "code" else n // 2 + 1


def _conv_layer(n: int, convention: str) -> int:
    return 1 + max(n // 2, 1)


def _build_mlp(arch: Architecture, common: dict, *, skip: bool = False, dropout: float = 0.0) -> nn.Module:
    return MLP(hidden_layers=arch.hidden_layers, skip=skip, dropout=dropout, **common)


def _build_conv(arch: Architecture, common: dict) -> nn.Module:
    return ConvNet(conv_hidden_layers=arch.hidden_layers, **common)


@dataclass(frozen=True)
class Variant:
    """One network variant of :data:`VARIANTS`.

    Attributes
    ----------
    name : str
        The value of ``Architecture.variant``.
    make : callable
        ``make(arch, common)`` builds the network; ``common`` holds ``input_dim``, ``output_dim``,
        ``width``, ``activation``, ``gain``, ``seed`` and ``dtype``.
    batch : callable or None
        ``batch(networks)`` stacks trials built by ``make`` into one batched model (:class:`BatchedMLP`,
        :class:`BatchedConvNet`), which :mod:`repalign.fastpath` trains; ``None``: trials train one at a time.
    batchable : bool
        The autograd reference loop trains the batched model too (``"mlp"``, ``"skip"``); otherwise
        ``engine="reference"`` trains the trials one at a time (the dropout masks of the batched model
        are drawn by the fast path only).
    kernel : bool
        The compiled CPU kernel of :mod:`repalign.fastpath` covers the variant.
    fast_devices : tuple of str
        Device types on which the fast path reproduces the reference (dropout masks: the CPU only).
    cpu_trials : int or None
        Most trials the fast path trains as one model on the CPU (``None``: all); see
        :func:`repalign.fastpath.trials_together`.
    extra_hidden : int
        Readable hidden layers beyond ``arch.hidden_layers`` (the conv net's first linear layer and
        its last convolution).
    default_layer : callable
        ``default_layer(hidden_layers, convention) -> int``: the layer read out by default (see
        :func:`default_hidden_layer`).
    """

    name: str
    make: Callable[[Architecture, dict], nn.Module]
    batch: Callable[[Sequence[nn.Module]], nn.Module] | None = None
    batchable: bool = False
    kernel: bool = False
    fast_devices: tuple[str, ...] = ("cpu", "cuda")
    cpu_trials: int | None = None
    extra_hidden: int = 0
    default_layer: Callable[[int, str], int] = _halfway


def _skip_variant(arch, common):
    return _build_mlp(arch, common, skip=True)


def _dropout_variant(arch, common):
    return _build_mlp(arch, common, dropout=DROPOUT_P)


#: ``Architecture.variant -> Variant``; the one registry of network variants.
VARIANTS: Mapping[str, Variant] = MappingProxyType({v.name: v for v in (
    Variant("mlp", _build_mlp, batch=BatchedMLP, batchable=True, kernel=True),
    Variant("skip", _skip_variant, batch=BatchedMLP, batchable=True, kernel=True),
    Variant("conv", _build_conv, batch=BatchedConvNet, cpu_trials=1, extra_hidden=2, default_layer=_conv_layer),
    Variant("dropout", _dropout_variant, batch=BatchedMLP, fast_devices=("cpu",), cpu_trials=1,
            default_layer=_dropout_layer),
)})


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
    return VARIANTS[arch.variant].make(arch, common).to(device)


def build_batched(arch: Architecture, *, seeds: Sequence[int], input_dim: int = 1, output_dim: int = 1,
                  dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> nn.Module:
    """``len(seeds)`` trials of a row as one batched model (``VARIANTS[arch.variant].batch``): a
    :class:`BatchedMLP` for ``"mlp"``, ``"skip"`` and ``"dropout"`` (which evaluates in eval mode only;
    :mod:`repalign.fastpath` draws its masks), a :class:`BatchedConvNet` for ``"conv"``.

    Trial ``k`` starts from exactly the weights of ``build(arch, seed=seeds[k])``.

    Raises
    ------
    ValueError
        For a variant without a batched model, an empty ``seeds``, or as :func:`build`.
    """
    arch = _check_arch(arch)
    batch = VARIANTS[arch.variant].batch
    if batch is None:
        names = ", ".join(repr(k) for k, v in VARIANTS.items() if v.batch is not None)
        raise ValueError(f"`arch.variant` must be one of {names} for a batched model, got {arch.variant!r}")
    seeds = list(seeds)
    if not seeds:
        raise ValueError("`seeds` must contain at least one seed")
    nets = [build(arch, input_dim=input_dim, output_dim=output_dim, seed=s, dtype=dtype) for s in seeds]
    return batch(nets).to(device)


def n_hidden(arch: Architecture) -> int:
    """Number of readable hidden layers of ``build(arch)``: ``hidden_layers``, or ``hidden_layers + 2`` for conv."""
    arch = _check_arch(arch)
    return arch.hidden_layers + VARIANTS[arch.variant].extra_hidden


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
    return VARIANTS[arch.variant].default_layer(arch.hidden_layers, check_convention(convention))


def check_convention(convention) -> str:
    """``convention`` if it is one of :data:`CONVENTIONS`, else a ValueError naming it."""
    if not isinstance(convention, str) or convention not in CONVENTIONS:
        raise ValueError(f"`convention` must be one of {', '.join(CONVENTIONS)}; got {convention!r}")
    return convention
