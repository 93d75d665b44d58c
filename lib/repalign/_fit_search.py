"""The search behind :func:`repalign.fit.fit_rates`: starting rates for the polish, and the fast solver.

How the search works. Eq. (7) is invariant under ``(rate_h, rate_y, t) -> (k rate_h, k rate_y, t / k)``,
so a trajectory with rates ``(k, k r)``, ``r = rate_y / rate_h = tau_h / tau_y``, is one reference
trajectory with rates ``(1, r)`` read at the times ``k (t - t[0])``. For each candidate ``r`` (a
log-spaced grid, plus an estimate read off the conserved quantity of eqs. 23-24) the reference is solved
once on a dense log time grid and every time scale ``k`` is scored by interpolation
(:func:`profile`). :func:`search` refines the best ``r`` and returns starts for :func:`polish`, which
runs Levenberg-Marquardt on ``(log rate_h, log rate_y)`` at all record times.

Both integrate the signed coordinates of :func:`repalign.theory.solve` (the same right-hand side,
:func:`repalign.theory.dynamics.signed_rhs`) with ``scipy.integrate.odeint``: it agrees with
``theory.solve`` to the tolerances (tests/test_fit.py checks it) and runs about five times faster,
which matters because a fit needs ~30-60 solves. The reported trajectory is ``theory.solve``'s.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.integrate import ODEintWarning, odeint
from scipy.optimize import least_squares, minimize_scalar

from . import _records
from .theory import dynamics, final_distance

_PER_DECADE = 80  # reference grid points per decade of time; linear interpolation in log time
_POLISH_REACH = np.log(1e3)  # the polish treats rates 3 decades from its start as failures


def search(t, z, z0, dx_sq, dy_target_sq, grid, extra, search_records, atol) -> list[tuple[float, float]]:
    """Starting points ``(k, r)`` (``rate_h = k``, ``rate_y = k r``) for the polish, best first.

    Each candidate ratio (the log-spaced ``grid`` and the ``extra`` estimates) is scored by its best
    time scale (:func:`profile`) on the search records. The best is refined by a bounded scalar
    search between its neighbours on the grid. Where, between two ratios, the theory switches
    between trajectories whose representations cross (``||dh||`` passes through 0) and ones that
    do not, some ratio in between sends the trajectory into the saddle at the origin (an endless
    plateau): the objective has a barrier there and a basin on each side, so that ratio is found by
    bisection, each side is searched, and each side contributes a starting point. Candidates are
    compared on all records, since the search records can miss a fast transient between them.
    """
    idx, weight = _records.subsample(t.size, search_records)
    tau, zs = t[idx] - t[0], z[idx]
    scored = {}  # log r -> (sse on the search records, best time scale k, crossed)

    def score(log_r):
        if log_r not in scored:
            scored[log_r] = profile(z0, float(np.exp(log_r)), dx_sq, dy_target_sq, tau, zs, weight, atol)
        return scored[log_r][0]

    for r in [*grid, *extra]:
        score(float(np.log(r)))
    best = min(scored, key=lambda x: scored[x][0])
    grid_logs = np.log(grid)
    bracket = sorted(x for x in scored if max(grid_logs[grid_logs < best], default=best) <= x
                     <= min(grid_logs[grid_logs > best], default=best))
    intervals, left = [], bracket[0]
    for a, b in zip(bracket[:-1], bracket[1:]):
        crossed = scored[a][2]
        if crossed != scored[b][2]:
            for _ in range(8):
                mid = 0.5 * (a + b)
                same = reference(z0, float(np.exp(mid)), dx_sq, dy_target_sq, atol)[2] == crossed
                a, b = (mid, b) if same else (a, mid)
            intervals.append((left, a))
            left = b
    intervals.append((left, bracket[-1]))
    for a, b in intervals:
        if b - a > 0.02:
            minimize_scalar(score, bounds=(a, b), method="bounded", options={"xatol": 0.01, "maxiter": 12})

    full = {}  # log r -> sum of squares on all records at its best time scale

    def full_sse(x):
        if x not in full:
            k = scored[x][1]
            full[x] = np.sum((fast_solve(z0, k, k * np.exp(x), dx_sq, dy_target_sq, t, 1e-8, atol) - z) ** 2)
            full[x] = full[x] if np.isfinite(full[x]) else np.inf
        return full[x]

    # The three best overall and, where barriers split the ratios, the three best on each side.
    ranked = sorted(scored, key=lambda x: scored[x][0])
    groups = [ranked[:3]]
    if len(intervals) > 1:
        groups += [[x for x in ranked if a <= x <= b][:3] for a, b in intervals]
    starts = sorted({min(group, key=full_sse) for group in groups if group}, key=full_sse)
    # another basin is worth a polish only if it starts about as well as the best one
    return [(scored[x][1], float(np.exp(x))) for x in starts if full_sse(x) <= 2.0 * full_sse(starts[0])]


def tau_h_over_tau_y_from_conserved_quantity(z: np.ndarray, dx_sq: float) -> float | None:
    """``rate_y/rate_h`` from eq. (24), ``dy_sq = q dh_sq + (rate_y/rate_h) dh_sq^2 / dx_sq``, by least squares."""
    dh_sq, dy_sq = z[:, 0], z[:, 1]
    design = np.column_stack([dh_sq, dh_sq**2 / dx_sq])
    norms = np.sqrt(np.einsum("ij,ij->j", design, design))
    if not np.all(norms > 0):
        return None
    design = design / norms
    gram, rhs = np.einsum("ij,ik->jk", design, design), np.einsum("ij,i->j", design, dy_sq)
    if np.linalg.cond(gram) > 1e12:  # dh_sq barely changes: no slope to read
        return None
    coef = np.linalg.solve(gram, rhs) / norms
    return float(coef[1]) if np.isfinite(coef[1]) and coef[1] > 0 else None


def fast_solve(z0, rate_h, rate_y, dx_sq, dy_target_sq, times, rtol, atol):
    """Eq. (7) from the realisable ``z0`` at ``times[0]``, shape (n, 3); NaN if the integrator fails."""
    return integrate(z0, rate_h, rate_y, dx_sq, dy_target_sq, times, rtol, atol)[0]


def integrate(z0, rate_h, rate_y, dx_sq, dy_target_sq, times, rtol, atol):
    """Eq. (7) in the signed coordinates: the states (n, 3) and the signed ``alpha = +-||dh||`` (n,)."""
    args = dynamics.signed_args(rate_h, rate_y, dx_sq, dy_target_sq)
    with warnings.catch_warnings():  # a failed trial solve is reported through `info`, not a warning
        warnings.simplefilter("ignore", ODEintWarning)
        y, info = odeint(dynamics.signed_rhs, dynamics.to_signed(z0, dy_target_sq), times, args=args,
                         Dfun=dynamics.signed_jacobian, tfirst=True, rtol=rtol, atol=atol, mxstep=20_000,
                         full_output=True)
    if info["message"] != "Integration successful." or not np.all(np.isfinite(y)):
        return np.full((len(times), 3), np.nan), np.full(len(times), np.nan)
    return dynamics.from_signed(y, dy_target_sq), y[:, 0]


def reference(z0, r, dx_sq, dy_target_sq, atol):
    """Eq. (7) with rates (1, r) from z0, on a log time grid reaching its fixed point.

    Returns ``(log_s, zs, crossed)``: ``zs[i]`` is the state at time ``exp(log_s[i])``; ``crossed``
    says whether the representations pass through each other (the signed ``||dh||`` ends negative).
    """
    dh_sq, dy_sq, w = z0
    # Rough rates of the fastest process at the start (the plateau escape rate ~ r * A_low and
    # the terms of eq. 7) and of the slowest one at the end (eq. 7 linearised at the fixed point
    # of eq. 10). The grid runs from 6 decades before the first to 4 decades past the second, and
    # further out if the trajectory has not settled by then.
    fast = np.sqrt(r * dx_sq * dy_target_sq) + r * dh_sq + dx_sq * (dy_sq + abs(w)) / dh_sq
    h_end = float(final_distance(dh_sq, dy_sq, rate_h=1.0, rate_y=r, dx_sq=dx_sq, dy_target_sq=dy_target_sq).distance)
    slow = min(fast, r * h_end + dx_sq * dy_target_sq / h_end) if h_end > 0 else fast
    start, decades = np.log10(1e-6 / fast), np.log10(1e4 / slow) - np.log10(1e-6 / fast)
    for extra in (0, 3, 6):
        n = int(np.ceil((decades + extra) * _PER_DECADE))
        s = np.concatenate([[0.0], np.logspace(start, start + n / _PER_DECADE, n + 1)])
        zs, alpha = integrate(z0, 1.0, r, dx_sq, dy_target_sq, s, 1e-8, atol)
        span = np.ptp(zs, axis=0)
        span = np.where(span > 0, span, 1.0)
        if not np.max(np.abs(zs[-1] - zs[-_PER_DECADE]) / span) > 1e-7:  # settled over the last decade (or failed)
            break
    return np.log(s[1:]), zs[1:], bool(alpha[-1] < 0)


def profile(z0, r, dx_sq, dy_target_sq, tau, zs, weight, atol):
    """Best weighted eq.-(49) sum of squares over the time scale ``k`` for one ``r = rate_y / rate_h``.

    Returns ``(sse, k, crossed)``.
    """
    log_s, ref, crossed = reference(z0, r, dx_sq, dy_target_sq, atol)
    if not np.all(np.isfinite(ref)):
        return np.inf, 1.0, crossed
    span = np.ptp(np.vstack([ref, z0]), axis=0)
    span = np.where(span > 0, span, 1.0)
    unsettled = np.max(np.abs(ref - ref[-1]) / span, axis=1) > 1e-4
    s_hi = log_s[len(unsettled) - 1 - np.argmax(unsettled[::-1])] if unsettled.any() else log_s[-1]
    log_tau = np.log(tau[1:])
    base = weight[0] * float(np.sum((z0 - zs[0]) ** 2))

    step, last = log_s[1] - log_s[0], len(log_s) - 1  # the reference grid is uniform in log time
    ref_next = np.vstack([ref[1:], ref[-1:]])

    def sse(log_k, every=1):  # linear interpolation in log time, all three quantities at once
        pos = np.clip((np.add.outer(np.atleast_1d(log_k), log_tau[::every]) - log_s[0]) / step, 0.0, last)
        i = pos.astype(int)
        frac = (pos - i)[..., None]
        pred = ref[i] * (1.0 - frac) + ref_next[i] * frac
        return base + every * np.sum(weight[1::every, None] * (pred - zs[1::every]) ** 2, axis=(-2, -1))

    k_lo, k_hi = log_s[0] - log_tau[-1], s_hi - log_tau[0] + 1.0
    grid = np.linspace(k_lo, k_hi, int(np.clip((k_hi - k_lo) / np.log(10) * 10, 10, 300)))
    values = sse(grid, every=3)  # the scan reads every third search record
    i = int(np.argmin(values))
    res = minimize_scalar(lambda x: float(sse(x)[0]), bounds=(grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]),
                          method="bounded", options={"xatol": 1e-3})
    at_grid = float(sse(grid[i])[0])
    if res.fun < at_grid:
        return float(res.fun), float(np.exp(res.x)), crossed
    return at_grid, float(np.exp(grid[i])), crossed


def polish(t, z, z0, dx_sq, dy_target_sq, starts, rtol, atol):
    """Levenberg-Marquardt on ``(log rate_h, log rate_y)`` at all records from each start ``(k, r)``.

    One start unless a barrier splits the values of ``r`` into basins; the lowest sum of squares
    wins. Trial rates more than 3 decades from the start count as failures: there the records no
    longer constrain the theory (it has settled before the first record, or not moved by the last)
    and the integrator only wastes time. Returns ``(sol, x0, ok)``: the ``least_squares`` result, its
    start, and whether it converged within reach.
    """
    penalty = 1e3 * (np.abs(z).max() + 1.0)

    def one(k, r):
        x0 = np.log([k, k * r])

        def residual(x):
            if np.any(np.abs(x - x0) > _POLISH_REACH):
                return np.full(z.size, penalty)
            res = (fast_solve(z0, *np.exp(x), dx_sq, dy_target_sq, t, rtol, atol) - z).ravel()
            return res if np.all(np.isfinite(res)) else np.full(z.size, penalty)

        return least_squares(residual, x0, method="lm", diff_step=1e-6, xtol=1e-10, ftol=1e-10, gtol=1e-10,
                             max_nfev=200), x0

    sol, x0 = min((one(k, r) for k, r in starts), key=lambda p: p[0].cost)
    ok = bool(sol.status > 0 and np.all(np.abs(sol.x - x0) < _POLISH_REACH) and sol.cost < 0.5 * z.size * penalty**2)
    return sol, x0, ok
