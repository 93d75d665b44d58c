"""Eq. (7) and what follows directly from it: the 3-D system, its Jacobian, the solver, the loss (eq. 9),
the conserved quantity (eqs. 23-24) and the reduced 2-D system (eq. 25).

Eq. (7) is written once as code, in :func:`eq7` (each term's factor exposed, so that
:mod:`repalign.falsification` can build its modified systems from the same formula), and once in the
signed coordinates that :func:`solve` and :mod:`repalign.fit` integrate (:func:`signed_rhs`, the same
equations free of the division by ``dh_sq``). Notation: see :mod:`repalign.theory`.
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import solve_ivp

from .. import _validate as v

__all__ = [
    "initial_state",
    "eq7",
    "rhs",
    "jacobian",
    "solve",
    "to_signed",
    "from_signed",
    "signed_args",
    "signed_rhs",
    "signed_jacobian",
    "loss",
    "conserved_quantity",
    "reduced_rhs",
]


def initial_state(dh_sq0, dy_sq0, cos_angle, *, dy_target_sq) -> np.ndarray:
    """A realisable state ``(dh_sq, dy_sq, w)`` from the two distances and the output angle.

    ``w = dy_sq - dy^T (y2 - y1)`` with ``dy^T (y2 - y1) = cos_angle ||dy|| ||y2 - y1||``: ``cos_angle = 1``
    means the predicted outputs are ordered like the targets, ``-1`` against them.

    >>> initial_state(1.0, 0.25, -1.0, dy_target_sq=1.0)
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


def eq7(dh_sq, dy_sq, w, encoder_rate, rate_y, dy_target_sq, *, dh_sq_rate=1.0, encoder_in_dy=1.0,
        encoder_in_w=1.0, decoder_in_w=1.0, dy_sq_in_w=-1.0):
    """The three lines of eq. (7), unvalidated, with each term's factor exposed; the defaults give eq. (7).

    ``encoder_rate = rate_h * dx_sq`` (``X``) and ``rate_y`` (``R``) enter only in these two
    combinations, so every system built from this function shares the time-rescaling symmetry of
    eq. (7). :func:`rhs` is the validated eq. (7); :mod:`repalign.falsification` changes one factor
    at a time (``dh_sq_rate`` scales ``d||dh||^2/dt``, ``encoder_in_dy`` the encoder term of
    ``d||dy||^2/dt``, ``encoder_in_w`` and ``decoder_in_w`` the encoder and decoder terms of ``dw/dt``,
    ``dy_sq_in_w`` is the factor of ``||dy||^2`` inside the decoder term).

    Returns
    -------
    tuple of three floats or arrays
        ``d/dt (dh_sq, dy_sq, w)``; the arguments broadcast.
    """
    X, R, b2 = encoder_rate, rate_y, dy_target_sq
    return (-dh_sq_rate * X * w,
            -w * (R * dh_sq + encoder_in_dy * X * dy_sq / dh_sq),
            -0.5 * decoder_in_w * R * (3.0 * w + dy_sq_in_w * dy_sq + b2) * dh_sq
            - 0.5 * encoder_in_w * X * (dy_sq + w) * w / dh_sq)


def _rhs(t, z, rate_h, rate_y, dx_sq, dy_target_sq):
    """:func:`rhs` without validation, for integrators (positional parameters, as ``solve_ivp`` passes them)."""
    return np.array(eq7(*z, rate_h * dx_sq, rate_y, dy_target_sq))


def _jacobian(t, z, rate_h, rate_y, dx_sq, dy_target_sq):
    """:func:`jacobian` without validation, for integrators."""
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


def rhs(t: float, z, *, rate_h: float, rate_y: float, dx_sq: float, dy_target_sq: float) -> np.ndarray:
    """Right-hand side of the 3-D system, the paper's eq. (7) / (21).

    Parameters
    ----------
    t : float
        Time (unused: the system is autonomous; present for ``solve_ivp``).
    z : array_like, shape (3,)
        State ``(dh_sq, dy_sq, w)`` with ``dh_sq > 0`` and ``dy_sq >= 0``.
    rate_h, rate_y : float, keyword-only
        Effective learning rates ``1/tau_h`` and ``1/tau_y`` (> 0).
    dx_sq : float, keyword-only
        Input distance ``||x2 - x1||^2`` (> 0).
    dy_target_sq : float, keyword-only
        Target distance ``||y2 - y1||^2`` (>= 0).

    Returns
    -------
    numpy.ndarray, shape (3,)
        ``d/dt (dh_sq, dy_sq, w)``, computed by :func:`eq7`.

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
    >>> rhs(0.0, [1.0, 0.25, 0.5], rate_h=1.0, rate_y=1.0, dx_sq=1.0, dy_target_sq=1.0)
    array([-0.5   , -0.625 , -1.3125])
    """
    z = _state("z", z)
    return v.finite_output(_rhs(t, z, *_params(rate_h, rate_y, dx_sq, dy_target_sq)), "eq. (7) at `z`",
                           "rescale `z` or the rates")


def jacobian(z, *, rate_h: float, rate_y: float, dx_sq: float, dy_target_sq: float) -> np.ndarray:
    """Jacobian ``d rhs / d z`` of eq. (7) at the state ``z``, shape (3, 3).

    The 3-D system has a conserved quantity (see :func:`conserved_quantity`), so at a fixed point one
    eigenvalue is zero (motion along the line of fixed points) and the other two are those of the
    reduced 2-D Jacobian, the paper's eq. (29). Parameters as in :func:`rhs`.
    """
    z = _state("z", z)
    return v.finite_output(_jacobian(0.0, z, *_params(rate_h, rate_y, dx_sq, dy_target_sq)),
                           "the Jacobian at `z`", "rescale `z` or the rates")


SOLVE_MAGNITUDE_LIMIT = 1e15
"""Largest magnitude :func:`solve` accepts for a time, rate, squared distance or state coordinate."""

SOLVE_MAX_EVALUATIONS = 10**6
"""Evaluations of the right-hand side after which :func:`solve` gives up (a few seconds of work)."""


def solve(
    z0,
    t,
    *,
    rate_h: float,
    rate_y: float,
    dx_sq: float,
    dy_target_sq: float,
    rtol: float = 1e-10,
    atol: float | None = None,
    method: str = "LSODA",
) -> np.ndarray:
    """Integrate eq. (7) from ``z0`` at time ``t[0]`` and return the state at every time in ``t``.

    Parameters
    ----------
    z0 : array_like, shape (3,)
        Initial state ``(dh_sq, dy_sq, w)`` at time ``t[0]``.
    t : array_like, shape (n,)
        Increasing output times; theory time equals the training epoch count.
    rate_h, rate_y, dx_sq, dy_target_sq : float, keyword-only
        As in :func:`rhs`.
    rtol, atol : float, keyword-only
        Solver tolerances (``scipy.integrate.solve_ivp``). The default ``atol`` scales with the
        start, ``1e-4 * rtol * min(1, smallest non-zero signed coordinate)``, so that a trajectory
        from very small weights (``dh_sq0`` of 1e-20, say) keeps its relative accuracy.
    method : str, keyword-only
        ``solve_ivp`` method; the default LSODA switches to a stiff method where the trajectory
        needs it (long plateaus followed by fast escapes). The integration runs in the signed
        coordinates of :func:`signed_rhs`, which are free of the division by ``dh_sq`` in eq. (7)
        and pass smoothly where the two representations cross.

    Returns
    -------
    numpy.ndarray, shape (n, 3)
        Columns ``dh_sq, dy_sq, w``.

    Raises
    ------
    ValueError
        On bad arguments (see :func:`rhs`; ``t`` must be 1-D, finite and increasing), if ``z0``
        cannot come from any output vectors (``|dy_sq - w| > sqrt(dy_sq dy_target_sq)``), if a time,
        rate, squared distance or state coordinate exceeds :data:`SOLVE_MAGNITUDE_LIMIT` in magnitude,
        or if ``rtol`` or ``atol`` is not in ``(0, 1)``.
    RuntimeError
        If the integrator fails or needs more than :data:`SOLVE_MAX_EVALUATIONS` evaluations.

    Examples
    --------
    >>> z = solve([1e-3, 1e-6, 1e-6], [0.0, 1e4], rate_h=1.0, rate_y=1.0, dx_sq=1.0, dy_target_sq=0.5)
    >>> z.shape
    (2, 3)
    """
    z0 = _state("z0", z0)
    params = _params(rate_h, rate_y, dx_sq, dy_target_sq)
    t = v.times("t", t)
    for name, value in (("z0", z0), ("t", t), ("rate_h", rate_h), ("rate_y", rate_y), ("dx_sq", dx_sq),
                        ("dy_target_sq", dy_target_sq)):
        v.at_most(name, value, SOLVE_MAGNITUDE_LIMIT)
    rtol = v.tolerance("rtol", rtol)
    if atol is not None:
        atol = v.tolerance("atol", atol)
    if t[0] == t[-1]:
        return np.tile(z0, (t.size, 1))
    y0 = to_signed(z0, params[3])
    if atol is None:
        nonzero = np.abs(y0[y0 != 0])
        atol = 1e-4 * rtol * min(1.0, nonzero.min() if nonzero.size else 1.0)
    jac = signed_jacobian if method in ("LSODA", "BDF", "Radau") else None
    fun = v.WorkLimit(signed_rhs, SOLVE_MAX_EVALUATIONS, "shorten `t` or use less extreme rates and states")
    sol = solve_ivp(fun, (t[0], t[-1]), y0, t_eval=t, args=signed_args(*params), method=method, rtol=rtol,
                    atol=atol, jac=jac)
    if not sol.success or not np.all(np.isfinite(sol.y)):
        raise RuntimeError(f"integration of eq. (7) failed: {sol.message}")
    z = from_signed(sol.y.T, params[3])
    z[0] = z0  # exactly the given start (the round trip through the signed coordinates costs a few ulp)
    return z


# The signed coordinates. Under the no-rotation condition (eq. 19) dh = alpha u with a fixed unit
# vector u and a signed length alpha, and only m = D_y u matters, with dy = alpha m. Writing
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


def to_signed(z0: np.ndarray, dy_target_sq: float) -> np.ndarray:
    """The signed coordinates ``(alpha, m_par, m_perp)`` of a state ``(dh_sq, dy_sq, w)``, ``alpha > 0``.

    Raises
    ------
    ValueError
        If no output vectors give ``z0``: ``|dy_sq - w| > sqrt(dy_sq dy_target_sq)`` beyond a
        relative rounding slack of 1e-6 (Cauchy-Schwarz for ``dy^T (y2 - y1) = dy_sq - w``).
    """
    a, d, w = z0
    b = np.sqrt(dy_target_sq)
    alpha = np.sqrt(a)
    slack = d * dy_target_sq - (d - w) ** 2
    if slack < -_REALISABLE_RTOL * max(d * dy_target_sq, (d - w) ** 2, np.finfo(float).tiny):
        raise ValueError(
            "`z0` is not realisable: w = ||dy||^2 - dy^T (y2 - y1) needs |dy_sq - w| <= sqrt(dy_sq * dy_target_sq), "
            f"got |{d:.6g} - {w:.6g}| > sqrt({d:.6g} * {dy_target_sq:.6g})"
        )
    m_par = (d - w) / (alpha * b) if b > 0 else 0.0
    m_perp = np.sqrt(max(d / a - m_par**2, 0.0))
    return np.array([alpha, m_par, m_perp])


def from_signed(y: np.ndarray, dy_target_sq: float) -> np.ndarray:
    """States ``(dh_sq, dy_sq, w)``, shape (n, 3), from signed coordinates ``y``, shape (n, 3)."""
    alpha, m_par, m_perp = y.T
    dh_sq = alpha**2
    dy_sq = dh_sq * (m_par**2 + m_perp**2)
    return np.column_stack([dh_sq, dy_sq, dy_sq - alpha * m_par * np.sqrt(dy_target_sq)])


def signed_args(rate_h: float, rate_y: float, dx_sq: float, dy_target_sq: float) -> tuple[float, float, float]:
    """The constants ``(k, r, b) = (rate_h dx_sq / 2, rate_y / 2, ||y2 - y1||)`` of :func:`signed_rhs`."""
    return 0.5 * rate_h * dx_sq, 0.5 * rate_y, np.sqrt(dy_target_sq)


def signed_rhs(t, y, k, r, b) -> np.ndarray:
    """Eq. (7) in the signed coordinates ``y = (alpha, m_par, m_perp)``, unvalidated.

    ``(k, r, b)`` come from :func:`signed_args`. The signature ``f(t, y, *args)`` serves both
    ``scipy.integrate.solve_ivp`` and ``odeint(..., tfirst=True)``.
    """
    alpha, m_par, m_perp = y
    return np.array(
        [
            -k * (alpha * (m_par * m_par + m_perp * m_perp) - m_par * b),
            -r * alpha * (alpha * m_par - b),
            -r * alpha * alpha * m_perp,
        ]
    )


def signed_jacobian(t, y, k, r, b) -> np.ndarray:
    """Jacobian of :func:`signed_rhs`, shape (3, 3)."""
    alpha, m_par, m_perp = y
    return np.array(
        [
            [-k * (m_par * m_par + m_perp * m_perp), -k * (2.0 * alpha * m_par - b), -2.0 * k * alpha * m_perp],
            [-r * (2.0 * alpha * m_par - b), -r * alpha * alpha, 0.0],
            [-2.0 * r * alpha * m_perp, 0.0, -r * alpha * alpha],
        ]
    )


def loss(t, z, *, rate_ybar: float, dy_target_sq: float, offset_sq: float) -> np.ndarray:
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


def conserved_quantity(z, *, rate_h: float, rate_y: float, dx_sq: float) -> np.ndarray:
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


def reduced_rhs(
    t: float, u, *, rate_h: float, rate_y: float, dx_sq: float, dy_target_sq: float, q: float
) -> np.ndarray:
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
    tau_h_over_tau_y = rate_y / rate_h
    dw = -0.5 * (
        -tau_h_over_tau_y * rate_y / dx_sq * a**3
        + rate_y * dy_target_sq * a
        + 4.0 * rate_y * a * w
        + rate_h * dx_sq * w**2 / a
    ) + 0.5 * q * (rate_y * a**2 - rate_h * dx_sq * w)
    return np.array([-rate_h * dx_sq * w, dw])
