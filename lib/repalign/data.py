"""Datasets of the experiments: the two-point dataset of the paper's App. B.1 and XOR (Sec. 4.4).

The released code, which made the published figures, places the points at inputs -1 and 0 and targets
0.6 and 0.6 + sqrt(0.5), so ``||x2-x1||^2 = 1`` and ``||y2-y1||^2 = 0.5``; the App. B.1 text says
``dx = 0.5, dy = 1``. The defaults follow the code (:data:`repalign.profiles.TWO_POINT`).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np

from . import _validate as v
from .profiles import TWO_POINT

__all__ = ["TwoPointData", "two_point", "xor", "XOR_LABELS"]

#: The four XOR inputs, in the order of :func:`xor`.
XOR_LABELS = ("(0,0)", "(0,1)", "(1,0)", "(1,1)")


@dataclass(frozen=True)
class TwoPointData:
    """Two data points and their squared distances.

    Attributes
    ----------
    x : numpy.ndarray, shape (2, input_dim)
        Inputs ``x1`` (row 0) and ``x2`` (row 1); read-only.
    y : numpy.ndarray, shape (2, output_dim)
        Targets ``y1`` and ``y2``; read-only.
    dx_sq : float
        ``||x2 - x1||^2``.
    dy_target_sq : float
        ``||y2 - y1||^2``.
    """

    x: np.ndarray
    y: np.ndarray
    dx_sq: float
    dy_target_sq: float


def _dim(name: str, value) -> int:
    try:
        dim = operator.index(value)
    except TypeError:
        raise ValueError(f"`{name}` must be an integer >= 1, got {value!r}") from None
    if dim < 1:
        raise ValueError(f"`{name}` must be an integer >= 1, got {value!r}")
    return dim


def two_point(
    dx_sq: float = TWO_POINT["dx_sq"],
    dy_target_sq: float = TWO_POINT["dy_target_sq"],
    *,
    x1: float = TWO_POINT["x1"],
    y1: float = TWO_POINT["y1"],
    input_dim: int = 1,
    output_dim: int = 1,
) -> TwoPointData:
    """The two-point dataset at squared input distance ``dx_sq`` and target distance ``dy_target_sq``.

    Every coordinate of ``x1`` equals ``x1`` and ``x2 = x1 + sqrt(dx_sq / input_dim)`` in every
    coordinate, so ``||x2 - x1||^2 = dx_sq`` for any ``input_dim``; the targets are built the same way.
    With the defaults this is the dataset of the released code: inputs -1, 0 and targets 0.6,
    0.6 + sqrt(0.5).

    Parameters
    ----------
    dx_sq : float, optional
        Squared input distance ``||x2 - x1||^2`` (> 0). Default 1.0.
    dy_target_sq : float, optional
        Squared target distance ``||y2 - y1||^2`` (>= 0; 0 gives identical targets). Default 0.5.
    x1, y1 : float, keyword-only
        Every coordinate of the first input and of the first target. Defaults -1.0 and 0.6.
    input_dim, output_dim : int, keyword-only
        Dimensions of the inputs and targets (>= 1). Default 1.

    Returns
    -------
    TwoPointData
        ``x`` of shape (2, input_dim), ``y`` of shape (2, output_dim) and the two distances.

    Raises
    ------
    ValueError
        If ``dx_sq <= 0``, ``dy_target_sq < 0``, ``x1`` or ``y1`` is not finite, or a dimension is < 1.

    References
    ----------
    van Rossem & Saxe (2024), App. B.1 ("Dataset"); Fig. 5 varies ``dx_sq`` and ``dy_target_sq``.

    Examples
    --------
    >>> d = two_point()
    >>> d.x.ravel().tolist(), round(float(d.y[1, 0] - d.y[0, 0]) ** 2, 12)
    ([-1.0, 0.0], 0.5)
    """
    dx_sq = float(v.positive("dx_sq", dx_sq))
    dy_target_sq = float(v.non_negative("dy_target_sq", dy_target_sq))
    x1 = float(v.finite_array("x1", x1, ndim=0))
    y1 = float(v.finite_array("y1", y1, ndim=0))
    input_dim, output_dim = _dim("input_dim", input_dim), _dim("output_dim", output_dim)
    x = np.full((2, input_dim), x1)
    x[1] += np.sqrt(dx_sq / input_dim)
    y = np.full((2, output_dim), y1)
    y[1] += np.sqrt(dy_target_sq / output_dim)
    x.flags.writeable = False
    y.flags.writeable = False
    return TwoPointData(x=x, y=y, dx_sq=dx_sq, dy_target_sq=dy_target_sq)


def xor() -> tuple[np.ndarray, np.ndarray]:
    """The XOR task of Sec. 4.4: inputs (0,0), (0,1), (1,0), (1,1) unnormalised, targets 0, 1, 1, 0.

    Returns read-only ``x`` of shape (4, 2) and ``y`` of shape (4, 1), as the released code.

    >>> x, y = xor()
    >>> y.ravel().tolist()
    [0.0, 1.0, 1.0, 0.0]
    """
    x = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = np.array([[0.0], [1.0], [1.0], [0.0]])
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y
