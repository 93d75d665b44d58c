"""Unit tests for repalign.fit: fitting the effective learning rates (App. B.1, eq. 49).

The evidence is synthetic data with known rates: trajectories made by `theory.solve` (eq. 7) and loss
curves made by `theory.loss` (eq. 9), exact or with seeded noise, and trajectories of a different
system (another target distance) that no choice of rates reproduces. Timing is measured by
benchmarks/fit.py, not asserted here.
"""

from __future__ import annotations

import numpy as np
import pytest

from repalign import _fit_search, fit
from repalign import theory as th

DX_SQ, DY_TARGET_SQ = 1.0, 0.5  # the two-point distances of the authors' code
T = np.arange(6000.0)  # epochs, one record each

SMALL = th.initial_state(1e-6, 1e-9, 0.2, dy_target_sq=DY_TARGET_SQ)  # small weights: a plateau, then an escape
MEDIUM = th.initial_state(1e-2, 1e-3, 0.5, dy_target_sq=DY_TARGET_SQ)  # a short plateau
LARGE = th.initial_state(1.0, 1.0, -0.5, dy_target_sq=DY_TARGET_SQ)  # large weights: immediate decay

# (start, rate_h, rate_y): ratios rate_y/rate_h of 0.1, 1 and 10, rates from 1e-4 to 1e-1.
CASES = [
    pytest.param(SMALL, 1e-2, 1e-2, id="small-ratio1"),
    pytest.param(SMALL, 1e-3, 1e-2, id="small-ratio10"),
    pytest.param(SMALL, 1e-2, 1e-3, id="small-ratio0.1"),
    pytest.param(SMALL, 1e-1, 1e-2, id="small-fast-ratio0.1"),
    pytest.param(MEDIUM, 3e-4, 3e-3, id="medium-slow-ratio10"),
    pytest.param(LARGE, 1e-3, 1e-3, id="large-ratio1"),
    pytest.param(LARGE, 1e-4, 1e-3, id="large-slow-ratio10"),
    pytest.param(LARGE, 1e-3, 1e-4, id="large-slow-ratio0.1"),
    pytest.param(LARGE, 1e-1, 1e-1, id="large-fast-ratio1"),
]


def _trajectory(z0, rate_h, rate_y, dy_target_sq=DY_TARGET_SQ, t=T):
    return th.solve(z0, t, rate_h=rate_h, rate_y=rate_y, dx_sq=DX_SQ, dy_target_sq=dy_target_sq)


def _assert_identifiable(z, z0, rate_h, rate_y):
    """The case is meaningful: the recording gets at least half-way to the fixed point of eq. (10)."""
    final = float(th.final_distance(z0[0], z0[1], rate_h=rate_h, rate_y=rate_y, dx_sq=DX_SQ, dy_target_sq=DY_TARGET_SQ).distance)
    assert abs(z[-1, 0] - z0[0]) >= 0.5 * abs(final - z0[0])


def _noisy(z, level, seed):
    """Add Gaussian noise of `level` x each quantity's range; keep squared distances >= 0 and z[0] exact."""
    rng = np.random.default_rng(seed)
    out = z + rng.normal(size=z.shape) * level * np.ptp(z, axis=0)
    out[:, :2] = np.abs(out[:, :2])
    out[0] = z[0]
    return out


# --------------------------------------------------------------------------------------------------
# recovering known rates


@pytest.mark.parametrize("z0, rate_h, rate_y", CASES)
def test_recovers_known_rates_exactly(z0, rate_h, rate_y):
    z = _trajectory(z0, rate_h, rate_y)
    _assert_identifiable(z, z0, rate_h, rate_y)
    result = fit.fit_rates(T, z, DX_SQ, DY_TARGET_SQ)
    assert result.success, result.message
    np.testing.assert_allclose([result.rate_h, result.rate_y], [rate_h, rate_y], rtol=1e-3)
    assert result.tau_h_over_tau_y == pytest.approx(rate_y / rate_h, rel=1e-3)
    assert result.error < 1e-6
    assert result.z_theory.shape == z.shape
    np.testing.assert_allclose(result.z_theory[0], z[0])
    assert not result.projected


@pytest.mark.parametrize("z0, rate_h, rate_y", [CASES[0], CASES[1], CASES[2], CASES[5], CASES[7]])
def test_recovers_known_rates_from_noisy_records(z0, rate_h, rate_y):
    """Noise of 1 % of each quantity's range: rates within 5 %, error near the noise level."""
    z = _noisy(_trajectory(z0, rate_h, rate_y), 0.01, seed=3)
    result = fit.fit_rates(T, z, DX_SQ, DY_TARGET_SQ)
    assert result.success, result.message
    np.testing.assert_allclose([result.rate_h, result.rate_y], [rate_h, rate_y], rtol=0.05)
    assert 0.005 < result.error < 0.02  # ~ the 1 % noise: the residual is the noise


def test_records_not_starting_at_zero():
    """t[0] need not be 0: the theory starts from the first record at its own time."""
    z = _trajectory(SMALL, 3e-3, 6e-3)
    result = fit.fit_rates(T[500:], z[500:], DX_SQ, DY_TARGET_SQ)
    np.testing.assert_allclose([result.rate_h, result.rate_y], [3e-3, 6e-3], rtol=1e-3)
    assert result.error < 1e-6


def test_identical_targets():
    """dy_target_sq = 0 (App. A.4): no A_low, dh_sq decays logistically; the fit still recovers the rates."""
    z0 = th.initial_state(0.5, 0.3, 1.0, dy_target_sq=0.0)
    z = th.solve(z0, T, rate_h=1e-3, rate_y=2e-3, dx_sq=DX_SQ, dy_target_sq=0.0)
    result = fit.fit_rates(T, z, DX_SQ, 0.0)
    np.testing.assert_allclose([result.rate_h, result.rate_y], [1e-3, 2e-3], rtol=1e-3)


def test_unrealisable_first_record_is_projected():
    """A first record just outside Cauchy-Schwarz (as float32 with one output gives) is projected, not rejected."""
    z = _trajectory(th.initial_state(1e-4, 1e-6, -1.0, dy_target_sq=DY_TARGET_SQ), 3e-3, 6e-3)
    z[0, 2] = z[0, 1] + np.sqrt(z[0, 1] * DY_TARGET_SQ) * (1 + 1e-5)  # beyond the boundary cos = -1
    with pytest.raises(ValueError, match="not realisable"):
        th.solve(z[0], [0.0, 1.0], rate_h=3e-3, rate_y=6e-3, dx_sq=DX_SQ, dy_target_sq=DY_TARGET_SQ)
    result = fit.fit_rates(T, z, DX_SQ, DY_TARGET_SQ)
    assert result.projected
    d, w = result.z0[1], result.z0[2]
    assert abs(d - w) == pytest.approx(np.sqrt(d * DY_TARGET_SQ), rel=1e-12)  # on the boundary
    np.testing.assert_array_equal(result.z0[:2], z[0, :2])
    np.testing.assert_allclose([result.rate_h, result.rate_y], [3e-3, 6e-3], rtol=1e-3)


def test_two_basins_either_side_of_the_saddle():
    """A start that decays towards the origin: a ratio near 0.115 sends eq. (7) into the saddle at
    the origin (an endless plateau), with representations that cross on one side and not on the
    other. The objective has a basin on each side; the search must look on both."""
    z0 = th.initial_state(0.025, 0.006, -0.07, dy_target_sq=DY_TARGET_SQ)
    rate_h, rate_y = 0.0142, 0.00186  # ratio 0.131, just past the barrier
    crossed = [_fit_search.reference(z0, ratio, DX_SQ, DY_TARGET_SQ, 1e-14)[2] for ratio in (0.1, 0.131, 0.3)]
    assert crossed == [True, False, False]  # the barrier lies between the grid ratios 0.1 and 0.316
    z = _trajectory(z0, rate_h, rate_y)
    exact = fit.fit_rates(T, z, DX_SQ, DY_TARGET_SQ)
    np.testing.assert_allclose([exact.rate_h, exact.rate_y], [rate_h, rate_y], rtol=1e-3)
    noisy = fit.fit_rates(T, _noisy(z, 0.05, seed=0), DX_SQ, DY_TARGET_SQ)
    np.testing.assert_allclose([noisy.rate_h, noisy.rate_y], [rate_h, rate_y], rtol=0.05)


def test_dynamics_that_settle_within_a_few_epochs():
    """Fast rates: everything happens in the first ~50 of 6000 records. The polish must not run off
    towards infinite rates (where the theory settles before the first record)."""
    z0 = np.array([8.71036593e-04, 9.31437133e-06, 1.17929129e-03])
    rate_h, rate_y = 0.0283, 0.454
    z = _noisy(_trajectory(z0, rate_h, rate_y), 0.01, seed=2)
    result = fit.fit_rates(T, z, DX_SQ, DY_TARGET_SQ)
    assert result.success, result.message
    np.testing.assert_allclose([result.rate_h, result.rate_y], [rate_h, rate_y], rtol=0.05)


def test_records_the_theory_cannot_follow_are_flagged():
    """Random records: whatever the optimiser returns, success is False and the error is large."""
    rng = np.random.default_rng(0)
    z = np.abs(rng.normal(size=(500, 3)))
    z[:, 2] = 0.1 * rng.normal(size=500)
    result = fit.fit_rates(np.arange(500.0), z, DX_SQ, DY_TARGET_SQ)
    assert not result.success
    assert result.error > 0.1


def test_flat_records_are_not_identifiable():
    """Records that never move (or sit at a fixed point) fit any small enough rates: success is False."""
    flat = np.tile([0.3, 0.2, 0.01], (100, 1))
    result = fit.fit_rates(np.arange(100.0), flat, DX_SQ, DY_TARGET_SQ)
    assert not result.success
    assert "do not determine both rates" in result.message
    assert result.error < 1e-6


# --------------------------------------------------------------------------------------------------
# the normalised error discriminates


@pytest.mark.parametrize("z0", [SMALL, LARGE], ids=["small", "large"])
def test_error_discriminates_a_different_system(z0):
    """Exact data fit to ~0; data from another target distance cannot be fitted by any rates."""
    exact = fit.fit_rates(T, _trajectory(z0, 3e-3, 6e-3), DX_SQ, DY_TARGET_SQ)
    other = fit.fit_rates(T, _trajectory(z0, 3e-3, 6e-3, dy_target_sq=0.8), DX_SQ, DY_TARGET_SQ)
    assert exact.error < 1e-6
    assert other.error > 0.05
    assert other.error > 1e4 * exact.error


def test_normalised_error_definition():
    measured = np.column_stack([np.linspace(0.0, 2.0, 5), np.full(5, 3.0), np.zeros(5)])
    predicted = measured + np.array([0.2, 0.3, 0.5])
    # per column: 0.2 / range 2, 0.3 / max-abs 3 (constant column), 0.5 / 1 (all zero); then the mean
    assert fit.normalised_error(measured, predicted) == pytest.approx((0.1 + 0.1 + 0.5) / 3)
    # dimensionless: rescaling a quantity that moves or is constant but non-zero changes nothing
    assert fit.normalised_error(1e6 * measured[:, :2], 1e6 * predicted[:, :2]) == pytest.approx(0.1)
    assert fit.normalised_error(measured[:, 0], measured[:, 0]) == 0.0
    with pytest.raises(ValueError, match="same shape"):
        fit.normalised_error(measured, predicted[:, :2])


# --------------------------------------------------------------------------------------------------
# the loss rate (eq. 9)


def test_fit_rate_ybar_recovers_known_rate():
    z = _trajectory(SMALL, 3e-3, 6e-3)
    measured = th.loss(T, z, rate_ybar=2e-3, dy_target_sq=DY_TARGET_SQ, offset_sq=0.3)
    result = fit.fit_rate_ybar(T, z, measured, DY_TARGET_SQ, 0.3)
    assert result.success
    assert result.rate_ybar == pytest.approx(2e-3, rel=1e-6)
    assert result.error < 1e-6
    np.testing.assert_allclose(result.loss_theory, measured, rtol=1e-6, atol=1e-12)


def test_fit_rate_ybar_after_fit_rates_with_noise():
    """The paper's two steps on noisy records: rates from the trajectory, then rate_ybar from the loss."""
    z = _trajectory(LARGE, 1e-3, 2e-3)
    loss = th.loss(T, z, rate_ybar=5e-3, dy_target_sq=DY_TARGET_SQ, offset_sq=0.2)
    rates = fit.fit_rates(T, _noisy(z, 0.01, seed=4), DX_SQ, DY_TARGET_SQ)
    noisy_loss = loss + np.random.default_rng(5).normal(size=loss.shape) * 0.01 * np.ptp(loss)
    result = fit.fit_rate_ybar(T, rates.z_theory, noisy_loss, DY_TARGET_SQ, 0.2)
    assert result.success
    assert result.rate_ybar == pytest.approx(5e-3, rel=0.05)
    assert result.error < 0.02


# --------------------------------------------------------------------------------------------------
# determinism, consistency, docstrings


def test_same_input_same_output():
    z = _noisy(_trajectory(SMALL, 1e-3, 1e-2), 0.01, seed=7)
    a, b = fit.fit_rates(T, z, DX_SQ, DY_TARGET_SQ), fit.fit_rates(T, z.copy(), DX_SQ, DY_TARGET_SQ)
    assert (a.rate_h, a.rate_y, a.error, a.success) == (b.rate_h, b.rate_y, b.error, b.success)
    np.testing.assert_array_equal(a.z_theory, b.z_theory)
    with pytest.raises(AttributeError):
        a.rate_h = 1.0  # frozen
    loss = th.loss(T, z, rate_ybar=1e-3, dy_target_sq=DY_TARGET_SQ, offset_sq=0.1)
    assert fit.fit_rate_ybar(T, z, loss, DY_TARGET_SQ, 0.1).rate_ybar == fit.fit_rate_ybar(
        T, z, loss, DY_TARGET_SQ, 0.1).rate_ybar


@pytest.mark.parametrize("z0, rate_h, rate_y", [CASES[0], CASES[2], CASES[6]])
def test_internal_integrator_matches_theory_solve(z0, rate_h, rate_y):
    """The search and polish integrate eq. (7) themselves (faster); it must agree with theory.solve."""
    expected = _trajectory(z0, rate_h, rate_y)
    got = _fit_search.fast_solve(z0, rate_h, rate_y, DX_SQ, DY_TARGET_SQ, T, 1e-10, 1e-14)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9 * np.abs(expected).max())


# --------------------------------------------------------------------------------------------------
# bad input

_Z = np.column_stack([np.linspace(1e-4, 0.5, 5), np.linspace(1e-6, 0.4, 5), np.zeros(5)])
_t = np.arange(5.0)


def _with(array, index, value):
    out = np.array(array, dtype=float)
    out[index] = value
    return out


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((_t[:4], _Z, DX_SQ, DY_TARGET_SQ), {}, "`t` and `z` must have the same number of records"),
        ((_t, _Z[:, :2], DX_SQ, DY_TARGET_SQ), {}, r"`z` must have shape \(n, 3\)"),
        ((_t, _Z[0], DX_SQ, DY_TARGET_SQ), {}, "`z` must be 2-dimensional"),
        ((_t[:2], _Z[:2], DX_SQ, DY_TARGET_SQ), {}, "at least 3 records"),
        ((_with(_t, 2, np.nan), _Z, DX_SQ, DY_TARGET_SQ), {}, "`t` must be finite"),
        ((_t, _with(_Z, (3, 2), np.inf), DX_SQ, DY_TARGET_SQ), {}, "`z` must be finite"),
        ((_t, _with(_Z, (2, 0), -1e-3), DX_SQ, DY_TARGET_SQ), {}, r"`z\[:, 0\]` \(dh_sq\).*>= 0"),
        ((_t, _with(_Z, (2, 1), -1e-3), DX_SQ, DY_TARGET_SQ), {}, r"`z\[:, 1\]` \(dy_sq\).*>= 0"),
        ((_t, _with(_Z, (0, 0), 0.0), DX_SQ, DY_TARGET_SQ), {}, r"`z\[0, 0\]`.*> 0"),
        ((_t[::-1], _Z, DX_SQ, DY_TARGET_SQ), {}, "`t` must be strictly increasing"),
        ((_with(_t, 2, 1.0), _Z, DX_SQ, DY_TARGET_SQ), {}, "`t` must be strictly increasing"),
        ((_t, _Z, 0.0, DY_TARGET_SQ), {}, "`dx_sq` must be > 0"),
        ((_t, _Z, DX_SQ, -0.5), {}, "`dy_target_sq` is a squared distance and must be >= 0"),
        ((_t, _Z, DX_SQ, DY_TARGET_SQ), {"tau_h_over_tau_y_bounds": (10.0, 1.0)}, "`tau_h_over_tau_y_bounds` must be a pair"),
        ((_t, _Z, DX_SQ, DY_TARGET_SQ), {"tau_h_over_tau_y_bounds": (0.0, 1.0)}, "`tau_h_over_tau_y_bounds` must be > 0"),
        ((_t, _Z, DX_SQ, DY_TARGET_SQ), {"search_records": 2}, "`search_records` must be an integer >= 3"),
        ((_t, _Z, DX_SQ, DY_TARGET_SQ), {"grid_per_decade": 0}, "`grid_per_decade` must be > 0"),
    ],
)
def test_fit_rates_rejects_bad_input(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit.fit_rates(*args, **kwargs)


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((_t, _Z, np.ones(4), DY_TARGET_SQ, 0.1), {}, r"`measured_loss` must have shape \(5,\)"),
        ((_t, _Z, _with(np.ones(5), 1, np.nan), DY_TARGET_SQ, 0.1), {}, "`measured_loss` must be finite"),
        ((_t, _Z[:4], np.ones(5), DY_TARGET_SQ, 0.1), {}, "`t` and `z` must have the same number of records"),
        ((_t[::-1], _Z, np.ones(5), DY_TARGET_SQ, 0.1), {}, "`t` must be strictly increasing"),
        ((_t, _Z, np.ones(5), -1.0, 0.1), {}, "`dy_target_sq` is a squared distance"),
        ((_t, _Z, np.ones(5), DY_TARGET_SQ, 0.0), {}, "`offset_sq` must be > 0"),
        ((_t, _Z, np.ones(5), DY_TARGET_SQ, 0.1), {"rate_bounds": (1.0, 1e-3)}, "`rate_bounds` must be a pair"),
    ],
)
def test_fit_rate_ybar_rejects_bad_input(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit.fit_rate_ybar(*args, **kwargs)


# --------------------------------------------------------------------------------------------------
# many random cases


@pytest.mark.slow
def test_recovers_rates_on_random_identifiable_trajectories():
    """40 random starts and rates (rate_h 3e-4..3e-2, ratio 0.1..10): every fit within 1e-3."""
    rng = np.random.default_rng(11)
    checked = 0
    while checked < 40:
        rate_h = 10 ** rng.uniform(np.log10(3e-4), np.log10(3e-2))
        rate_y = rate_h * 10 ** rng.uniform(-1.0, 1.0)
        dh_sq0 = 10 ** rng.uniform(-8.0, 0.5)
        dy_sq0 = dh_sq0 * 10 ** rng.uniform(-3.0, 0.5)
        z0 = th.initial_state(dh_sq0, dy_sq0, rng.uniform(-1.0, 1.0), dy_target_sq=DY_TARGET_SQ)
        z = _trajectory(z0, rate_h, rate_y)
        final = float(th.final_distance(dh_sq0, dy_sq0, rate_h=rate_h, rate_y=rate_y, dx_sq=DX_SQ, dy_target_sq=DY_TARGET_SQ).distance)
        if abs(z[-1, 0] - dh_sq0) < 0.5 * abs(final - dh_sq0):
            continue  # not identifiable from this recording
        result = fit.fit_rates(T, z, DX_SQ, DY_TARGET_SQ)
        np.testing.assert_allclose([result.rate_h, result.rate_y], [rate_h, rate_y], rtol=1e-3,
                                   err_msg=f"z0={z0}, rates=({rate_h}, {rate_y})")
        checked += 1
