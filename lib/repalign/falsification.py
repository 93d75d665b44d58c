"""Falsification: fit deliberately wrong versions of eq. (7) to the same recordings as the true one.

A fit with two free rates could look good for reasons that have nothing to do with the theory: any
smooth decay can be matched by something. The test here is whether the *particular* equations of the
paper are needed. Each entry of :data:`SYSTEMS` is eq. (7) with one change -- a term's sign flipped or
a derivative doubled -- and :func:`fit_system` fits its two rates to a recording by the same
procedure for every system (the true one included, as a control of the procedure itself). If the
theory captures the networks, the true system fits best, by a clear margin.

Every system is :func:`repalign.theory.dynamics.eq7`, the one implementation of eq. (7), with one of
its term factors changed. It is linear in ``X = rate_h * dx_sq`` and ``R = rate_y``, so all systems
share the time-rescaling symmetry of eq. (7); only the shape of the trajectories differs.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
from scipy.integrate import odeint
from scipy.optimize import least_squares

from . import _records
from . import _validate as v
from .fit import normalised_error
from .theory.dynamics import SOLVE_MAGNITUDE_LIMIT, eq7

__all__ = ["SYSTEMS", "SystemFit", "fit_system", "system_rhs"]


def _modified(**factors) -> Callable:
    return functools.partial(eq7, **factors)


#: name -> (description, right-hand side ``f(h, d, w, X, R, dy_target_sq) -> (dh, dd, dw)``).
SYSTEMS: MappingProxyType = MappingProxyType({
    "eq. (7)": ("the true system", eq7),
    "flip X d/h in d(dy)": ("sign of the encoder term of d||dy||^2/dt flipped", _modified(encoder_in_dy=-1.0)),
    "double d(dh)": ("d||dh||^2/dt doubled", _modified(dh_sq_rate=2.0)),
    "flip X term in dw": ("sign of the encoder term of dw/dt flipped", _modified(encoder_in_w=-1.0)),
    "double R term in dw": ("decoder term of dw/dt doubled", _modified(decoder_in_w=2.0)),
    "flip -dy in dw": ("sign of ||dy||^2 inside the decoder term of dw/dt flipped", _modified(dy_sq_in_w=1.0)),
})


def system_rhs(name: str) -> Callable:
    """The right-hand side of system ``name`` (a key of :data:`SYSTEMS`)."""
    if name not in SYSTEMS:
        raise ValueError(f"`system` must be one of {', '.join(SYSTEMS)}; got {name!r}")
    return SYSTEMS[name][1]


@dataclass(frozen=True, eq=False)
class SystemFit:
    """Result of :func:`fit_system`: the best rates found and the fit error on all records."""

    system: str
    rate_h: float
    rate_y: float
    error: float  # normalised_error on all records; inf if the system could not be integrated
    success: bool
    z_theory: np.ndarray = field(repr=False)


def _solve(rhs, z0, X, R, b2, times):
    """Integrate from ``z0`` at ``times[0]`` (LSODA); rows after a failure, or after ``dh_sq`` or
    ``dy_sq`` leaves its domain, are NaN."""
    def f(z, t):
        return rhs(z[0], z[1], z[2], X, R, b2)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        y, info = odeint(f, z0, times, rtol=1e-8, atol=1e-12 * max(1.0, float(np.max(np.abs(z0)))),
                         mxstep=2000, full_output=True)
    bad = ~np.all(np.isfinite(y), axis=1) | (y[:, 0] <= 0) | (y[:, 1] < 0)
    if info["message"] != "Integration successful.":
        bad[max(int(np.argmax(info["tcur"] < times[-1])), 1):] = True
    if bad.any():
        y[np.argmax(bad):] = np.nan
    return y


def fit_system(t, z, system: str, dx_sq: float, dy_target_sq: float, *, starts, records: int = 300) -> SystemFit:
    """Fit ``rate_h, rate_y`` of system ``system`` to the recording ``(t, z)``.

    The objective is the normalised residual of :func:`repalign.fit.normalised_error` (each quantity
    scaled by its range) on ``records`` records (half evenly spaced, half log-spaced in index), minimised
    by Levenberg-Marquardt-type ``least_squares`` over ``(log rate_h, log rate_y)`` from every pair
    in ``starts``; the best is then scored on all records. Where a system cannot be integrated over a
    record range (its ``||dh||^2`` reaches 0, or the solver fails) the missing records count as an error
    of 10 x the range, so failure is never rewarded.

    Parameters
    ----------
    t : array_like, shape (n,)
        Record times (epochs), strictly increasing.
    z : array_like, shape (n, 3)
        Recorded ``(dh_sq, dy_sq, w)``.
    system : str
        A key of :data:`SYSTEMS`.
    dx_sq, dy_target_sq : float
        Input and target distances of the tracked pair.
    starts : sequence of (rate_h, rate_y)
        Starting rates (> 0); use the same starts for every system being compared.
    records : int
        Records used during the search (>= 10), chosen by :func:`repalign._records.subsample`.
    """
    rhs = system_rhs(system)
    t, z = _records.validate(t, z)
    starts = np.asarray(starts, dtype=float).reshape(-1, 2)
    if starts.size == 0 or not np.all(np.isfinite(starts)) or np.any(starts <= 0):
        raise ValueError(f"`starts` must be pairs of positive finite rates, got {starts.tolist()}")
    dx_sq = float(v.positive("dx_sq", dx_sq))
    dy_target_sq = float(v.non_negative("dy_target_sq", dy_target_sq))
    for name, value in (("t", t), ("z", z), ("dx_sq", dx_sq), ("dy_target_sq", dy_target_sq), ("starts", starts)):
        v.at_most(name, value, SOLVE_MAGNITUDE_LIMIT)  # the integrations' own bound: no inf error returned
    if not isinstance(records, (int, np.integer)) or records < 10:
        raise ValueError(f"`records` must be an integer >= 10, got {records!r}")
    idx, _ = _records.subsample(t.size, records)
    scale = _records.scales(z)

    def residual(p, ii):
        pred = _solve(rhs, z[0], np.exp(p[0]) * dx_sq, np.exp(p[1]), dy_target_sq, t[ii])
        r = (pred - z[ii]) / scale
        return np.where(np.isfinite(r), r, 10.0).ravel() / np.sqrt(len(ii))

    best = None
    for start in np.log(starts):
        res = least_squares(residual, start, args=(idx,), method="trf", x_scale=1.0, max_nfev=60,
                            bounds=(start - 12, start + 12))
        if best is None or res.cost < best.cost:
            best = res
    rate_h, rate_y = np.exp(best.x)
    full = _solve(rhs, z[0], rate_h * dx_sq, rate_y, dy_target_sq, t)
    ok = bool(np.all(np.isfinite(full)))
    error = normalised_error(z, full) if ok else float("inf")
    return SystemFit(system, float(rate_h), float(rate_y), error, ok and best.success > 0, full)
