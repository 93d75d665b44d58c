"""The fixed points of eq. (7) and the exact solution for identical targets (eqs. 10-11, 26-40, App. A.2-A.4).

Notation: see :mod:`repalign.theory`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import _validate as v

__all__ = [
    "FinalDistance",
    "final_distance",
    "reduced_jacobian_at_fixed_point",
    "origin_eigen",
    "identical_outputs_solution",
]


class FinalDistance(NamedTuple):
    """Result of :func:`final_distance`: the stable fixed point of eq. (7) and its two constants."""

    distance: np.ndarray
    """``||dh(inf)||^2``, eq. (10)."""
    a_high: np.ndarray
    """``A_high``, eq. (11): set by the input structure and the random initialisation."""
    a_low: np.ndarray
    """``A_low``, eq. (11): set by the input and output structure of the data."""


def final_distance(dh_sq0, dy_sq0, *, rate_h, rate_y, dx_sq, dy_target_sq) -> FinalDistance:
    """The final representational distance ``||dh(inf)||^2``, eqs. (10)-(11) / (36).

    ``||dh(inf)||^2 = A_high/2 + sqrt(A_high^2/4 + A_low^2)`` with
    ``A_high = dh_sq0 - (tau_y/tau_h) dx_sq dy_sq0 / dh_sq0`` and
    ``A_low = sqrt(tau_y/tau_h) ||x2 - x1|| ||y2 - y1||``.

    All arguments broadcast against each other (a grid of distances or a batch of trials at once).
    The result depends on the rates only through ``tau_y/tau_h = rate_h/rate_y``.

    Parameters
    ----------
    dh_sq0, dy_sq0 : array_like
        Initial ``||dh(0)||^2`` (> 0) and ``||dy(0)||^2`` (>= 0).
    rate_h, rate_y : array_like, keyword-only
        ``1/tau_h`` and ``1/tau_y`` (> 0).
    dx_sq, dy_target_sq : array_like, keyword-only
        ``||x2 - x1||^2`` (> 0) and ``||y2 - y1||^2`` (>= 0).

    Returns
    -------
    FinalDistance
        ``(distance, a_high, a_low)``, a named tuple, distance first.

    Raises
    ------
    ValueError
        If a squared distance is negative, ``dh_sq0`` or ``dx_sq`` is not positive, a rate is not
        positive, or any value is not finite.

    Examples
    --------
    >>> r = final_distance(1e-4, 0.0, rate_h=1.0, rate_y=1.0, dx_sq=1.0, dy_target_sq=0.5)  # A_low wins
    >>> round(float(r.distance), 4), round(float(r.a_low), 4)
    (0.7072, 0.7071)
    """
    dh_sq0 = v.positive("dh_sq0", dh_sq0)
    dy_sq0 = v.non_negative("dy_sq0", dy_sq0)
    dx_sq = v.positive("dx_sq", dx_sq)
    dy_target_sq = v.non_negative("dy_target_sq", dy_target_sq)
    tau_y_over_tau_h = v.positive("rate_h", rate_h) / v.positive("rate_y", rate_y)
    a_high = dh_sq0 - tau_y_over_tau_h * dx_sq * dy_sq0 / dh_sq0
    a_low = np.sqrt(tau_y_over_tau_h * dx_sq * dy_target_sq)
    out = FinalDistance(_stable_root(a_high, a_low), a_high, a_low)
    if not all(np.isfinite(x).all() for x in out):
        raise ValueError("eq. (10) overflows float64 for these `dh_sq0`, `dy_sq0`, rates and distances; "
                         "rescale them (only their ratios matter up to the time scale)")
    return out


def _stable_root(a_high, a_low):
    """``A_high/2 + sqrt(A_high^2/4 + A_low^2)`` without cancellation when ``A_high << 0``."""
    root = np.sqrt(0.25 * a_high**2 + a_low**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        alt = np.where(root - 0.5 * a_high > 0, a_low**2 / (root - 0.5 * a_high), 0.0)
    return np.where(a_high >= 0, 0.5 * a_high + root, alt)


def _fixed_point_constants(a_high, a_low, rate_h, rate_y, dx_sq):
    """Validated floats, and ``s = sqrt(A_high^2 + 4 A_low^2)`` of eqs. (29) and (34)."""
    a_high = float(v.finite_array("a_high", a_high))
    a_low = float(v.non_negative("a_low", a_low))
    rate_h = float(v.positive("rate_h", rate_h))
    rate_y = float(v.positive("rate_y", rate_y))
    dx_sq = float(v.positive("dx_sq", dx_sq))
    return a_high, a_low, rate_h, rate_y, dx_sq, np.sqrt(a_high**2 + 4.0 * a_low**2)


def reduced_jacobian_at_fixed_point(a_high, a_low, *, rate_h: float, rate_y: float, dx_sq: float) -> np.ndarray:
    """The Jacobian of the 2-D system (eq. 25) at the stable fixed point, as printed in eq. (29).

    Its trace (eq. 30) is negative and its determinant (eq. 31) positive, so the fixed point is stable.
    """
    a_high, a_low, rate_h, rate_y, dx_sq, s = _fixed_point_constants(a_high, a_low, rate_h, rate_y, dx_sq)
    lower_left = 0.25 * rate_y**2 / rate_h / dx_sq * (2.0 * a_low**2 + 0.5 * (a_high + s) ** 2)
    return np.array([[0.0, -rate_h * dx_sq], [lower_left, -rate_y * (0.5 * a_high + s)]])


def origin_eigen(a_high, a_low, *, rate_h: float, rate_y: float, dx_sq: float):
    """Eigenvalues and eigen-directions of the fixed point at the origin, eqs. (34)-(35).

    Returns
    -------
    eigenvalues : numpy.ndarray, shape (2,)
        ``(lambda_+, lambda_-) = rate_y (A_high +- sqrt(A_high^2 + 4 A_low^2)) / 2``: one positive,
        one negative when ``A_low > 0``, so the origin is a saddle.
    slopes : numpy.ndarray, shape (2,)
        The direction of approach ``w / dh_sq`` along each eigenvector,
        ``-(tau_h/tau_y) (A_high +- sqrt(...)) / (2 dx_sq)``.
    """
    a_high, a_low, rate_h, rate_y, dx_sq, s = _fixed_point_constants(a_high, a_low, rate_h, rate_y, dx_sq)
    roots = np.array([a_high + s, a_high - s])
    return 0.5 * rate_y * roots, -(rate_y / rate_h) * roots / (2.0 * dx_sq)


def identical_outputs_solution(t, dh_sq0, dy_sq0, *, rate_h, rate_y, dx_sq) -> np.ndarray:
    """Exact solution of eq. (7) for identical targets (``y1 = y2``), App. A.4, corrected.

    With ``dy_target_sq = 0`` the alignment equals ``dy_sq`` and ``dh_sq`` obeys the logistic
    (Bernoulli) equation (38), ``d/dt dh_sq = (A_high dh_sq - dh_sq^2) / tau_y``, so

    ``dh_sq(t) = A_high / (1 + (A_high/dh_sq0 - 1) exp(-A_high t / tau_y))``

    The paper's eqs. (39)-(40) print ``exp(-A_high t)``; the rate ``1/tau_y`` of eq. (38) belongs in
    the exponent. ``dy_sq`` then follows from eq. (24). The form used here stays exact as
    ``A_high -> 0`` (where ``dh_sq = dh_sq0 / (1 + dh_sq0 t / tau_y)``).

    Parameters
    ----------
    t : array_like, shape (n,)
        Times, measured from the initial state.
    dh_sq0, dy_sq0 : float
        As in :func:`final_distance`.
    rate_h, rate_y, dx_sq : float, keyword-only
        As in :func:`final_distance`.

    Returns
    -------
    numpy.ndarray, shape (n, 3)
        Columns ``dh_sq, dy_sq, w`` (``w == dy_sq``).
    """
    t = v.finite_array("t", t, ndim=1)
    dh_sq0 = float(v.positive("dh_sq0", dh_sq0))
    dy_sq0 = float(v.non_negative("dy_sq0", dy_sq0))
    dx_sq = float(v.positive("dx_sq", dx_sq))
    rate_h = float(v.positive("rate_h", rate_h))
    rate_y = float(v.positive("rate_y", rate_y))
    a_high = float(final_distance(dh_sq0, dy_sq0, rate_h=rate_h, rate_y=rate_y, dx_sq=dx_sq, dy_target_sq=0.0).a_high)
    k = rate_y * a_high
    decay = np.exp(-k * t)
    # (1 - exp(-k t)) / A_high, continuous at A_high = 0 where it equals rate_y t
    growth = rate_y * t if a_high == 0 else -np.expm1(-k * t) / a_high
    dh_sq = dh_sq0 / (decay + dh_sq0 * growth)
    c = (rate_y / rate_h) / dx_sq  # tau_h / (tau_y dx_sq), eq. (24)
    dy_sq = c * dh_sq * (dh_sq - a_high)
    return np.column_stack([dh_sq, dy_sq, dy_sq])


