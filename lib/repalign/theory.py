"""The effective theory of the two-point interaction (van Rossem & Saxe 2024, Sec. 2 and App. A).

The state is ``z = (dh_sq, dy_sq, w)``:

========  =====================================================  ==================
code      paper                                                  meaning
========  =====================================================  ==================
dh_sq     ||dh||^2 = ||D_h (x2 - x1)||^2                         representational distance
dy_sq     ||dy||^2 = ||D_y D_h (x2 - x1)||^2                     predicted output difference
w         ||dy||^2 - dy^T (y2 - y1)                              output alignment
dx_sq     ||x2 - x1||^2                                          input distance
dy_target_sq  ||y2 - y1||^2                                      target distance
rate_h, rate_y, rate_ybar   1/tau_h, 1/tau_y, 1/tau_ybar         effective learning rates
========  =====================================================  ==================

Everything here is plain numpy/scipy and depends on nothing else in the package. Equation numbers
refer to the paper; where the paper has a misprint the function implements the corrected form and
says so (see ``book/reproduction_notes.md``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.integrate import solve_ivp
from scipy.special import ndtr

from . import _validate as v

__all__ = [
    "FinalDistance",
    "initial_state",
    "rhs",
    "jacobian",
    "solve",
    "loss",
    "conserved_quantity",
    "reduced_rhs",
    "final_distance",
    "reduced_jacobian_at_fixed_point",
    "origin_eigen",
    "identical_outputs_solution",
    "final_distance_cdf",
    "final_distance_pdf",
    "sample_final_distance",
]


def initial_state(dh_sq0, dy_sq0, cos_angle, dy_target_sq) -> np.ndarray:
    """A realisable state ``(dh_sq, dy_sq, w)`` from the two distances and the output angle.

    ``w = dy_sq - dy^T (y2 - y1)`` with ``dy^T (y2 - y1) = cos_angle ||dy|| ||y2 - y1||``: ``cos_angle = 1``
    means the predicted outputs are ordered like the targets, ``-1`` against them.

    >>> initial_state(1.0, 0.25, -1.0, 1.0)
    array([1.  , 0.25, 0.75])
    """
    dh_sq0 = float(v.positive("dh_sq0", dh_sq0))
    dy_sq0 = float(v.non_negative("dy_sq0", dy_sq0))
    cos_angle = float(v.finite_array("cos_angle", cos_angle))
    if not -1.0 <= cos_angle <= 1.0:
        raise ValueError(f"`cos_angle` must lie in [-1, 1], got {cos_angle}")
    dy_target_sq = float(v.non_negative("dy_target_sq", dy_target_sq))
    return np.array([dh_sq0, dy_sq0, dy_sq0 - cos_angle * np.sqrt(dy_sq0 * dy_target_sq)])


def _state(name: str, z) -> np.ndarray:
    z = v.finite_array(name, z, shape=(3,))
    if z[0] <= 0:
        raise ValueError(f"`{name}[0]` is ||dh||^2 and must be > 0 (the 3-D system divides by it), got {z[0]!r}")
    if z[1] < 0:
        raise ValueError(f"`{name}[1]` is ||dy||^2 and must be >= 0, got {z[1]!r}")
    return z


def _params(rate_h, rate_y, dx_sq, dy_target_sq) -> tuple[float, float, float, float]:
    return (
        float(v.positive("rate_h", rate_h)),
        float(v.positive("rate_y", rate_y)),
        float(v.positive("dx_sq", dx_sq)),
        float(v.non_negative("dy_target_sq", dy_target_sq)),
    )


def _rhs(t, z, rate_h, rate_y, dx_sq, dy_target_sq):
    dh_sq, dy_sq, w = z
    ratio = dy_sq / dh_sq
    return np.array(
        [
            -rate_h * dx_sq * w,
            -w * (rate_y * dh_sq + rate_h * dx_sq * ratio),
            -0.5 * rate_y * (3.0 * w - dy_sq + dy_target_sq) * dh_sq - 0.5 * rate_h * dx_sq * (dy_sq + w) * w / dh_sq,
        ]
    )


def _jacobian(t, z, rate_h, rate_y, dx_sq, dy_target_sq):
    a, d, w = z
    X = rate_h * dx_sq
    return np.array(
        [
            [0.0, 0.0, -X],
            [-w * (rate_y - X * d / a**2), -w * X / a, -(rate_y * a + X * d / a)],
            [
                -0.5 * rate_y * (3.0 * w - d + dy_target_sq) + 0.5 * X * (d + w) * w / a**2,
                0.5 * rate_y * a - 0.5 * X * w / a,
                -1.5 * rate_y * a - 0.5 * X * (d + 2.0 * w) / a,
            ],
        ]
    )


def rhs(t: float, z, rate_h: float, rate_y: float, dx_sq: float, dy_target_sq: float) -> np.ndarray:
    """Right-hand side of the 3-D system, the paper's eq. (7) / (21).

    Parameters
    ----------
    t : float
        Time (unused: the system is autonomous; present for ``solve_ivp``).
    z : array_like, shape (3,)
        State ``(dh_sq, dy_sq, w)`` with ``dh_sq > 0`` and ``dy_sq >= 0``.
    rate_h, rate_y : float
        Effective learning rates ``1/tau_h`` and ``1/tau_y`` (> 0).
    dx_sq : float
        Input distance ``||x2 - x1||^2`` (> 0).
    dy_target_sq : float
        Target distance ``||y2 - y1||^2`` (>= 0).

    Returns
    -------
    numpy.ndarray, shape (3,)
        ``d/dt (dh_sq, dy_sq, w)``.

    Raises
    ------
    ValueError
        If ``z`` has the wrong shape, is not finite, or ``dh_sq <= 0`` or ``dy_sq < 0``; if a rate is
        not positive; if a squared distance is negative.

    References
    ----------
    van Rossem & Saxe (2024), eq. (7), derived in App. A.1, eqs. (17)-(21).

    Examples
    --------
    >>> rhs(0.0, [1.0, 0.25, 0.5], 1.0, 1.0, 1.0, 1.0)
    array([-0.5   , -0.625 , -1.3125])
    """
    z = _state("z", z)
    return _rhs(t, z, *_params(rate_h, rate_y, dx_sq, dy_target_sq))


def jacobian(z, rate_h: float, rate_y: float, dx_sq: float, dy_target_sq: float) -> np.ndarray:
    """Jacobian ``d rhs / d z`` of eq. (7) at the state ``z``, shape (3, 3).

    The 3-D system has a conserved quantity (see :func:`conserved_quantity`), so at a fixed point one
    eigenvalue is zero (motion along the line of fixed points) and the other two are those of the
    reduced 2-D Jacobian, the paper's eq. (29).
    """
    z = _state("z", z)
    return _jacobian(0.0, z, *_params(rate_h, rate_y, dx_sq, dy_target_sq))


def solve(
    z0,
    rate_h: float,
    rate_y: float,
    dx_sq: float,
    dy_target_sq: float,
    t,
    *,
    rtol: float = 1e-10,
    atol: float | None = None,
    method: str = "LSODA",
) -> np.ndarray:
    """Integrate eq. (7) from ``z0`` at time ``t[0]`` and return the state at every time in ``t``.

    Parameters
    ----------
    z0 : array_like, shape (3,)
        Initial state ``(dh_sq, dy_sq, w)`` at time ``t[0]``.
    rate_h, rate_y, dx_sq, dy_target_sq : float
        As in :func:`rhs`.
    t : array_like, shape (n,)
        Increasing output times; theory time equals the training epoch count.
    rtol, atol : float, keyword-only
        Solver tolerances (``scipy.integrate.solve_ivp``). The default ``atol`` scales with the
        start, ``1e-4 * rtol * min(1, smallest non-zero signed coordinate)``, so that a trajectory
        from very small weights (``dh_sq0`` of 1e-20, say) keeps its relative accuracy.
    method : str, keyword-only
        ``solve_ivp`` method; the default LSODA switches to a stiff method where the trajectory
        needs it (long plateaus followed by fast escapes). The integration runs in the signed
        coordinates described in the comment below the function, which are free of the division by
        ``dh_sq`` in eq. (7) and pass smoothly where the two representations cross.

    Returns
    -------
    numpy.ndarray, shape (n, 3)
        Columns ``dh_sq, dy_sq, w``.

    Raises
    ------
    ValueError
        On bad arguments (see :func:`rhs`; ``t`` must be 1-D, finite and increasing), or if ``z0``
        cannot come from any output vectors (``|dy_sq - w| > sqrt(dy_sq dy_target_sq)``).
    RuntimeError
        If the integrator fails.

    Examples
    --------
    >>> z = solve([1e-3, 1e-6, 1e-6], 1.0, 1.0, 1.0, 0.5, [0.0, 1e4])
    >>> z.shape
    (2, 3)
    """
    z0 = _state("z0", z0)
    params = _params(rate_h, rate_y, dx_sq, dy_target_sq)
    t = v.times("t", t)
    if t[0] == t[-1]:
        return np.tile(z0, (t.size, 1))
    y0 = _to_signed(z0, params[3])
    if atol is None:
        nonzero = np.abs(y0[y0 != 0])
        atol = 1e-4 * rtol * min(1.0, nonzero.min() if nonzero.size else 1.0)
    jac = _signed_jacobian if method in ("LSODA", "BDF", "Radau") else None
    sol = solve_ivp(
        _signed_rhs, (t[0], t[-1]), y0, t_eval=t, args=params, method=method, rtol=rtol, atol=atol, jac=jac
    )
    if not sol.success or not np.all(np.isfinite(sol.y)):
        raise RuntimeError(f"integration of eq. (7) failed: {sol.message}")
    z = _from_signed(sol.y.T, params[3])
    z[0] = z0  # exactly the given start (the round trip through the signed coordinates costs a few ulp)
    return z


# How `solve` integrates eq. (7). Under the no-rotation condition (eq. 19) dh = alpha u with a fixed
# unit vector u and a signed length alpha, and only m = D_y u matters, with dy = alpha m. Writing
# m = m_par e + m_perp (e = (y2 - y1)/||y2 - y1||), eq. (6) becomes a polynomial system,
#   d alpha/dt  = -(rate_h dx_sq / 2) (alpha (m_par^2 + m_perp^2) - m_par ||y2 - y1||)
#   d m_par/dt  = -(rate_y / 2) alpha (alpha m_par - ||y2 - y1||)
#   d m_perp/dt = -(rate_y / 2) alpha^2 m_perp
# and (dh_sq, dy_sq, w) = (alpha^2, alpha^2 |m|^2, alpha^2 |m|^2 - alpha m_par ||y2 - y1||) obey
# eq. (7) exactly. Eq. (7) itself divides by dh_sq: it is singular where the two representations pass
# through each other (alpha changes sign, dh_sq touches 0 and w/dh_sq diverges), which happens whenever
# A_high < 0 and the initial outputs are ordered against the targets. The solution (dh_sq, dy_sq, w)
# stays smooth there, and so does this system, so the solver passes such points where a direct
# integration of eq. (7) loses accuracy or returns NaN.

_REALISABLE_RTOL = 1e-6


def _to_signed(z0: np.ndarray, dy_target_sq: float) -> np.ndarray:
    a, d, w = z0
    b = np.sqrt(dy_target_sq)
    alpha = np.sqrt(a)
    # dy^T (y2 - y1) = d - w must satisfy Cauchy-Schwarz |d - w| <= sqrt(d) ||y2 - y1||
    slack = d * dy_target_sq - (d - w) ** 2
    if slack < -_REALISABLE_RTOL * max(d * dy_target_sq, (d - w) ** 2, np.finfo(float).tiny):
        raise ValueError(
            "`z0` is not realisable: w = ||dy||^2 - dy^T (y2 - y1) needs |dy_sq - w| <= sqrt(dy_sq * dy_target_sq), "
            f"got |{d:.6g} - {w:.6g}| > sqrt({d:.6g} * {dy_target_sq:.6g})"
        )
    m_par = (d - w) / (alpha * b) if b > 0 else 0.0
    m_perp = np.sqrt(max(d / a - m_par**2, 0.0))
    return np.array([alpha, m_par, m_perp])


def _from_signed(y: np.ndarray, dy_target_sq: float) -> np.ndarray:
    alpha, m_par, m_perp = y.T
    dh_sq = alpha**2
    dy_sq = dh_sq * (m_par**2 + m_perp**2)
    return np.column_stack([dh_sq, dy_sq, dy_sq - alpha * m_par * np.sqrt(dy_target_sq)])


def _signed_rhs(t, y, rate_h, rate_y, dx_sq, dy_target_sq):
    alpha, m_par, m_perp = y
    k, b = 0.5 * rate_h * dx_sq, np.sqrt(dy_target_sq)
    return np.array(
        [
            -k * (alpha * (m_par**2 + m_perp**2) - m_par * b),
            -0.5 * rate_y * alpha * (alpha * m_par - b),
            -0.5 * rate_y * alpha**2 * m_perp,
        ]
    )


def _signed_jacobian(t, y, rate_h, rate_y, dx_sq, dy_target_sq):
    alpha, m_par, m_perp = y
    k, b, r = 0.5 * rate_h * dx_sq, np.sqrt(dy_target_sq), 0.5 * rate_y
    return np.array(
        [
            [-k * (m_par**2 + m_perp**2), -k * (2.0 * alpha * m_par - b), -2.0 * k * alpha * m_perp],
            [-r * (2.0 * alpha * m_par - b), -r * alpha**2, 0.0],
            [-2.0 * r * alpha * m_perp, 0.0, -r * alpha**2],
        ]
    )


def loss(t, z, rate_ybar: float, dy_target_sq: float, offset_sq: float) -> np.ndarray:
    """Training loss of the linearised model in terms of the 3-D state, eq. (9) / (22), corrected.

    ``L = 1/2 offset_sq exp(-2 rate_ybar t) + 1/4 (w + 1/2 (dy_target_sq - dy_sq))``

    The paper's eqs. (9) and (22) print ``exp(-t / tau_y)`` in the first term; the mean output
    ``ybar`` decays with its own rate (eq. 18), so the exponent carries ``tau_ybar``. The squared norm
    of ``(ybar(0) - m) exp(-t/tau_ybar)`` gives the factor 2 in the exponent here.

    Parameters
    ----------
    t : array_like, shape (n,)
        Times (``ybar`` starts at ``t = 0``).
    z : array_like, shape (n, 3) or (3,)
        States ``(dh_sq, dy_sq, w)`` at those times.
    rate_ybar : float
        ``1/tau_ybar`` (> 0).
    dy_target_sq : float
        ``||y2 - y1||^2`` (>= 0).
    offset_sq : float
        ``||ybar(0) - (y1 + y2)/2||^2`` (>= 0).

    Returns
    -------
    numpy.ndarray, shape (n,) (or a scalar array for a single state)
    """
    t = v.finite_array("t", t)
    z = v.finite_array("z", z)
    if z.shape[-1] != 3 or z.ndim > 2:
        raise ValueError(f"`z` must have shape (n, 3) or (3,), got shape {z.shape}")
    if z.ndim == 2 and t.shape != (z.shape[0],):
        raise ValueError(f"`t` must have shape ({z.shape[0]},) to match `z`, got shape {t.shape}")
    rate_ybar = float(v.positive("rate_ybar", rate_ybar))
    dy_target_sq = float(v.non_negative("dy_target_sq", dy_target_sq))
    offset_sq = float(v.non_negative("offset_sq", offset_sq))
    dy_sq, w = z[..., 1], z[..., 2]
    return 0.5 * offset_sq * np.exp(-2.0 * rate_ybar * t) + 0.25 * (w + 0.5 * (dy_target_sq - dy_sq))


def conserved_quantity(z, rate_h: float, rate_y: float, dx_sq: float) -> np.ndarray:
    """The quantity conserved by eq. (7): ``q = dy_sq/dh_sq - (tau_h/tau_y) dh_sq/dx_sq``.

    Eq. (23) says ``d/dt (dy_sq/dh_sq) = (tau_h/tau_y) / dx_sq * d/dt dh_sq``; integrating gives
    eq. (24), ``dy_sq = (tau_h/tau_y) dh_sq^2 / dx_sq + q dh_sq`` with ``q`` fixed by the start.

    Parameters
    ----------
    z : array_like, shape (..., 3)
        One state or a trajectory.
    """
    z = v.finite_array("z", z)
    if z.shape[-1] != 3:
        raise ValueError(f"`z` must have a last axis of length 3, got shape {z.shape}")
    rate_h = float(v.positive("rate_h", rate_h))
    rate_y = float(v.positive("rate_y", rate_y))
    dx_sq = float(v.positive("dx_sq", dx_sq))
    if np.any(z[..., 0] <= 0):
        raise ValueError("`z[..., 0]` is ||dh||^2 and must be > 0")
    return z[..., 1] / z[..., 0] - (rate_y / rate_h) * z[..., 0] / dx_sq


def reduced_rhs(t: float, u, rate_h: float, rate_y: float, dx_sq: float, dy_target_sq: float, q: float) -> np.ndarray:
    """The 2-D system ``u = (dh_sq, w)`` on the invariant surface ``q = const``, eq. (25), corrected.

    Substituting eq. (24) into eq. (7) gives

    ``dw/dt = -1/2 (-(tau_h/tau_y^2) dh^6/dx_sq + dy_target_sq dh^2/tau_y + 4 w dh^2/tau_y
    + dx_sq w^2 / (tau_h dh^2)) + (q/2) (dh^4/tau_y - dx_sq w / tau_h)``

    The paper's eq. (25) prints the last term as ``q (dx_sq w/tau_h - dh^4/tau_y)``: sign and factor
    1/2 are off. Eq. (27), the fixed-point condition, follows from the form here, not the printed one.
    """
    u = v.finite_array("u", u, shape=(2,))
    if u[0] <= 0:
        raise ValueError(f"`u[0]` is ||dh||^2 and must be > 0, got {u[0]!r}")
    rate_h, rate_y, dx_sq, dy_target_sq = _params(rate_h, rate_y, dx_sq, dy_target_sq)
    q = float(v.finite_array("q", q))
    a, w = u
    ratio = rate_y / rate_h  # tau_h / tau_y
    dw = -0.5 * (
        -ratio * rate_y / dx_sq * a**3
        + rate_y * dy_target_sq * a
        + 4.0 * rate_y * a * w
        + rate_h * dx_sq * w**2 / a
    ) + 0.5 * q * (rate_y * a**2 - rate_h * dx_sq * w)
    return np.array([-rate_h * dx_sq * w, dw])


class FinalDistance(NamedTuple):
    """Result of :func:`final_distance`: the stable fixed point of eq. (7) and its two constants."""

    distance: np.ndarray
    """``||dh(inf)||^2``, eq. (10)."""
    a_high: np.ndarray
    """``A_high``, eq. (11): set by the input structure and the random initialisation."""
    a_low: np.ndarray
    """``A_low``, eq. (11): set by the input and output structure of the data."""


def final_distance(
    dh_sq0, dy_sq0, dx_sq, dy_target_sq, rate_h, rate_y
) -> FinalDistance:
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
    dx_sq, dy_target_sq : array_like
        ``||x2 - x1||^2`` (> 0) and ``||y2 - y1||^2`` (>= 0).
    rate_h, rate_y : array_like
        ``1/tau_h`` and ``1/tau_y`` (> 0).

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
    >>> r = final_distance(1e-4, 0.0, 1.0, 0.5, 1.0, 1.0)  # small weights: A_low wins
    >>> round(float(r.distance), 4), round(float(r.a_low), 4)
    (0.7072, 0.7071)
    """
    dh_sq0 = v.positive("dh_sq0", dh_sq0)
    dy_sq0 = v.non_negative("dy_sq0", dy_sq0)
    dx_sq = v.positive("dx_sq", dx_sq)
    dy_target_sq = v.non_negative("dy_target_sq", dy_target_sq)
    ratio = v.positive("rate_h", rate_h) / v.positive("rate_y", rate_y)  # tau_y / tau_h
    a_high = dh_sq0 - ratio * dx_sq * dy_sq0 / dh_sq0
    a_low = np.sqrt(ratio * dx_sq * dy_target_sq)
    return FinalDistance(_stable_root(a_high, a_low), a_high, a_low)


def _stable_root(a_high, a_low):
    """``A_high/2 + sqrt(A_high^2/4 + A_low^2)`` without cancellation when ``A_high << 0``."""
    root = np.sqrt(0.25 * a_high**2 + a_low**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        alt = np.where(root - 0.5 * a_high > 0, a_low**2 / (root - 0.5 * a_high), 0.0)
    return np.where(a_high >= 0, 0.5 * a_high + root, alt)


def reduced_jacobian_at_fixed_point(a_high, a_low, rate_h: float, rate_y: float, dx_sq: float) -> np.ndarray:
    """The Jacobian of the 2-D system (eq. 25) at the stable fixed point, as printed in eq. (29).

    Its trace (eq. 30) is negative and its determinant (eq. 31) positive, so the fixed point is stable.
    """
    a_high = float(v.finite_array("a_high", a_high))
    a_low = float(v.non_negative("a_low", a_low))
    rate_h = float(v.positive("rate_h", rate_h))
    rate_y = float(v.positive("rate_y", rate_y))
    dx_sq = float(v.positive("dx_sq", dx_sq))
    s = np.sqrt(a_high**2 + 4.0 * a_low**2)
    lower_left = 0.25 * rate_y**2 / rate_h / dx_sq * (2.0 * a_low**2 + 0.5 * (a_high + s) ** 2)
    return np.array([[0.0, -rate_h * dx_sq], [lower_left, -rate_y * (0.5 * a_high + s)]])


def origin_eigen(a_high, a_low, rate_h: float, rate_y: float, dx_sq: float):
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
    a_high = float(v.finite_array("a_high", a_high))
    a_low = float(v.non_negative("a_low", a_low))
    rate_h = float(v.positive("rate_h", rate_h))
    rate_y = float(v.positive("rate_y", rate_y))
    dx_sq = float(v.positive("dx_sq", dx_sq))
    s = np.sqrt(a_high**2 + 4.0 * a_low**2)
    roots = np.array([a_high + s, a_high - s])
    return 0.5 * rate_y * roots, -(rate_y / rate_h) * roots / (2.0 * dx_sq)


def identical_outputs_solution(t, dh_sq0, dy_sq0, dx_sq, rate_h, rate_y) -> np.ndarray:
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
    dh_sq0, dy_sq0, dx_sq, rate_h, rate_y : float
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
    a_high = float(final_distance(dh_sq0, dy_sq0, dx_sq, 0.0, rate_h, rate_y).a_high)
    k = rate_y * a_high
    decay = np.exp(-k * t)
    # (1 - exp(-k t)) / A_high, continuous at A_high = 0 where it equals rate_y t
    growth = rate_y * t if a_high == 0 else -np.expm1(-k * t) / a_high
    dh_sq = dh_sq0 / (decay + dh_sq0 * growth)
    c = (rate_y / rate_h) / dx_sq  # tau_h / (tau_y dx_sq)
    dy_sq = c * dh_sq * (dh_sq - a_high)
    return np.column_stack([dh_sq, dy_sq, dy_sq])


def _a_high_moments(dx_sq, rate_h, rate_y, gain):
    ratio = rate_h / rate_y  # tau_y / tau_h
    mean = dx_sq * gain * (1.0 - ratio)
    std = dx_sq * gain * np.sqrt(1.0 + ratio**2)
    return mean, std


def _density_args(h, dx_sq, dy_target_sq, rate_h, rate_y, gain):
    h = v.positive("h", h)
    dx_sq = float(v.positive("dx_sq", dx_sq))
    dy_target_sq = float(v.non_negative("dy_target_sq", dy_target_sq))
    rate_h = float(v.positive("rate_h", rate_h))
    rate_y = float(v.positive("rate_y", rate_y))
    gain = float(v.positive("gain", gain))
    a_low_sq = (rate_h / rate_y) * dx_sq * dy_target_sq
    mean, std = _a_high_moments(dx_sq, rate_h, rate_y, gain)
    return h, a_low_sq, mean, std


def final_distance_cdf(h, dx_sq, dy_target_sq, rate_h, rate_y, gain) -> np.ndarray:
    """``P(||dh(inf)||^2 < h)`` under the random-feature model of App. A.6, eq. (47), generalised.

    App. A.6 takes ``dh_sq0/dx_sq ~ N(G, G^2)`` and ``dy_sq0/dh_sq0 ~ N(G, G^2)`` independent, so
    ``A_high ~ N(dx_sq G (1 - rho), dx_sq^2 G^2 (1 + rho^2))`` with ``rho = tau_y/tau_h``; the paper's
    eq. (46) drops ``rho`` (it is exact for ``tau_y = tau_h``). Then
    ``P(||dh(inf)||^2 < h) = Phi((h - A_low^2/h - mean) / std)`` for ``h > 0``.
    """
    h, a_low_sq, mean, std = _density_args(h, dx_sq, dy_target_sq, rate_h, rate_y, gain)
    return ndtr((h - a_low_sq / h - mean) / std)


def final_distance_pdf(h, dx_sq, dy_target_sq, rate_h, rate_y, gain) -> np.ndarray:
    """Density of ``||dh(inf)||^2`` under App. A.6, eq. (48), generalised as in :func:`final_distance_cdf`."""
    h, a_low_sq, mean, std = _density_args(h, dx_sq, dy_target_sq, rate_h, rate_y, gain)
    arg = (h - a_low_sq / h - mean) / std
    return (1.0 + a_low_sq / h**2) / std * np.exp(-0.5 * arg**2) / np.sqrt(2.0 * np.pi)


def sample_final_distance(n: int, dx_sq, dy_target_sq, rate_h, rate_y, gain, *, seed: int) -> np.ndarray:
    """Monte Carlo draws of ``||dh(inf)||^2`` under the assumptions of App. A.6.

    Draws ``dh_sq0/dx_sq`` and ``dy_sq0/dh_sq0`` from ``N(G, G^2)`` (independently, as the paper
    does; negative draws are kept, as in the paper's Gaussian model) and applies eqs. (10)-(11).
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"`n` must be a positive integer, got {n!r}")
    dx_sq = float(v.positive("dx_sq", dx_sq))
    dy_target_sq = float(v.non_negative("dy_target_sq", dy_target_sq))
    rate_h = float(v.positive("rate_h", rate_h))
    rate_y = float(v.positive("rate_y", rate_y))
    gain = float(v.positive("gain", gain))
    rng = np.random.default_rng(seed)
    r_h, r_y = rng.normal(gain, gain, size=(2, n))
    a_high = dx_sq * (r_h - (rate_h / rate_y) * r_y)
    a_low = np.sqrt((rate_h / rate_y) * dx_sq * dy_target_sq)
    return _stable_root(a_high, a_low)
