"""Fitting the effective learning rates to recorded training dynamics (App. B.1, eq. 49).

:func:`fit_rates` finds ``rate_h = 1/tau_h`` and ``rate_y = 1/tau_y`` of eq. (7) for a recorded
trajectory ``(dh_sq, dy_sq, w)``; :func:`fit_rate_ybar` then finds ``rate_ybar = 1/tau_ybar`` of eq. (9)
for the recorded loss with that trajectory held fixed. :func:`normalised_error` is the fit error both
report, comparable across architectures and runs.

How the search works. Eq. (7) is invariant under ``(rate_h, rate_y, t) -> (k rate_h, k rate_y, t / k)``,
so a trajectory with rates ``(k, k r)`` is one reference trajectory with rates ``(1, r)`` read at the
times ``k (t - t[0])``. For each candidate ratio ``r = rate_y / rate_h`` (a log-spaced grid, plus an
estimate read off the conserved quantity of eq. 23-24) the reference is solved once on a dense log
time grid and every time scale ``k`` is scored by interpolation; the best ``(r, k)`` is then polished
with ``scipy.optimize.least_squares`` on ``(log rate_h, log rate_y)`` at all record times. Both steps
integrate the signed coordinates of :func:`theory.solve` with ``scipy.integrate.odeint`` (the same
equations, about five times faster); the reported trajectory is :func:`theory.solve`'s.

Only ``rate_h * dx_sq`` enters eq. (7), so ``rate_h`` is fitted for the ``dx_sq`` given; a wrong
``dx_sq`` rescales ``rate_h`` and leaves the fit error unchanged, while a wrong ``dy_target_sq``
shows up in the error.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.integrate import ODEintWarning, odeint
from scipy.optimize import least_squares, minimize_scalar

from . import _validate as v
from . import theory

__all__ = ["RateFit", "LossFit", "fit_rates", "fit_rate_ybar", "fit_recording", "normalised_error"]


@dataclass(frozen=True, eq=False)
class RateFit:
    """Result of :func:`fit_rates`.

    Attributes
    ----------
    rate_h, rate_y : float
        Fitted ``1/tau_h`` and ``1/tau_y`` (> 0), in inverse units of ``t``.
    z_theory : numpy.ndarray, shape (n, 3)
        Eq. (7) solved with the fitted rates from ``z0`` at the record times.
    error : float
        :func:`normalised_error` of ``z_theory`` against the records, over all records.
    success : bool
        The polish converged; the records determine both rates (the theory moves with the
        log-rates in every direction, and their Gauss-Newton standard errors are below 1, i.e. a
        factor e); the ratio stayed within 100 x ``ratio_bounds``; and :func:`theory.solve`
        succeeded. ``message`` says which failed.
    z0 : numpy.ndarray, shape (3,)
        The start the theory was integrated from: the first record, projected onto the realisable
        set if needed (see :func:`fit_rates`).
    projected : bool
        Whether ``z0`` differs from the first record.
    message : str
        The optimiser's message, plus a note where the rates are not identifiable or the ratio
        lies outside ``ratio_bounds``.

    Instances compare by identity (``eq=False``): they hold arrays.
    """

    rate_h: float
    rate_y: float
    z_theory: np.ndarray = field(repr=False)
    error: float
    success: bool
    z0: np.ndarray = field(repr=False)
    projected: bool
    message: str = ""

    @property
    def ratio(self) -> float:
        """``rate_y / rate_h = tau_h / tau_y``, the only combination eq. (10)-(11) depend on."""
        return self.rate_y / self.rate_h


@dataclass(frozen=True, eq=False)
class LossFit:
    """Result of :func:`fit_rate_ybar`.

    Attributes
    ----------
    rate_ybar : float
        Fitted ``1/tau_ybar`` (> 0).
    loss_theory : numpy.ndarray, shape (n,)
        Eq. (9) (:func:`theory.loss`) with the fitted rate.
    error : float
        :func:`normalised_error` of ``loss_theory`` against the measured loss.
    success : bool
        The optimiser converged to a finite rate inside the searched range.
    """

    rate_ybar: float
    loss_theory: np.ndarray = field(repr=False)
    error: float
    success: bool


def normalised_error(measured, predicted) -> float:
    """Root-mean-square residual of each quantity over its range, averaged over the quantities.

    For column ``j`` of ``measured`` (``n`` records),
    ``e_j = sqrt(mean_i (predicted_ij - measured_ij)^2) / s_j`` with ``s_j = max_i measured_ij -
    min_i measured_ij`` (the quantity's range over the recording; its largest absolute value if the
    range is zero, and 1 if that is zero too), and the error is ``mean_j e_j``. It is dimensionless,
    0 for a perfect fit, and 0.01 means residuals of about 1 % of each quantity's excursion; because
    each quantity is scaled by its own range, ``w`` (which returns to 0) counts as much as
    ``dh_sq``, whatever their sizes.

    Parameters
    ----------
    measured, predicted : array_like, shape (n, q) or (n,)
        Records and the model's values at the same times.

    Returns
    -------
    float

    Examples
    --------
    >>> normalised_error([0.0, 1.0, 2.0], [0.0, 1.0, 2.0])
    0.0
    >>> round(normalised_error([0.0, 1.0, 2.0], [0.2, 1.2, 2.2]), 6)
    0.1
    """
    measured = v.finite_array("measured", measured)
    predicted = v.finite_array("predicted", predicted)
    if measured.shape != predicted.shape or measured.ndim not in (1, 2) or measured.shape[0] == 0:
        raise ValueError(
            f"`measured` and `predicted` must have the same shape (n,) or (n, q), got {measured.shape} and "
            f"{predicted.shape}"
        )
    m = measured.reshape(measured.shape[0], -1)
    p = predicted.reshape(m.shape)
    return float(np.mean(np.sqrt(np.mean((p - m) ** 2, axis=0)) / _scales(m)))


def _scales(m: np.ndarray) -> np.ndarray:
    """Per column: the range, else the largest absolute value, else 1."""
    scale = m.max(axis=0) - m.min(axis=0)
    scale = np.where(scale > 0, scale, np.abs(m).max(axis=0))
    return np.where(scale > 0, scale, 1.0)


def fit_rates(
    t,
    z,
    dx_sq: float,
    dy_target_sq: float,
    *,
    ratio_bounds: tuple[float, float] = (1e-3, 1e3),
    grid_per_decade: float = 2.0,
    search_records: int = 200,
    rtol: float = 1e-10,
    atol: float = 1e-14,
) -> RateFit:
    """Fit ``rate_h`` and ``rate_y`` of eq. (7) to a recorded trajectory by minimising eq. (49).

    The objective is the paper's eq. (49) as the authors computed it: the plain sum over records of
    the squared errors of ``dh_sq``, ``dy_sq`` and ``w`` (no weighting), with eq. (7) integrated
    from the *measured* first record ``z[0]`` at time ``t[0]``. Both rates are searched in log
    space, so they are always > 0:

    1. a log-spaced grid over the ratio ``rate_y / rate_h``, plus an estimate read off the conserved
       quantity of eq. (23)-(24), ``dy_sq = q dh_sq + (rate_y/rate_h) dh_sq^2 / dx_sq``. Each ratio
       is scored at its best time scale ``k`` (``rate_h = k``), found from a single solve: eq. (7)
       is unchanged when both rates are multiplied by ``k`` and time is divided by ``k``;
    2. a bounded scalar search over the ratio between the grid neighbours of the best one. Where
       the trajectories on the two sides of a ratio differ in whether the representations pass
       through each other, some ratio in between leads into the saddle at the origin, where the
       objective has a barrier; that ratio is bisected for and each side is searched;
    3. the three best candidates are ranked on all records, and the best is polished by
       Levenberg-Marquardt (``scipy.optimize.least_squares``) on ``(log rate_h, log rate_y)``.

    Steps 1-2 use at most ``search_records`` records (half evenly, half log-spaced in index, so
    early fast transients are seen; weighted to stand for all records). The polish, ``z_theory``
    and ``error`` use all records. No randomness: the same input gives the same output.

    A first record that no output vectors can produce (``|dy_sq - w| > sqrt(dy_sq dy_target_sq)``,
    which :func:`theory.solve` rejects) is projected onto the realisable set before solving: ``w``
    is clipped to the nearest value in ``[dy_sq - sqrt(dy_sq dy_target_sq), dy_sq + sqrt(dy_sq
    dy_target_sq)]``, keeping ``dh_sq`` and ``dy_sq``. Float32 networks with one output sit on this
    boundary up to rounding, so the shift is then a few ulp; ``RateFit.z0`` and
    ``RateFit.projected`` say what was used.

    Parameters
    ----------
    t : array_like, shape (n,)
        Record times (epochs), strictly increasing; ``t[0]`` is usually 0.
    z : array_like, shape (n, 3)
        Records ``(dh_sq, dy_sq, w)``; ``dh_sq``, ``dy_sq`` >= 0 and ``z[0, 0] > 0``.
    dx_sq : float
        ``||x2 - x1||^2`` (> 0).
    dy_target_sq : float
        ``||y2 - y1||^2`` (>= 0).
    ratio_bounds : (float, float), keyword-only
        Range of ``rate_y / rate_h`` for the coarse grid (0 < low < high). The polish may leave it.
    grid_per_decade : float, keyword-only
        Grid points per decade of ratio (> 0).
    search_records : int, keyword-only
        Most records used during the search (>= 3).
    rtol, atol : float, keyword-only
        Integration tolerances of the polish and of the final :func:`theory.solve` (``atol`` applies
        to the signed coordinates ``(||dh||, ...)``; lower it for starts with ``dh_sq`` below ~1e-16).

    Returns
    -------
    RateFit

    Raises
    ------
    ValueError
        If ``t`` is not 1-D, finite and strictly increasing, ``z`` is not a finite (n, 3) array
        with n = len(t) >= 3, a squared distance is negative, ``z[0, 0]`` is 0, or an option is
        out of range. (If the final :func:`theory.solve` fails, the result has ``success=False``
        and NaN ``z_theory`` and ``error`` rather than raising, so a batch of fits carries on.)

    References
    ----------
    van Rossem & Saxe (2024), eq. (7) and App. B.1, "Fitting Procedure", eq. (49).

    Examples
    --------
    >>> t = np.arange(0.0, 3000.0)
    >>> z = theory.solve([1e-4, 1e-8, 0.0], 2e-3, 4e-3, 1.0, 0.5, t)
    >>> fit = fit_rates(t, z, 1.0, 0.5)
    >>> round(fit.rate_h, 6), round(fit.rate_y, 6), fit.error < 1e-6
    (0.002, 0.004, True)
    """
    t, z = _records(t, z)
    dx_sq = float(v.positive("dx_sq", dx_sq))
    dy_target_sq = float(v.non_negative("dy_target_sq", dy_target_sq))
    lo, hi = _bounds("ratio_bounds", ratio_bounds)
    grid_per_decade = float(v.positive("grid_per_decade", grid_per_decade))
    if not isinstance(search_records, (int, np.integer)) or search_records < 3:
        raise ValueError(f"`search_records` must be an integer >= 3, got {search_records!r}")
    if z[0, 0] <= 0:
        raise ValueError(f"`z[0, 0]` is the first ||dh||^2 and must be > 0 (eq. 7 divides by it), got {z[0, 0]!r}")

    z0 = _realisable(z[0], dy_target_sq)
    grid = np.geomspace(lo, hi, max(2, int(round(np.log10(hi / lo) * grid_per_decade)) + 1))
    estimate = _ratio_from_conserved_quantity(z, dx_sq)
    extra = [estimate] if estimate is not None and lo / 10 <= estimate <= hi * 10 else []
    starts = _search(t, z, z0, dx_sq, dy_target_sq, grid, extra, search_records, atol)

    # Local polish of both log-rates on all records, from each start (one unless a barrier splits the
    # ratios into basins); the lowest sum of squares wins. Trial rates more than 3 decades from the
    # start count as failures: there the records no longer constrain the theory (it has settled
    # before the first record, or not moved by the last) and the integrator only wastes time.
    def polish(k, r):
        x0 = np.log([k, k * r])

        def residual(x):
            if np.any(np.abs(x - x0) > _POLISH_REACH):
                return np.full(z.size, penalty)
            res = (_fast_solve(z0, *np.exp(x), dx_sq, dy_target_sq, t, rtol, atol) - z).ravel()
            return res if np.all(np.isfinite(res)) else np.full(z.size, penalty)

        return least_squares(residual, x0, method="lm", diff_step=1e-6, xtol=1e-10, ftol=1e-10, gtol=1e-10,
                             max_nfev=200), x0

    penalty = 1e3 * (np.abs(z).max() + 1.0)
    polished = [polish(k, r) for k, r in starts]
    sol, x0 = min(polished, key=lambda p: p[0].cost)
    ok = bool(sol.status > 0 and np.all(np.abs(sol.x - x0) < _POLISH_REACH) and sol.cost < 0.5 * z.size * penalty**2)
    rate_h, rate_y = (float(val) for val in np.exp(sol.x if ok else x0))
    message = sol.message
    if not _identifiable(sol, z):
        ok = False
        message += " The records do not determine both rates: the theory barely changes with them."
    if not lo * (1 - 1e-6) <= rate_y / rate_h <= hi * (1 + 1e-6):
        message += f" The ratio rate_y/rate_h = {rate_y / rate_h:.3g} lies outside `ratio_bounds`."
        if not lo / 100 <= rate_y / rate_h <= hi * 100:  # ran off: the records do not pin the ratio down
            ok = False
    try:
        z_theory = theory.solve(z0, rate_h, rate_y, dx_sq, dy_target_sq, t, rtol=rtol, atol=atol)
    except RuntimeError as exc:  # keep a batch of fits going; the result says it failed
        z_theory, ok, message = np.full_like(z, np.nan), False, f"{message} {exc}"
    return RateFit(
        rate_h=rate_h,
        rate_y=rate_y,
        z_theory=z_theory,
        error=normalised_error(z, z_theory) if np.all(np.isfinite(z_theory)) else float("nan"),
        success=ok,
        z0=z0,
        projected=bool(np.any(z0 != z[0])),
        message=message,
    )


def fit_recording(recording, *, layer_index: int | None = None, **kwargs) -> list[RateFit]:
    """:func:`fit_rates` for every trial of a :class:`repalign.train.Recording`, one :class:`RateFit` each.

    The pair's distances come from the recording (``settings["dx_sq"]`` and ``["dy_target_sq"]``) and
    time is the epoch count. For a recording of several layers, ``layer_index`` picks the position in
    ``recording.layer`` to fit. Other keyword arguments go to :func:`fit_rates`.

    Examples
    --------
    >>> from dataclasses import replace
    >>> from repalign import data, profiles, train
    >>> d = data.two_point()
    >>> arch = replace(profiles.TABLE1["shallow"], width=32)
    >>> rec = train.train(arch, d.x, d.y, trials=2, epochs=3000, progress=False)
    >>> [f.error < 0.1 for f in fit_recording(rec)]
    [True, True]
    """
    z = recording.z
    if z.ndim == 4:
        if layer_index is None:
            raise ValueError(f"`layer_index` is needed for a recording of layers {recording.layer}: "
                             f"an integer in [0, {z.shape[2]})")
        if not -z.shape[2] <= layer_index < z.shape[2]:
            raise ValueError(f"`layer_index` must be in [0, {z.shape[2]}), got {layer_index}")
        z = z[:, :, layer_index]
    elif layer_index is not None:
        raise ValueError("`layer_index` applies only to recordings of several layers (layer='all')")
    s = recording.settings
    return [fit_rates(recording.epochs, zk, s["dx_sq"], s["dy_target_sq"], **kwargs) for zk in z]


def fit_rate_ybar(
    t,
    z,
    measured_loss,
    dy_target_sq: float,
    offset_sq: float,
    *,
    rate_bounds: tuple[float, float] | None = None,
) -> LossFit:
    """Fit ``rate_ybar = 1/tau_ybar`` of eq. (9) to a measured loss curve, the trajectory held fixed.

    Minimises ``sum_i (L(t_i) - measured_loss_i)^2`` over ``log rate_ybar``, where ``L`` is
    :func:`theory.loss` (eq. 9, with the decay ``exp(-2 rate_ybar t)`` of the mean output) evaluated
    on the given trajectory ``z`` (the fitted ``RateFit.z_theory``, or the measured records). Only the
    first term of eq. (9) depends on ``rate_ybar``; it is searched on a log grid, then refined by a
    bounded scalar minimisation.

    Parameters
    ----------
    t : array_like, shape (n,)
        Record times, strictly increasing, measured from the start of training (the mean output
        ``ybar`` starts at ``t = 0``, as in :func:`theory.loss`).
    z : array_like, shape (n, 3)
        Trajectory ``(dh_sq, dy_sq, w)`` at those times.
    measured_loss : array_like, shape (n,)
        Recorded training loss.
    dy_target_sq : float
        ``||y2 - y1||^2`` (>= 0).
    offset_sq : float
        ``||ybar(0) - (y1 + y2)/2||^2`` (> 0: with no offset ``rate_ybar`` does not enter eq. 9).
    rate_bounds : (float, float) or None, keyword-only
        Range searched for ``rate_ybar``; default from ``1e-3 / t_span`` to ``1e3 / dt_min``, where
        ``t_span = max(t_max, t_max - t_min)`` and ``dt_min`` is the smallest record spacing.

    Returns
    -------
    LossFit

    Raises
    ------
    ValueError
        On bad ``t`` or ``z`` (as in :func:`fit_rates`), ``measured_loss`` not finite or not of shape
        (n,), a negative ``dy_target_sq``, ``offset_sq <= 0``, or bad ``rate_bounds``.

    References
    ----------
    van Rossem & Saxe (2024), eq. (9) / (22) and App. B.1, "Fitting Procedure".

    Examples
    --------
    >>> t = np.arange(0.0, 2000.0)
    >>> z = theory.solve([1e-4, 1e-8, 0.0], 2e-3, 4e-3, 1.0, 0.5, t)
    >>> fit = fit_rate_ybar(t, z, theory.loss(t, z, 3e-3, 0.5, 0.2), 0.5, 0.2)
    >>> round(fit.rate_ybar, 8)
    0.003
    """
    t, z = _records(t, z)
    measured_loss = v.finite_array("measured_loss", measured_loss)
    if measured_loss.shape != t.shape:
        raise ValueError(f"`measured_loss` must have shape {t.shape} to match `t`, got shape {measured_loss.shape}")
    dy_target_sq = float(v.non_negative("dy_target_sq", dy_target_sq))
    offset_sq = float(v.positive("offset_sq", offset_sq))
    if rate_bounds is None:
        span = max(t[-1], t[-1] - t[0])
        if span <= 0:
            raise ValueError("`t` must reach past 0 to identify `rate_ybar`; pass `rate_bounds` otherwise")
        rate_bounds = (1e-3 / span, 1e3 / np.min(np.diff(t)))
    lo, hi = _bounds("rate_bounds", rate_bounds)

    rest = theory.loss(t, z, 1.0, dy_target_sq, 0.0) - measured_loss  # the rate-independent part

    def sse(log_rate):
        return float(np.sum((0.5 * offset_sq * np.exp(-2.0 * np.exp(log_rate) * t) + rest) ** 2))

    grid = np.linspace(np.log(lo), np.log(hi), max(3, int(np.ceil(10 * np.log10(hi / lo)))))
    values = [sse(g) for g in grid]
    i = int(np.argmin(values))
    a, b = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    res = minimize_scalar(sse, bounds=(a, b), method="bounded", options={"xatol": 1e-10})
    log_rate = res.x if res.success and res.fun <= values[i] else grid[i]
    rate_ybar = float(np.exp(log_rate))
    loss_theory = theory.loss(t, z, rate_ybar, dy_target_sq, offset_sq)
    at_bound = np.isclose(log_rate, grid[0], atol=1e-6) or np.isclose(log_rate, grid[-1], atol=1e-6)
    return LossFit(
        rate_ybar=rate_ybar,
        loss_theory=loss_theory,
        error=normalised_error(measured_loss, loss_theory),
        success=bool(res.success and not at_bound),
    )


# --------------------------------------------------------------------------------------------------
# helpers


def _records(t, z) -> tuple[np.ndarray, np.ndarray]:
    """Validate record times and states: t strictly increasing, z (n, 3), n >= 3, distances >= 0."""
    t = v.finite_array("t", t, ndim=1)
    z = v.finite_array("z", z, ndim=2)
    if z.shape[1] != 3:
        raise ValueError(f"`z` must have shape (n, 3) with columns dh_sq, dy_sq, w, got shape {z.shape}")
    if z.shape[0] != t.size:
        raise ValueError(f"`t` and `z` must have the same number of records, got len(t) = {t.size} and "
                         f"len(z) = {z.shape[0]}")
    if t.size < 3:
        raise ValueError(f"`t` and `z` need at least 3 records to fit, got {t.size}")
    if np.any(np.diff(t) <= 0):
        raise ValueError("`t` must be strictly increasing (sort the records by time)")
    if np.any(z[:, :2] < 0):
        raise ValueError("`z[:, 0]` (dh_sq) and `z[:, 1]` (dy_sq) are squared distances and must be >= 0")
    return t, z


def _bounds(name: str, bounds) -> tuple[float, float]:
    arr = v.positive(name, bounds)
    if arr.shape != (2,) or not arr[0] < arr[1]:
        raise ValueError(f"`{name}` must be a pair (low, high) with 0 < low < high, got {bounds!r}")
    return float(arr[0]), float(arr[1])


def _search(t, z, z0, dx_sq, dy_target_sq, grid, extra, search_records, atol) -> list[tuple[float, float]]:
    """Starting points ``(k, r)`` (``rate_h = k``, ``rate_y = k r``) for the polish, best first.

    Each candidate ratio (the log-spaced ``grid`` and the ``extra`` estimates) is scored by its best
    time scale (:func:`_profile`) on the search records. The best is refined by a bounded scalar
    search between its neighbours on the grid. Where, between two ratios, the theory switches
    between trajectories whose representations cross (``||dh||`` passes through 0) and ones that
    do not, some ratio in between sends the trajectory into the saddle at the origin (an endless
    plateau): the objective has a barrier there and a basin on each side, so that ratio is found by
    bisection, each side is searched, and each side contributes a starting point. Candidates are
    compared on all records, since the search records can miss a fast transient between them.
    """
    idx, weight = _search_records(t.size, search_records)
    tau, zs = t[idx] - t[0], z[idx]
    scored = {}  # log ratio -> (sse on the search records, best time scale k, crossed)

    def score(log_ratio):
        if log_ratio not in scored:
            scored[log_ratio] = _profile(z0, float(np.exp(log_ratio)), dx_sq, dy_target_sq, tau, zs, weight, atol)
        return scored[log_ratio][0]

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
                same = _reference(z0, float(np.exp(mid)), dx_sq, dy_target_sq, atol)[2] == crossed
                a, b = (mid, b) if same else (a, mid)
            intervals.append((left, a))
            left = b
    intervals.append((left, bracket[-1]))
    for a, b in intervals:
        if b - a > 0.02:
            minimize_scalar(score, bounds=(a, b), method="bounded", options={"xatol": 0.01, "maxiter": 12})

    full = {}  # log ratio -> sum of squares on all records at its best time scale

    def full_sse(x):
        if x not in full:
            k = scored[x][1]
            full[x] = np.sum((_fast_solve(z0, k, k * np.exp(x), dx_sq, dy_target_sq, t, 1e-8, atol) - z) ** 2)
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


def _identifiable(sol, z: np.ndarray) -> bool:
    """Whether the polished fit pins both log-rates down.

    Two tests on the Jacobian ``J`` of the residuals with respect to the log-rates: the theory must
    move, rms over records, by at least 1e-6 of each quantity's range per unit change of the
    log-rates in their least sensitive direction (fails for records that never move, or sit at a
    fixed point); and the Gauss-Newton standard errors of the log-rates, ``sqrt(diag(s^2 (J^T
    J)^-1))`` with ``s^2`` the residual variance, must stay below 1 (a factor e; fails where the
    theory only changes in a record or two). Sums use einsum, which keeps BLAS threads out.
    """
    jac = sol.jac
    if not np.all(np.isfinite(jac)):
        return False
    scaled = (jac.reshape(-1, 3, 2) / _scales(z)[:, None]).reshape(-1, 2)
    if np.linalg.eigvalsh(np.einsum("ij,ik->jk", scaled, scaled) / z.size)[0] < 1e-12:
        return False
    gram = np.einsum("ij,ik->jk", jac, jac)
    variance = 2.0 * sol.cost / max(z.size - 2, 1)
    try:
        with np.errstate(all="ignore"):
            se = np.sqrt(variance * np.diag(np.linalg.inv(gram)))
    except np.linalg.LinAlgError:
        return False
    return bool(np.all(np.isfinite(se)) and np.all(se < 1.0))


def _search_records(n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """About ``m`` record indices, half evenly spaced and half log-spaced (early transients are fast),
    with weights (the number of records each stands for) so that weighted sums approximate sums over all."""
    if n <= m:
        return np.arange(n), np.ones(n)
    idx = np.unique(np.concatenate([np.round(np.linspace(0, n - 1, m // 2)),
                                    np.round(np.geomspace(1, n - 1, m - m // 2))]).astype(int))
    weight = np.diff(np.concatenate([[idx[0]], idx, [idx[-1]]]).astype(float))
    weight = 0.5 * (weight[:-1] + weight[1:])
    weight[[0, -1]] += 0.5  # the end records stand for themselves too: weights sum to n
    return idx, weight


def _realisable(z0: np.ndarray, dy_target_sq: float) -> np.ndarray:
    """Clip w into [dy_sq - sqrt(dy_sq B), dy_sq + sqrt(dy_sq B)] (Cauchy-Schwarz), keeping dh_sq, dy_sq."""
    dh_sq, dy_sq, w = z0
    half = np.sqrt(dy_sq * dy_target_sq)
    return np.array([dh_sq, dy_sq, float(np.clip(w, dy_sq - half, dy_sq + half))])


def _ratio_from_conserved_quantity(z: np.ndarray, dx_sq: float) -> float | None:
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


_PER_DECADE = 80  # reference grid points per decade of time; linear interpolation in log time
_POLISH_REACH = np.log(1e3)  # the polish treats rates 3 decades from its start as failures


# The search and the polish integrate eq. (7) in the signed coordinates that `theory.solve` uses (see
# the comment below `theory.solve`), with `scipy.integrate.odeint` and a plain-float right-hand side:
# it agrees with `theory.solve` to the tolerances (tests/test_fit.py checks it) and runs about five times
# faster, which matters because a fit needs ~30-60 solves. The reported trajectory is `theory.solve`'s.


def _signed_rhs(y, s, k, r, b):
    alpha, m_par, m_perp = y
    return [-k * (alpha * (m_par * m_par + m_perp * m_perp) - m_par * b),
            -r * alpha * (alpha * m_par - b),
            -r * alpha * alpha * m_perp]


def _signed_jac(y, s, k, r, b):
    alpha, m_par, m_perp = y
    return [[-k * (m_par * m_par + m_perp * m_perp), -k * (2.0 * alpha * m_par - b), -2.0 * k * alpha * m_perp],
            [-r * (2.0 * alpha * m_par - b), -r * alpha * alpha, 0.0],
            [-2.0 * r * alpha * m_perp, 0.0, -r * alpha * alpha]]


def _fast_solve(z0, rate_h, rate_y, dx_sq, dy_target_sq, times, rtol, atol):
    """Eq. (7) from the realisable ``z0`` at ``times[0]``, shape (n, 3); NaN if the integrator fails."""
    return _integrate(z0, rate_h, rate_y, dx_sq, dy_target_sq, times, rtol, atol)[0]


def _integrate(z0, rate_h, rate_y, dx_sq, dy_target_sq, times, rtol, atol):
    """Eq. (7) in the signed coordinates: the states (n, 3) and the signed ``alpha = +-||dh||`` (n,)."""
    dh_sq, dy_sq, w = z0
    b, alpha = np.sqrt(dy_target_sq), np.sqrt(dh_sq)
    m_par = (dy_sq - w) / (alpha * b) if b > 0 else 0.0
    y0 = [alpha, m_par, np.sqrt(max(dy_sq / dh_sq - m_par**2, 0.0))]
    with warnings.catch_warnings():  # a failed trial solve is reported through `info`, not a warning
        warnings.simplefilter("ignore", ODEintWarning)
        y, info = odeint(_signed_rhs, y0, times, args=(0.5 * rate_h * dx_sq, 0.5 * rate_y, b), Dfun=_signed_jac,
                         rtol=rtol, atol=atol, mxstep=20_000, full_output=True)
    if info["message"] != "Integration successful." or not np.all(np.isfinite(y)):
        return np.full((len(times), 3), np.nan), np.full(len(times), np.nan)
    alpha, m_par, m_perp = y.T
    dh_sq = alpha**2
    dy_sq = dh_sq * (m_par**2 + m_perp**2)
    return np.column_stack([dh_sq, dy_sq, dy_sq - alpha * m_par * b]), alpha


def _reference(z0, ratio, dx_sq, dy_target_sq, atol):
    """Eq. (7) with rates (1, ratio) from z0, on a log time grid reaching its fixed point.

    Returns ``(log_s, zs, crossed)``: ``zs[i]`` is the state at time ``exp(log_s[i])``; ``crossed``
    says whether the representations pass through each other (the signed ``||dh||`` ends negative).
    """
    dh_sq, dy_sq, w = z0
    # Rough rates of the fastest process at the start (the plateau escape rate ~ ratio * A_low and
    # the terms of eq. 7) and of the slowest one at the end (eq. 7 linearised at the fixed point
    # of eq. 10). The grid runs from 6 decades before the first to 4 decades past the second, and
    # further out if the trajectory has not settled by then.
    fast = np.sqrt(ratio * dx_sq * dy_target_sq) + ratio * dh_sq + dx_sq * (dy_sq + abs(w)) / dh_sq
    h_end = float(theory.final_distance(dh_sq, dy_sq, dx_sq, dy_target_sq, 1.0, ratio).distance)
    slow = min(fast, ratio * h_end + dx_sq * dy_target_sq / h_end) if h_end > 0 else fast
    start, decades = np.log10(1e-6 / fast), np.log10(1e4 / slow) - np.log10(1e-6 / fast)
    for extra in (0, 3, 6):
        n = int(np.ceil((decades + extra) * _PER_DECADE))
        s = np.concatenate([[0.0], np.logspace(start, start + n / _PER_DECADE, n + 1)])
        zs, alpha = _integrate(z0, 1.0, ratio, dx_sq, dy_target_sq, s, 1e-8, atol)
        span = np.ptp(zs, axis=0)
        span = np.where(span > 0, span, 1.0)
        if not np.max(np.abs(zs[-1] - zs[-_PER_DECADE]) / span) > 1e-7:  # settled over the last decade (or failed)
            break
    return np.log(s[1:]), zs[1:], bool(alpha[-1] < 0)


def _profile(z0, ratio, dx_sq, dy_target_sq, tau, zs, weight, atol):
    """Best weighted eq.-(49) sum of squares over the time scale ``k`` for one ratio: ``(sse, k, crossed)``."""
    log_s, ref, crossed = _reference(z0, ratio, dx_sq, dy_target_sq, atol)
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
