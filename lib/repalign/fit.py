"""Fitting the effective learning rates to recorded training dynamics (App. B.1, eq. 49).

:func:`fit_rates` finds ``rate_h = 1/tau_h`` and ``rate_y = 1/tau_y`` of eq. (7) for a recorded
trajectory ``(dh_sq, dy_sq, w)``; :func:`fit_rate_ybar` then finds ``rate_ybar = 1/tau_ybar`` of eq. (9)
for the recorded loss with that trajectory held fixed. :func:`normalised_error` is the fit error both
report, comparable across architectures and runs.

The search for starting rates and the fast solver it uses live in :mod:`repalign._fit_search`; the
record helpers shared with :mod:`repalign.falsification` in :mod:`repalign._records`.

Only ``rate_h * dx_sq`` enters eq. (7), so ``rate_h`` is fitted for the ``dx_sq`` given; a wrong
``dx_sq`` rescales ``rate_h`` and leaves the fit error unchanged, while a wrong ``dy_target_sq``
shows up in the error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize_scalar

from . import _fit_search, _records, theory
from . import _validate as v

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
        factor e); ``tau_h/tau_y`` stayed within 100 x ``tau_h_over_tau_y_bounds``; and :func:`theory.solve`
        succeeded. ``message`` says which failed.
    z0 : numpy.ndarray, shape (3,)
        The start the theory was integrated from: the first record, projected onto the realisable
        set if needed (see :func:`fit_rates`).
    projected : bool
        Whether ``z0`` differs from the first record.
    message : str
        The optimiser's message, plus a note where the rates are not identifiable or
        ``tau_h/tau_y`` lies outside ``tau_h_over_tau_y_bounds``.

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
    def tau_h_over_tau_y(self) -> float:
        """``rate_y / rate_h = tau_h / tau_y``, the only combination eqs. (10)-(11) depend on."""
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
    return float(v.finite_output(np.mean(np.sqrt(np.mean((p - m) ** 2, axis=0)) / _records.scales(m)),
                                 "the normalised error", "rescale `measured` and `predicted`"))


def fit_rates(
    t,
    z,
    dx_sq: float,
    dy_target_sq: float,
    *,
    tau_h_over_tau_y_bounds: tuple[float, float] = (1e-3, 1e3),
    grid_per_decade: float = 2.0,
    search_records: int = 200,
    rtol: float = 1e-10,
    atol: float = 1e-14,
) -> RateFit:
    """Fit ``rate_h`` and ``rate_y`` of eq. (7) to a recorded trajectory by minimising eq. (49).

    The objective is the paper's eq. (49) as the authors computed it: the plain sum over records of
    the squared errors of ``dh_sq``, ``dy_sq`` and ``w`` (no weighting), with eq. (7) integrated
    from the *measured* first record ``z[0]`` at time ``t[0]``, projected onto the realisable set
    where rounding put it outside (``RateFit.z0``, ``RateFit.projected``; see :func:`_realisable`).
    Both log-rates are searched: a grid over ``tau_h/tau_y = rate_y/rate_h`` scored at the best time
    scale on at most ``search_records`` records (:func:`repalign._fit_search.search`), then
    Levenberg-Marquardt at all records (:func:`repalign._fit_search.polish`). No randomness.

    Parameters
    ----------
    t : array_like, shape (n,)
        Record times (epochs), strictly increasing; ``t[0]`` is usually 0.
    z : array_like, shape (n, 3)
        Records ``(dh_sq, dy_sq, w)``; ``dh_sq``, ``dy_sq`` >= 0 and ``z[0, 0] > 0``.
    dx_sq, dy_target_sq : float
        ``||x2 - x1||^2`` (> 0) and ``||y2 - y1||^2`` (>= 0).
    tau_h_over_tau_y_bounds : (float, float), keyword-only
        Range of ``rate_y / rate_h`` for the coarse grid (0 < low < high). The polish may leave it.
    grid_per_decade : float, keyword-only
        Grid points per decade of ``tau_h/tau_y`` (> 0).
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
        On bad records (:func:`repalign._records.validate`), ``z[0, 0] = 0``, a negative squared
        distance or an option out of range. (A failed final :func:`theory.solve` gives
        ``success=False`` and NaN ``z_theory`` and ``error``, so a batch of fits carries on.)

    References
    ----------
    van Rossem & Saxe (2024), eq. (7) and App. B.1, "Fitting Procedure", eq. (49).

    Examples
    --------
    >>> t = np.arange(0.0, 3000.0)
    >>> z = theory.solve([1e-4, 1e-8, 0.0], t, rate_h=2e-3, rate_y=4e-3, dx_sq=1.0, dy_target_sq=0.5)
    >>> fit = fit_rates(t, z, 1.0, 0.5)
    >>> round(fit.rate_h, 6), round(fit.rate_y, 6), fit.error < 1e-6
    (0.002, 0.004, True)
    """
    t, z = _records.validate(t, z)
    dx_sq = float(v.positive("dx_sq", dx_sq))
    dy_target_sq = float(v.non_negative("dy_target_sq", dy_target_sq))
    rtol, atol = v.tolerance("rtol", rtol), v.tolerance("atol", atol)
    lo, hi, grid = _search_grid(z, tau_h_over_tau_y_bounds, grid_per_decade, search_records)
    z0 = _realisable(z[0], dy_target_sq)
    estimate = _fit_search.tau_h_over_tau_y_from_conserved_quantity(z, dx_sq)
    extra = [estimate] if estimate is not None and lo / 10 <= estimate <= hi * 10 else []
    starts = _fit_search.search(t, z, z0, dx_sq, dy_target_sq, grid, extra, search_records, atol)
    sol, x0, ok = _fit_search.polish(t, z, z0, dx_sq, dy_target_sq, starts, rtol, atol)
    rate_h, rate_y = (float(val) for val in np.exp(sol.x if ok else x0))
    ok, message = _verdict(sol, z, ok, rate_y / rate_h, lo, hi)
    try:
        z_theory = theory.solve(z0, t, rate_h=rate_h, rate_y=rate_y, dx_sq=dx_sq, dy_target_sq=dy_target_sq,
                                rtol=rtol, atol=atol)
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
    from .recording import Recording

    recording = v.instance("recording", recording, Recording, "what repalign.train.train returns",
                           duck=("loss", "settings"))
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
    >>> z = theory.solve([1e-4, 1e-8, 0.0], t, rate_h=2e-3, rate_y=4e-3, dx_sq=1.0, dy_target_sq=0.5)
    >>> loss = theory.loss(t, z, rate_ybar=3e-3, dy_target_sq=0.5, offset_sq=0.2)
    >>> fit = fit_rate_ybar(t, z, loss, 0.5, 0.2)
    >>> round(fit.rate_ybar, 8)
    0.003
    """
    t, z = _records.validate(t, z)
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
    rest = theory.loss(t, z, rate_ybar=1.0, dy_target_sq=dy_target_sq, offset_sq=0.0) - measured_loss  # rate-free part

    def sse(log_rate):
        return float(np.sum((0.5 * offset_sq * np.exp(-2.0 * np.exp(log_rate) * t) + rest) ** 2))

    log_rate, success = _minimise_on_log_grid(sse, lo, hi)
    rate_ybar = float(np.exp(log_rate))
    loss_theory = theory.loss(t, z, rate_ybar=rate_ybar, dy_target_sq=dy_target_sq, offset_sq=offset_sq)
    return LossFit(
        rate_ybar=rate_ybar,
        loss_theory=loss_theory,
        error=normalised_error(measured_loss, loss_theory),
        success=success,
    )


# --------------------------------------------------------------------------------------------------
# helpers


def _minimise_on_log_grid(sse, lo: float, hi: float) -> tuple[float, bool]:
    """Minimise ``sse(log_rate)`` over ``[log lo, log hi]``: a grid of 10 points a decade, then a bounded
    scalar search between the best point's neighbours. Returns the log-rate and whether the search
    converged away from the ends of the range."""
    grid = np.linspace(np.log(lo), np.log(hi), max(3, int(np.ceil(10 * np.log10(hi / lo)))))
    values = [sse(g) for g in grid]
    i = int(np.argmin(values))
    a, b = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    res = minimize_scalar(sse, bounds=(a, b), method="bounded", options={"xatol": 1e-10})
    log_rate = res.x if res.success and res.fun <= values[i] else grid[i]
    at_bound = np.isclose(log_rate, grid[0], atol=1e-6) or np.isclose(log_rate, grid[-1], atol=1e-6)
    return log_rate, bool(res.success and not at_bound)


MAX_GRID_PER_DECADE = 1000
"""Finest search grid :func:`fit_rates` accepts, in points per decade of ``tau_h/tau_y``."""


def _search_grid(z, bounds, grid_per_decade, search_records) -> tuple[float, float, np.ndarray]:
    """Check the search options of :func:`fit_rates`; the bounds and the log-spaced grid of ``tau_h/tau_y``."""
    lo, hi = _bounds("tau_h_over_tau_y_bounds", bounds)
    grid_per_decade = float(v.positive("grid_per_decade", grid_per_decade))
    if grid_per_decade > MAX_GRID_PER_DECADE:
        raise ValueError(f"`grid_per_decade` must be at most {MAX_GRID_PER_DECADE} (each grid point is a "
                         f"solve of eq. 7), got {grid_per_decade!r}")
    if not isinstance(search_records, (int, np.integer)) or search_records < 3:
        raise ValueError(f"`search_records` must be an integer >= 3, got {search_records!r}")
    if z[0, 0] <= 0:
        raise ValueError(f"`z[0, 0]` is the first ||dh||^2 and must be > 0 (eq. 7 divides by it), got {z[0, 0]!r}")
    return lo, hi, np.geomspace(lo, hi, max(2, int(round(np.log10(hi / lo) * grid_per_decade)) + 1))


def _verdict(sol, z: np.ndarray, ok: bool, tau_h_over_tau_y: float, lo: float, hi: float) -> tuple[bool, str]:
    """``RateFit.success`` and ``message`` after the polish: identifiable, and ``tau_h/tau_y`` near its bounds."""
    message = sol.message
    if not _identifiable(sol, z):
        ok = False
        message += " The records do not determine both rates: the theory barely changes with them."
    if not lo * (1 - 1e-6) <= tau_h_over_tau_y <= hi * (1 + 1e-6):
        message += f" tau_h/tau_y = rate_y/rate_h = {tau_h_over_tau_y:.3g} lies outside `tau_h_over_tau_y_bounds`."
        if not lo / 100 <= tau_h_over_tau_y <= hi * 100:  # ran off: the records do not pin tau_h/tau_y down
            ok = False
    return ok, message


def _bounds(name: str, bounds) -> tuple[float, float]:
    arr = v.positive(name, bounds)
    if arr.shape != (2,) or not arr[0] < arr[1]:
        raise ValueError(f"`{name}` must be a pair (low, high) with 0 < low < high, got {bounds!r}")
    return float(arr[0]), float(arr[1])


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
    scaled = (jac.reshape(-1, 3, 2) / _records.scales(z)[:, None]).reshape(-1, 2)
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


def _realisable(z0: np.ndarray, dy_target_sq: float) -> np.ndarray:
    """Clip w into [dy_sq - sqrt(dy_sq B), dy_sq + sqrt(dy_sq B)] (Cauchy-Schwarz), keeping dh_sq, dy_sq.

    A first record that no output vectors can produce (``|dy_sq - w| > sqrt(dy_sq dy_target_sq)``,
    which :func:`theory.solve` rejects) is moved to the nearest realisable ``w``. Float32 networks
    with one output sit on this boundary up to rounding, so the shift is then a few ulp.
    """
    dh_sq, dy_sq, w = z0
    half = np.sqrt(dy_sq * dy_target_sq)
    return np.array([dh_sq, dy_sq, float(np.clip(w, dy_sq - half, dy_sq + half))])
