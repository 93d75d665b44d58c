"""The activation functions of the experiments, in one registry (paper Table 1, App. B.1).

Each :class:`Activation` carries everything a training path needs: the torch function (the models and
the fused fast path), its derivative written out (the fused fast path; ``tests/test_fastpath.py``
compares it with autograd) and the integer the compiled kernel of :mod:`repalign._kernel` switches on.
Adding an activation means adding one entry to :data:`ACTIVATIONS`. With ``code=None`` the fast path
trains it with the fused torch operations; to run it on the compiled CPU kernel too, give it the next
free code and add one branch for that code to ``_kernel._act`` and ``_kernel._dact``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from types import MappingProxyType

import torch
import torch.nn.functional as F

__all__ = ["LEAKY_SLOPE", "Activation", "ACTIVATIONS", "check_activation"]

#: Negative slope of the leaky ReLU: torch's default, which the released code used.
LEAKY_SLOPE = 0.01


@dataclass(frozen=True)
class Activation:
    """One activation function.

    Attributes
    ----------
    name : str
        The name used in :class:`repalign.profiles.Architecture` (``activation=``).
    function : callable
        ``torch.Tensor -> torch.Tensor``, applied element-wise.
    derivative : callable
        ``derivative(z, a)`` at pre-activation ``z`` with ``a = function(z)``; returns ``None`` for a
        derivative of 1 (the caller skips the multiplication).
    code : int or None
        The integer the compiled CPU kernel switches on; ``None`` if the kernel has no branch for it
        (then :func:`repalign.fastpath.select_engine` picks the fused back end).
    backward : callable or None
        ``backward(g, z, a)``: the chain-rule step ``g * derivative(z, a)`` as one torch kernel (torch's
        own backward op, what autograd runs), used by the fused fast path; ``None``: the product is
        formed from ``derivative``. Measured on 5 x 64 x 100 float32 (1 thread): 10 us for the leaky
        ReLU's ``leaky_relu_backward`` against 450 us for ``g * torch.where(...)``.
    """

    name: str
    function: Callable[[torch.Tensor], torch.Tensor]
    derivative: Callable[[torch.Tensor, torch.Tensor], torch.Tensor | None]
    code: int | None = None
    backward: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None

    def chain(self, g: torch.Tensor, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """``g * derivative(z, a)`` (``g`` itself for a derivative of 1), with :attr:`backward` if given."""
        if self.backward is not None:
            return self.backward(g, z, a)
        d = self.derivative(z, a)
        return g if d is None else g * d

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        return self.function(z)


def _identity(a):
    return a


def _d_linear(z, a):
    return None  # derivative 1: the caller skips the multiplication


def _d_relu(z, a):
    return (z > 0).to(z.dtype)


def _d_leaky_relu(z, a):
    return torch.where(z > 0, z.new_ones(()), z.new_full((), LEAKY_SLOPE))  # slope in z's dtype


def _d_elu(z, a):
    return torch.where(z > 0, torch.ones_like(z), torch.exp(z))  # alpha = 1, as F.elu


def _d_tanh(z, a):
    return 1.0 - a * a


def _d_silu(z, a):
    s = torch.sigmoid(z)
    return s * (1.0 + z * (1.0 - s))


def _b_relu(g, z, a):
    return torch.ops.aten.threshold_backward(g, z, 0)


def _b_leaky_relu(g, z, a):
    return torch.ops.aten.leaky_relu_backward(g, z, LEAKY_SLOPE, False)


def _b_tanh(g, z, a):
    return torch.ops.aten.tanh_backward(g, a)


def _b_silu(g, z, a):
    return torch.ops.aten.silu_backward(g, z)


#: ``name -> Activation``; the one registry of activations.
ACTIVATIONS: Mapping[str, Activation] = MappingProxyType({a.name: a for a in (
    Activation("linear", _identity, _d_linear, 0),
    Activation("relu", F.relu, _d_relu, 1, _b_relu),
    Activation("leaky_relu", partial(F.leaky_relu, negative_slope=LEAKY_SLOPE), _d_leaky_relu, 2, _b_leaky_relu),
    Activation("elu", F.elu, _d_elu, 3),
    Activation("tanh", torch.tanh, _d_tanh, 4, _b_tanh),
    Activation("silu", F.silu, _d_silu, 5, _b_silu),  # the paper's "swish"
)})


def check_activation(name) -> str:
    """``name`` if it is a key of :data:`ACTIVATIONS`, else a ValueError naming ``activation``."""
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise ValueError(f"`activation` must be one of {', '.join(ACTIVATIONS)}; got {name!r}")
    return name
