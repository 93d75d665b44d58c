"""Unit tests for repalign.theory: the 3-D effective theory, its fixed points and its statistics.

Every check compares with evidence that does not come from the function under test: the matrix
gradient flow of the linearised model (eq. 6/17), finite differences, the exact solution of App. A.4,
an independent direct integration of eq. (7), the algebra of eqs. (24)-(27), Monte Carlo draws made
here, or hand-derived identities.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from repalign import linearised as lin
from repalign import theory as th


def _central_jacobian(f, x, rel=1e-6):
    """Central finite-difference Jacobian of f at x (columns = derivative along each coordinate)."""
    x = np.asarray(x, dtype=float)
    cols = []
    for i in range(x.size):
        h = rel * max(abs(x[i]), 1.0)
        e = np.zeros_like(x)
        e[i] = h
        cols.append((f(x + e) - f(x - e)) / (2 * h))
    return np.column_stack(cols)


def _two_points(seed=0, n_x=4, n_y=3):
    rng = np.random.default_rng(seed)
    return lin.TwoPoints(rng.normal(size=n_x), rng.normal(size=n_x), rng.normal(size=n_y), rng.normal(size=n_y))


def _kw(params):
    """Physical parameters given in the order (rate_h, rate_y, dx_sq, dy_target_sq) as keywords."""
    return dict(zip(("rate_h", "rate_y", "dx_sq", "dy_target_sq"), params))


def _sq(v):
    return float(np.dot(v, v))


# --------------------------------------------------------------------------------------------------
# rhs and jacobian


def test_rhs_matches_time_derivative_of_aligned_matrix_flow():
    """rhs(z(t)) against central differences in time of (||dh||^2, ||dy||^2, w) along the matrix flow."""
    data = _two_points(0)
    dx_sq, dyt_sq = _sq(data.dx), _sq(data.dy_target)
    rate_h, rate_y = 1.0, 0.5
    s0 = lin.aligned_init(data, 6, 1.0, seed=0, aligned=True)
    h = 1e-3
    tk = np.array([0.5, 2.0, 5.0, 9.0])
    t = np.sort(np.concatenate([tk - h, tk, tk + h]))
    states = lin.flow(s0, data, t, rate_h=rate_h, rate_y=rate_y, rate_ybar=2.0, rtol=1e-12, atol=1e-14)
    z = lin.summary(states, data).reshape(tk.size, 3, 3)
    for k in range(tk.size):
        fd = (z[k, 2] - z[k, 0]) / (2 * h)
        got = th.rhs(tk[k], z[k, 1], rate_h=rate_h, rate_y=rate_y, dx_sq=dx_sq, dy_target_sq=dyt_sq)
        np.testing.assert_allclose(got, fd, rtol=0, atol=1e-5 * np.abs(fd).max())


def test_rhs_check_detects_rotation():
    """The same finite-difference check fails along an unaligned (rotating) flow: the test can fail."""
    data = _two_points(0)
    dx_sq, dyt_sq = _sq(data.dx), _sq(data.dy_target)
    s0 = lin.aligned_init(data, 6, 1.0, seed=1, aligned=False)
    h = 1e-3
    states = lin.flow(s0, data, [2.0 - h, 2.0, 2.0 + h], rate_h=1.0, rate_y=0.5, rate_ybar=2.0, rtol=1e-12, atol=1e-14)
    z = lin.summary(states, data)
    fd = (z[2] - z[0]) / (2 * h)
    got = th.rhs(0.0, z[1], rate_h=1.0, rate_y=0.5, dx_sq=dx_sq, dy_target_sq=dyt_sq)
    # the first component needs no alignment (App. A.1), the other two do
    scale = np.abs(fd).max()
    np.testing.assert_allclose(got[0], fd[0], rtol=0, atol=1e-4 * scale)
    assert np.abs(got[1:] - fd[1:]).max() > 1e-2 * scale


@pytest.mark.parametrize(
    "z, params",
    [
        ([0.7, 0.4, -0.2], (1.0, 0.5, 1.3, 0.6)),
        ([0.05, 1.2, 1.9], (0.3, 2.0, 0.8, 1.1)),
        ([2.5, 0.01, 0.3], (1.7, 0.9, 2.0, 0.0)),
    ],
)
def test_jacobian_matches_central_differences_of_rhs(z, params):
    """jacobian against central finite differences of rhs."""
    fd = _central_jacobian(lambda x: th.rhs(0.0, x, **_kw(params)), z)
    np.testing.assert_allclose(th.jacobian(z, **_kw(params)), fd, rtol=1e-6, atol=1e-7 * np.abs(fd).max())


# --------------------------------------------------------------------------------------------------
# solve: exact solution, independent integration, limits, conservation, crossing


def _identical_outputs_cases():
    # (dh_sq0, dy_sq0, dx_sq, rate_h, rate_y): A_high > 0, < 0, exactly 0, tiny but non-zero
    return {
        "A_high>0": (0.5, 0.1, 1.0, 1.0, 0.5),
        "A_high<0": (0.05, 0.5, 1.0, 1.0, 0.5),
        "A_high=0": (0.5, 0.125, 1.0, 1.0, 0.5),  # 0.5 - 2 * 0.125 / 0.5 == 0 exactly
        "A_high~0": (0.5, 0.125 * (1 + 1e-10), 1.0, 1.0, 0.5),
        "lazy": (3.0, 4.0, 0.7, 0.6, 1.4),
    }


@pytest.mark.parametrize("case", list(_identical_outputs_cases()))
@pytest.mark.parametrize("rtol, atol", [(1e-8, 1e-12), (1e-10, 1e-14)])
def test_solve_matches_identical_outputs_solution(case, rtol, atol):
    """solve with dy_target_sq = 0 against the exact App. A.4 solution; error in units of the tolerance."""
    dh0, dy0, dx, rh, ry = _identical_outputs_cases()[case]
    a_high = float(th.final_distance(dh0, dy0, rate_h=rh, rate_y=ry, dx_sq=dx, dy_target_sq=0.0).a_high)
    assert {"A_high>0": a_high > 0.01, "A_high<0": a_high < -0.01, "lazy": a_high > 0.01}.get(case, abs(a_high) < 1e-9)
    t = np.linspace(0.0, 40.0, 201)
    exact = th.identical_outputs_solution(t, dh0, dy0, rate_h=rh, rate_y=ry, dx_sq=dx)
    z = th.solve([dh0, dy0, dy0], t, rate_h=rh, rate_y=ry, dx_sq=dx, dy_target_sq=0.0, rtol=rtol, atol=atol)
    units = np.abs(z - exact) / (rtol * np.abs(exact) + atol)
    assert units.max() < 100, f"error {units.max():.1f} tolerance units"


@pytest.mark.parametrize("case", ["A_high>0", "A_high<0", "A_high=0"])
def test_identical_outputs_solution_solves_eq7(case):
    """The exact solution itself: finite differences in time equal rhs (with y1 = y2), and w == dy_sq."""
    dh0, dy0, dx, rh, ry = _identical_outputs_cases()[case]
    h = 1e-4
    tk = np.array([0.3, 2.0, 7.0])
    t = np.sort(np.concatenate([tk - h, tk, tk + h]))
    z = th.identical_outputs_solution(t, dh0, dy0, rate_h=rh, rate_y=ry, dx_sq=dx).reshape(tk.size, 3, 3)
    np.testing.assert_array_equal(z[..., 1], z[..., 2])
    for k in range(tk.size):
        fd = (z[k, 2] - z[k, 0]) / (2 * h)
        np.testing.assert_allclose(th.rhs(0.0, z[k, 1], rate_h=rh, rate_y=ry, dx_sq=dx, dy_target_sq=0.0), fd,
                                   rtol=1e-6, atol=1e-9)
    z0 = th.identical_outputs_solution([0.0], dh0, dy0, rate_h=rh, rate_y=ry, dx_sq=dx)
    np.testing.assert_allclose(z0[0], [dh0, dy0, dy0], rtol=1e-15)


def test_solve_matches_independent_radau_integration_of_rhs():
    """Benign case (no crossing): solve against scipy Radau on rhs itself, tight tolerances."""
    z0 = th.initial_state(0.3, 0.2, 0.6, dy_target_sq=0.5)
    params = (1.0, 0.5, 1.0, 0.5)
    t = np.linspace(0.0, 20.0, 101)
    ref = integrate.solve_ivp(
        lambda tt, y: th.rhs(tt, y, **_kw(params)), (t[0], t[-1]), z0, t_eval=t, method="Radau", rtol=1e-11, atol=1e-14
    )
    assert ref.success
    z = th.solve(z0, t, **_kw(params))
    assert z[:, 0].min() > 0.1  # benign: the representations never approach each other
    # solve's default rtol is 1e-10; allow 100 such units of the state's scale (w crosses 0 here)
    np.testing.assert_allclose(z, ref.y.T, rtol=0, atol=100 * 1e-10 * np.abs(ref.y).max())


def _random_realisable_cases(n, seed):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        dh0, dy0 = rng.uniform(0.05, 2.0), rng.uniform(0.0, 2.0)
        cos = rng.uniform(-1.0, 1.0)
        rh, ry = rng.uniform(0.3, 2.0, size=2)
        dx, dyt = rng.uniform(0.5, 2.0), rng.uniform(0.1, 1.0)
        yield dh0, dy0, cos, rh, ry, dx, dyt


@pytest.mark.parametrize("case", list(_random_realisable_cases(6, seed=1)))
def test_solve_long_time_limit_is_eq10(case):
    """z(t -> inf) against final_distance (eq. 10), with dy_sq -> ||y2 - y1||^2 and w -> 0."""
    dh0, dy0, cos, rh, ry, dx, dyt = case
    z0 = th.initial_state(dh0, dy0, cos, dy_target_sq=dyt)
    z = th.solve(z0, [0.0, 1000.0, 2000.0], rate_h=rh, rate_y=ry, dx_sq=dx, dy_target_sq=dyt)
    expected = float(th.final_distance(dh0, dy0, rate_h=rh, rate_y=ry, dx_sq=dx, dy_target_sq=dyt).distance)
    np.testing.assert_allclose(z[1:, 0], expected, rtol=1e-7)
    np.testing.assert_allclose(z[-1, 1], dyt, rtol=1e-7)
    assert abs(z[-1, 2]) < 1e-7


@pytest.mark.parametrize(
    "z0, params",
    [
        (th.initial_state(0.3, 0.2, 0.6, dy_target_sq=0.5), (1.0, 0.5, 1.0, 0.5)),
        (th.initial_state(1e-3, 1e-6, 0.2, dy_target_sq=0.5), (1.0, 1.0, 1.0,
                                                               0.5)),  # small weights: plateau, then escape
        (th.initial_state(0.05, 0.3, -0.8, dy_target_sq=0.5), (1.0, 0.5, 1.0, 0.5)),  # crossing
        (th.initial_state(2.0, 3.0, -0.3, dy_target_sq=0.0), (0.7, 1.3, 1.5, 0.0)),  # identical targets
    ],
)
def test_conserved_quantity_is_constant_along_solutions(z0, params):
    """q = dy_sq/dh_sq - (tau_h/tau_y) dh_sq/dx_sq (eq. 23-24) does not change along solve's output."""
    t = np.linspace(0.0, 3e3 if z0[0] < 0.01 else 100.0, 301)
    z = th.solve(z0, t, **_kw(params))
    q = th.conserved_quantity(z, **_kw(params[:3]))
    assert q.shape == (t.size,)
    scale = abs(z0[1] / z0[0]) + (params[1] / params[0]) * z0[0] / params[2]
    np.testing.assert_allclose(q, q[0], rtol=0, atol=1e-7 * scale)
    assert th.conserved_quantity(z0, **_kw(params[:3])) == pytest.approx(q[0], rel=1e-12)


def test_conserved_quantity_formula():
    """conserved_quantity equals the integration constant of eq. (24) written out by hand."""
    z = np.array([[0.4, 0.9, 0.1], [1.5, 0.2, -0.3]])
    rh, ry, dx = 0.8, 1.6, 1.3
    expected = z[:, 1] / z[:, 0] - (ry / rh) * z[:, 0] / dx  # tau_h/tau_y = rate_y/rate_h
    np.testing.assert_allclose(th.conserved_quantity(z, rate_h=rh, rate_y=ry, dx_sq=dx), expected, rtol=1e-15)


def test_crossing_dips_to_zero_and_matches_one_unit_matrix_flow():
    """Outputs ordered against targets, A_high < 0: dh_sq touches ~0; solve == 1-hidden-unit matrix flow."""
    z0 = th.initial_state(0.05, 0.5, -1.0, dy_target_sq=0.5)
    assert th.final_distance(0.05, 0.5, rate_h=1.0, rate_y=1.0, dx_sq=1.0, dy_target_sq=0.5).a_high < 0
    # 1 input, 1 hidden unit, 1 output: dx = 1, y2 - y1 = sqrt(0.5); dy = D_y D_h dx = -sqrt(0.5)
    data = lin.TwoPoints([0.0], [1.0], [0.0], [np.sqrt(0.5)])
    alpha = np.sqrt(0.05)
    s0 = lin.LinearisedState(np.array([[alpha]]), np.array([[-np.sqrt(0.5) / alpha]]), np.array([0.3]))
    np.testing.assert_allclose(lin.summary([s0], data)[0], z0, rtol=1e-14)
    t = np.concatenate([np.linspace(0.0, 0.4, 2001), np.linspace(0.5, 60.0, 120)])
    z = th.solve(z0, t, rate_h=1.0, rate_y=1.0, dx_sq=1.0, dy_target_sq=0.5)
    states = lin.flow(s0, data, t, rate_h=1.0, rate_y=1.0, rate_ybar=1.0)
    dh = np.array([s.d_h @ data.dx for s in states])[:, 0]
    assert dh[0] > 0 and dh[-1] < 0  # the two representations passed through each other
    assert z[:, 0].min() < 1e-4 * z0[0]
    np.testing.assert_allclose(z, lin.summary(states, data), rtol=0, atol=1e-7)
    expected = float(th.final_distance(0.05, 0.5, rate_h=1.0, rate_y=1.0, dx_sq=1.0, dy_target_sq=0.5).distance)
    np.testing.assert_allclose(z[-1, 0], expected, rtol=1e-7)


def test_crossing_reaches_eq10_when_final_differs_from_initial():
    """A crossing where ||dh(inf)||^2 != ||dh(0)||^2: the limit is eq. (10), checked via the eq. (27) root."""
    z0 = th.initial_state(0.05, 0.3, -0.8, dy_target_sq=0.5)
    t = np.array([0.0, 0.05, 0.1, 0.15, 0.2, 1500.0, 3000.0])
    z = th.solve(z0, t, rate_h=1.0, rate_y=0.5, dx_sq=1.0, dy_target_sq=0.5)
    a = z[-1, 0]
    assert abs(a - 0.05) > 0.02  # genuinely moved
    # eq. (27): c a^2 + q a - dy_target_sq = 0 with c = (rate_y/rate_h)/dx_sq, q conserved
    q = float(th.conserved_quantity(z0, rate_h=1.0, rate_y=0.5, dx_sq=1.0))
    assert 0.5 * a**2 + q * a - 0.5 == pytest.approx(0.0, abs=1e-8)
    np.testing.assert_allclose(z[-2:, 0], float(th.final_distance(0.05, 0.3, rate_h=1.0, rate_y=0.5, dx_sq=1.0,
                                                                  dy_target_sq=0.5).distance), rtol=1e-7)


def test_solve_output_shape_and_first_row():
    """Shape (len(t), 3); the first row is z0 (up to the round-off of solve's change of variables)."""
    rng = np.random.default_rng(3)
    for _ in range(20):
        dh0, dy0, cos, dyt = rng.uniform(0.01, 3), rng.uniform(0, 3), rng.uniform(-1, 1), rng.uniform(0, 2)
        z0 = th.initial_state(dh0, dy0, cos, dy_target_sq=dyt)
        t = np.linspace(0.0, 1.0, 7)
        z = th.solve(z0, t, rate_h=1.0, rate_y=0.7, dx_sq=1.3, dy_target_sq=dyt)
        assert z.shape == (7, 3)
        np.testing.assert_allclose(z[0], z0, rtol=0, atol=8 * np.finfo(float).eps * np.abs(z0).max())
    z = th.solve([0.4, 0.2, 0.1], [3.0], rate_h=1.0, rate_y=1.0, dx_sq=1.0, dy_target_sq=0.5)
    assert z.shape == (1, 3)
    np.testing.assert_array_equal(z[0], [0.4, 0.2, 0.1])


def test_solve_is_time_translation_invariant():
    """The system is autonomous: starting the clock at 5 instead of 0 gives the same states."""
    z0 = th.initial_state(0.3, 0.2, 0.6, dy_target_sq=0.5)
    a = th.solve(z0, np.linspace(0.0, 10.0, 11), rate_h=1.0, rate_y=0.5, dx_sq=1.0, dy_target_sq=0.5)
    b = th.solve(z0, np.linspace(5.0, 15.0, 11), rate_h=1.0, rate_y=0.5, dx_sq=1.0, dy_target_sq=0.5)
    np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12)


def test_solve_is_deterministic():
    """Same inputs, bit-identical outputs."""
    z0 = th.initial_state(0.05, 0.5, -1.0, dy_target_sq=0.5)
    t = np.linspace(0.0, 30.0, 31)
    np.testing.assert_array_equal(th.solve(z0, t, rate_h=1.0, rate_y=1.0, dx_sq=1.0, dy_target_sq=0.5), th.solve(z0, t, rate_h=1.0, rate_y=1.0, dx_sq=1.0, dy_target_sq=0.5))


# --------------------------------------------------------------------------------------------------
# loss


def test_loss_matches_linearised_loss_along_aligned_flow():
    """theory.loss (eq. 9, tau_ybar exponent) against linearised.loss on the matrix flow, rate_ybar != rate_y."""
    data = _two_points(0)
    dx_sq, dyt_sq = _sq(data.dx), _sq(data.dy_target)
    rate_h, rate_y, rate_ybar = 1.0, 0.5, 2.0
    s0 = lin.aligned_init(data, 6, 1.0, seed=0, aligned=True)
    offset_sq = _sq(s0.ybar - data.y_mean)
    t = np.linspace(0.0, 10.0, 41)
    states = lin.flow(s0, data, t, rate_h=rate_h, rate_y=rate_y, rate_ybar=rate_ybar)
    expected = lin.loss(states, data)
    z_matrix = lin.summary(states, data)
    np.testing.assert_allclose(th.loss(t, z_matrix, rate_ybar=rate_ybar, dy_target_sq=dyt_sq, offset_sq=offset_sq),
                               expected, rtol=1e-9, atol=1e-12)
    # and with the theory's own trajectory
    z_theory = th.solve(z_matrix[0], t, rate_h=rate_h, rate_y=rate_y, dx_sq=dx_sq, dy_target_sq=dyt_sq)
    np.testing.assert_allclose(th.loss(t, z_theory, rate_ybar=rate_ybar, dy_target_sq=dyt_sq, offset_sq=offset_sq),
                               expected, rtol=1e-7, atol=1e-9)
    # the comparison is sensitive to the exponent: the printed exp(-t/tau_y) form misses
    wrong = th.loss(t, z_matrix, rate_ybar=rate_y, dy_target_sq=dyt_sq, offset_sq=offset_sq)
    assert np.abs(wrong - expected).max() > 1e-2 * expected.max()


def test_loss_single_state_and_plateau_value():
    """One state gives a scalar; at z = 0 and t -> inf the loss is the plateau ||y2 - y1||^2 / 8."""
    got = th.loss(1e3, [1e-9, 0.0, 0.0], rate_ybar=1.0, dy_target_sq=0.5, offset_sq=2.0)
    assert np.ndim(got) == 0
    assert float(got) == pytest.approx(0.5 / 8, rel=1e-12)


# --------------------------------------------------------------------------------------------------
# final_distance (eqs. 10, 11, 27)


@pytest.mark.parametrize("case", list(_random_realisable_cases(8, seed=7)))
def test_final_distance_is_root_of_fixed_point_condition(case):
    """distance solves c a^2 + q a - dy_target_sq = 0 (eq. 27) with q from conserved_quantity, and a > 0."""
    dh0, dy0, _cos, rh, ry, dx, dyt = case
    r = th.final_distance(dh0, dy0, rate_h=rh, rate_y=ry, dx_sq=dx, dy_target_sq=dyt)
    a = float(r.distance)
    c = (ry / rh) / dx
    q = float(th.conserved_quantity([dh0, dy0, 0.0], rate_h=rh, rate_y=ry, dx_sq=dx))
    assert a > 0
    assert c * a**2 + q * a - dyt == pytest.approx(0.0, abs=1e-12 * max(1.0, c * a**2, dyt))
    # A_high, A_low written from eq. (11) by hand
    assert float(r.a_high) == pytest.approx(dh0 - (rh / ry) * dx * dy0 / dh0, rel=1e-14)
    assert float(r.a_low) == pytest.approx(np.sqrt((rh / ry) * dx * dyt), rel=1e-14)


def test_final_distance_small_weight_limit_is_a_low():
    """Tiny initial weights (dy_sq0 ~ dh_sq0^2): the distance tends to A_low, error shrinking with scale."""
    dx, dyt, rh, ry = 1.3, 0.7, 1.0, 0.6
    a_low = np.sqrt((rh / ry) * dx * dyt)
    errs = []
    for g in [1e-2, 1e-4, 1e-6]:
        d = float(th.final_distance(g, 0.5 * g**2, rate_h=rh, rate_y=ry, dx_sq=dx, dy_target_sq=dyt).distance)
        errs.append(abs(d - a_low) / a_low)
    assert errs[-1] < 1e-6
    assert errs[0] > errs[1] > errs[2]


def test_final_distance_large_weight_limit_is_a_high():
    """Large initial weights: distance -> A_high (next order A_low^2 / A_high)."""
    dx, dyt, rh, ry = 1.0, 0.5, 1.0, 2.0
    for g in [1e2, 1e4, 1e6]:
        r = th.final_distance(g, 0.3 * g**2, rate_h=rh, rate_y=ry, dx_sq=dx, dy_target_sq=dyt)
        a_high, a_low = float(r.a_high), float(r.a_low)
        assert a_high > 0
        np.testing.assert_allclose(float(r.distance), a_high + a_low**2 / a_high, rtol=1e-8)
    assert float(r.distance) / a_high == pytest.approx(1.0, rel=1e-12)


def test_final_distance_broadcasts_like_a_loop():
    """A grid of arguments gives the same values as calling the function element by element."""
    dh0 = np.array([0.01, 0.5, 2.0])[:, None, None]
    dy0 = np.array([0.0, 0.3, 4.0])[None, :, None]
    dyt = np.array([0.0, 0.25, 1.0, 2.0])[None, None, :]
    rh, ry, dx = 1.0, np.array([0.5]), 1.5
    r = th.final_distance(dh0, dy0, rate_h=rh, rate_y=ry, dx_sq=dx, dy_target_sq=dyt)
    assert r.distance.shape == (3, 3, 4)
    a_high = np.broadcast_to(r.a_high, (3, 3, 4))
    a_low = np.broadcast_to(r.a_low, (3, 3, 4))
    for i, j, k in np.ndindex(3, 3, 4):
        single = th.final_distance(float(dh0[i, 0, 0]), float(dy0[0, j, 0]), rate_h=rh, rate_y=0.5, dx_sq=dx,
                                   dy_target_sq=float(dyt[0, 0, k]))
        assert r.distance[i, j, k] == pytest.approx(float(single.distance), rel=1e-14, abs=0)
        assert a_high[i, j, k] == pytest.approx(float(single.a_high), rel=1e-14, abs=0)
        assert a_low[i, j, k] == pytest.approx(float(single.a_low), rel=1e-14, abs=0)


@pytest.mark.parametrize("a_high_target", [-1e2, -1e6, -1e10, -1e14])
def test_final_distance_stable_for_very_negative_a_high(a_high_target):
    """A_high << 0: distance * (distance - A_high) == A_low^2 to round-off (naive formula cancels to 0)."""
    dx, dyt, rh, ry = 1.0, 0.5, 1.0, 1.0
    dh0 = 1e-3
    dy0 = (dh0 - a_high_target) * dh0 / ((rh / ry) * dx)  # gives A_high = a_high_target
    r = th.final_distance(dh0, dy0, rate_h=rh, rate_y=ry, dx_sq=dx, dy_target_sq=dyt)
    d, a_high, a_low = float(r.distance), float(r.a_high), float(r.a_low)
    assert d > 0
    assert d * (d - a_high) == pytest.approx(a_low**2, rel=1e-12)
    # asymptotics: d = A_low^2/|A_high| (1 - A_low^2/A_high^2 + ...)
    assert d == pytest.approx(a_low**2 / abs(a_high), rel=2 * a_low**2 / a_high**2 + 1e-14)


def test_final_distance_without_target_difference():
    """dy_target_sq = 0: A_low = 0 and the distance is max(A_high, 0)."""
    r = th.final_distance([0.5, 0.05], [0.1, 0.5], rate_h=1.0, rate_y=0.5, dx_sq=1.0, dy_target_sq=0.0)
    np.testing.assert_allclose(r.distance, [0.1, 0.0], atol=1e-15)


# --------------------------------------------------------------------------------------------------
# reduced 2-D system (eqs. 24-35)


def test_reduced_rhs_equals_3d_rhs_on_invariant_surface():
    """reduced_rhs(dh_sq, w) == rhs(dh_sq, dy_sq, w)[[0, 2]] with dy_sq = c dh_sq^2 + q dh_sq (eq. 24)."""
    rng = np.random.default_rng(11)
    n = 0
    while n < 25:
        a, w, q = rng.uniform(0.05, 3.0), rng.normal(), rng.normal(scale=2.0)
        rh, ry, dx, dyt = rng.uniform(0.3, 2.0), rng.uniform(0.3, 2.0), rng.uniform(0.5, 2.0), rng.uniform(0.0, 1.5)
        dy = (ry / rh) / dx * a**2 + q * a
        if dy < 0:
            continue
        n += 1
        full = th.rhs(0.0, [a, dy, w], rate_h=rh, rate_y=ry, dx_sq=dx, dy_target_sq=dyt)
        red = th.reduced_rhs(0.0, [a, w], rate_h=rh, rate_y=ry, dx_sq=dx, dy_target_sq=dyt, q=q)
        np.testing.assert_allclose(red, full[[0, 2]], rtol=1e-12, atol=1e-12 * np.abs(full).max())


@pytest.mark.parametrize("a_high", [-3.0, -0.2, 0.0, 0.7, 4.0])
def test_reduced_jacobian_at_fixed_point_matches_finite_differences(a_high):
    """Eq. (29) against central differences of reduced_rhs at (||dh(inf)||^2, 0); trace < 0 < det."""
    rh, ry, dx, dyt = 1.0, 0.5, 1.3, 0.6
    c = (ry / rh) / dx
    q = -c * a_high  # eq. (24) constant in terms of A_high
    a_low = np.sqrt((rh / ry) * dx * dyt)
    a_star = 0.5 * a_high + np.sqrt(0.25 * a_high**2 + a_low**2)
    u_star = np.array([a_star, 0.0])
    np.testing.assert_allclose(th.reduced_rhs(0.0, u_star, rate_h=rh, rate_y=ry, dx_sq=dx, dy_target_sq=dyt, q=q),
                               0.0, atol=1e-13)
    fd = _central_jacobian(lambda u: th.reduced_rhs(0.0, u, rate_h=rh, rate_y=ry, dx_sq=dx, dy_target_sq=dyt, q=q),
                           u_star)
    J = th.reduced_jacobian_at_fixed_point(a_high, a_low, rate_h=rh, rate_y=ry, dx_sq=dx)
    np.testing.assert_allclose(J, fd, rtol=1e-7, atol=1e-9)
    assert np.trace(J) < 0 < np.linalg.det(J)


@pytest.mark.parametrize("a_high", [-2.0, 0.0, 1.5])
def test_origin_eigen_saddle_and_invariant_rays(a_high):
    """One positive and one negative eigenvalue; reduced_rhs(eps (1, s)) = lambda eps (1, s) + O(eps^2)."""
    rh, ry, dx, dyt = 1.0, 0.5, 1.3, 0.6
    q = -(ry / rh) / dx * a_high
    a_low = np.sqrt((rh / ry) * dx * dyt)
    lam, slopes = th.origin_eigen(a_high, a_low, rate_h=rh, rate_y=ry, dx_sq=dx)
    assert lam.shape == (2,) and slopes.shape == (2,)
    assert lam[0] > 0 > lam[1]
    for lam_i, s in zip(lam, slopes):
        rel = []
        for eps in [1e-3, 1e-4, 1e-5]:
            v = eps * np.array([1.0, s])
            rel.append(np.linalg.norm(th.reduced_rhs(0.0, v, rate_h=rh, rate_y=ry, dx_sq=dx, dy_target_sq=dyt,
                                                     q=q) - lam_i * v) / (abs(lam_i) * np.linalg.norm(v)))
        assert rel[-1] < 1e-3
        assert rel[1] < 0.2 * rel[0] and rel[2] < 0.2 * rel[1]  # the residual is O(eps): a true eigen-ray


# --------------------------------------------------------------------------------------------------
# random-feature statistics (App. A.6)

_DIST = dict(rate_h=1.0, rate_y=0.5, dx_sq=1.0, dy_target_sq=0.5, init_scale=0.4)  # rho = tau_y/tau_h = 2


def test_final_distance_pdf_integrates_to_one():
    """quad of the pdf over (0, inf) is 1 (A_low > 0, so no point mass at 0)."""
    total, err = integrate.quad(lambda h: float(th.final_distance_pdf(h, **_DIST)), 0.0, np.inf, limit=200)
    assert total == pytest.approx(1.0, abs=1e-7)


def test_final_distance_pdf_is_derivative_of_cdf():
    """pdf against central differences of the cdf; the cdf rises from 0 to 1."""
    h = np.linspace(0.05, 5.0, 60)
    step = 1e-5
    fd = (th.final_distance_cdf(h + step, **_DIST) - th.final_distance_cdf(h - step, **_DIST)) / (2 * step)
    np.testing.assert_allclose(th.final_distance_pdf(h, **_DIST), fd, rtol=1e-6, atol=1e-9)
    cdf = th.final_distance_cdf(np.array([1e-6, 1e3]), **_DIST)
    assert cdf[0] < 1e-6 and cdf[1] > 1 - 1e-9
    assert np.all(np.diff(th.final_distance_cdf(h, **_DIST)) > 0)


def test_final_distance_cdf_matches_independent_monte_carlo():
    """cdf against eq. (10) applied to draws made here: dh_sq0/dx_sq, dy_sq0/dh_sq0 ~ N(G, G^2)."""
    rng = np.random.default_rng(2024)
    n = 20000
    rh, ry, dx, dyt, init_scale = _DIST.values()
    r_h, r_y = rng.normal(init_scale, init_scale, size=(2, n))
    a_high = dx * (r_h - (rh / ry) * r_y)  # eq. (11) with these ratios
    # feed each A_high through final_distance with realisable (positive) initial distances
    dh0 = np.maximum(a_high, 0.0) + 1.0
    dy0 = (dh0 - a_high) * dh0 / ((rh / ry) * dx)
    samples = th.final_distance(dh0, dy0, rate_h=rh, rate_y=ry, dx_sq=dx, dy_target_sq=dyt).distance
    ks = stats.kstest(samples, lambda x: th.final_distance_cdf(x, **_DIST))
    assert ks.statistic < 1.63 / np.sqrt(n)  # 1 % critical value of the KS distribution


def test_sample_final_distance_matches_cdf():
    """sample_final_distance against the cdf: KS statistic below the 1 % critical value, p > 0.01."""
    n = 20000
    samples = th.sample_final_distance(n, **_DIST, seed=5)
    assert samples.shape == (n,)
    assert np.all(samples > 0)
    ks = stats.kstest(samples, lambda x: th.final_distance_cdf(x, **_DIST))
    assert ks.statistic < 1.63 / np.sqrt(n)
    assert ks.pvalue > 0.01


def test_sample_final_distance_seeding():
    """Same seed: identical draws; different seed: different draws."""
    a = th.sample_final_distance(100, **_DIST, seed=1)
    b = th.sample_final_distance(100, **_DIST, seed=1)
    c = th.sample_final_distance(100, **_DIST, seed=2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


# --------------------------------------------------------------------------------------------------
# initial_state


def test_initial_state_is_realised_by_vectors():
    """initial_state against (||dh||^2, ||dy||^2, w) of explicit vectors at the given angle."""
    rng = np.random.default_rng(9)
    for cos in [-1.0, -0.3, 0.0, 0.8, 1.0]:
        dyt_vec = rng.normal(size=3)
        e = dyt_vec / np.linalg.norm(dyt_vec)
        perp = rng.normal(size=3)
        perp -= (perp @ e) * e
        perp /= np.linalg.norm(perp)
        dy_vec = 0.7 * (cos * e + np.sqrt(1 - cos**2) * perp)
        expected = [0.4, dy_vec @ dy_vec, dy_vec @ dy_vec - dy_vec @ dyt_vec]
        np.testing.assert_allclose(th.initial_state(0.4, dy_vec @ dy_vec, cos, dy_target_sq=dyt_vec @ dyt_vec),
                                   expected, rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------------------------------
# bad input

_P = dict(rate_h=1.0, rate_y=0.5, dx_sq=1.0, dy_target_sq=0.5)


@pytest.mark.parametrize(
    "params, match",
    [
        ((0.0, 0.5, 1.0, 0.5), "rate_h"),
        ((1.0, -1.0, 1.0, 0.5), "rate_y"),
        ((1.0, 0.5, -1.0, 0.5), "dx_sq"),
        ((1.0, 0.5, 1.0, -0.1), "dy_target_sq"),
        ((1.0, 0.5, np.inf, 0.5), "dx_sq"),
        ((np.nan, 0.5, 1.0, 0.5), "rate_h"),
    ],
)
def test_rhs_jacobian_solve_reject_bad_parameters(params, match):
    z = [0.5, 0.2, 0.1]
    with pytest.raises(ValueError, match=match):
        th.rhs(0.0, z, **_kw(params))
    with pytest.raises(ValueError, match=match):
        th.jacobian(z, **_kw(params))
    with pytest.raises(ValueError, match=match):
        th.solve(z, [0.0, 1.0], **_kw(params))


@pytest.mark.parametrize(
    "z, match",
    [
        ([0.5, 0.2], r"z.*shape"),
        ([[0.5, 0.2, 0.1]], r"z.*shape"),
        ([0.5, np.nan, 0.1], r"`z`.*finite"),
        ([0.5, 0.2, np.inf], r"`z`.*finite"),
        ([0.0, 0.2, 0.1], r"z\[0\]"),
        ([-0.1, 0.2, 0.1], r"z\[0\]"),
        ([0.5, -0.2, 0.1], r"z\[1\]"),
    ],
)
def test_rhs_and_jacobian_reject_bad_state(z, match):
    with pytest.raises(ValueError, match=match):
        th.rhs(0.0, z, **_P)
    with pytest.raises(ValueError, match=match):
        th.jacobian(z, **_P)


@pytest.mark.parametrize(
    "z0, t, match",
    [
        ([0.5, 0.2], [0.0, 1.0], r"z0.*shape"),
        ([0.0, 0.2, 0.1], [0.0, 1.0], r"z0\[0\]"),
        ([0.5, -0.2, 0.1], [0.0, 1.0], r"z0\[1\]"),
        ([0.5, np.nan, 0.1], [0.0, 1.0], r"z0"),
        ([0.5, 0.2, 0.1], [1.0, 0.0], r"`t`.*sorted"),
        ([0.5, 0.2, 0.1], [[0.0, 1.0]], r"`t`.*1-dimensional"),
        ([0.5, 0.2, 0.1], [], r"`t`"),
        ([0.5, 0.2, 0.1], [0.0, np.inf], r"`t`.*finite"),
        ([1.0, 1.0, 3.0], [0.0, 1.0], r"realisable"),  # |1 - 3| > sqrt(1 * 0.5)
        ([1.0, 0.0, 0.2], [0.0, 1.0], r"realisable"),  # dy = 0 forces w = 0
    ],
)
def test_solve_rejects_bad_state_and_times(z0, t, match):
    with pytest.raises(ValueError, match=match):
        th.solve(z0, t, **_P)


def test_solve_rejects_unrealisable_state_without_target_difference():
    """With y1 = y2, w must equal dy_sq."""
    with pytest.raises(ValueError, match="realisable"):
        th.solve([0.5, 0.2, 0.1], [0.0, 1.0], rate_h=1.0, rate_y=1.0, dx_sq=1.0, dy_target_sq=0.0)


@pytest.mark.parametrize(
    "args, match",
    [
        ((0.0, 0.25, 0.0, 1.0), "dh_sq0"),
        ((-1.0, 0.25, 0.0, 1.0), "dh_sq0"),
        ((1.0, -0.25, 0.0, 1.0), "dy_sq0"),
        ((1.0, 0.25, 1.5, 1.0), "cos_angle"),
        ((1.0, 0.25, -1.01, 1.0), "cos_angle"),
        ((1.0, 0.25, np.nan, 1.0), "cos_angle"),
        ((1.0, 0.25, 0.0, -1.0), "dy_target_sq"),
        ((np.inf, 0.25, 0.0, 1.0), "dh_sq0"),
    ],
)
def test_initial_state_rejects_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        th.initial_state(*args[:3], dy_target_sq=args[3])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(dh_sq0=0.0), "dh_sq0"),
        (dict(dy_sq0=-1e-3), "dy_sq0"),
        (dict(dx_sq=0.0), "dx_sq"),
        (dict(dy_target_sq=-0.5), "dy_target_sq"),
        (dict(rate_h=0.0), "rate_h"),
        (dict(rate_y=-1.0), "rate_y"),
        (dict(dh_sq0=np.nan), "dh_sq0"),
        (dict(dy_sq0=[0.1, np.inf]), "dy_sq0"),
    ],
)
def test_final_distance_rejects_bad_input(kwargs, match):
    args = dict(dh_sq0=0.5, dy_sq0=0.2, dx_sq=1.0, dy_target_sq=0.5, rate_h=1.0, rate_y=1.0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        th.final_distance(**args)


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(rate_ybar=0.0), "rate_ybar"), (dict(dy_target_sq=-1.0), "dy_target_sq"), (dict(offset_sq=-1.0), "offset_sq")],
)
def test_loss_rejects_bad_parameters(kwargs, match):
    args = dict(rate_ybar=1.0, dy_target_sq=0.5, offset_sq=0.1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        th.loss([0.0, 1.0], [[0.5, 0.2, 0.1], [0.4, 0.2, 0.1]], **args)


def test_loss_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"`z`.*shape"):
        th.loss([0.0, 1.0], [[0.5, 0.2], [0.4, 0.2]], rate_ybar=1.0, dy_target_sq=0.5, offset_sq=0.1)
    with pytest.raises(ValueError, match=r"`t`.*shape"):
        th.loss([0.0, 1.0, 2.0], [[0.5, 0.2, 0.1], [0.4, 0.2, 0.1]], rate_ybar=1.0, dy_target_sq=0.5, offset_sq=0.1)
    with pytest.raises(ValueError, match=r"`t`.*finite"):
        th.loss([0.0, np.nan], [[0.5, 0.2, 0.1], [0.4, 0.2, 0.1]], rate_ybar=1.0, dy_target_sq=0.5, offset_sq=0.1)


def test_conserved_quantity_rejects_bad_input():
    with pytest.raises(ValueError, match=r"`z`.*3"):
        th.conserved_quantity([0.5, 0.2], rate_h=1.0, rate_y=1.0, dx_sq=1.0)
    with pytest.raises(ValueError, match=r"z\[\.\.\., 0\]"):
        th.conserved_quantity([0.0, 0.2, 0.1], rate_h=1.0, rate_y=1.0, dx_sq=1.0)
    with pytest.raises(ValueError, match="rate_h"):
        th.conserved_quantity([0.5, 0.2, 0.1], rate_h=0.0, rate_y=1.0, dx_sq=1.0)
    with pytest.raises(ValueError, match="dx_sq"):
        th.conserved_quantity([0.5, 0.2, 0.1], rate_h=1.0, rate_y=1.0, dx_sq=-1.0)


def test_reduced_functions_reject_bad_input():
    with pytest.raises(ValueError, match=r"`u`.*shape"):
        th.reduced_rhs(0.0, [0.5, 0.1, 0.0], **_P, q=0.3)
    with pytest.raises(ValueError, match=r"u\[0\]"):
        th.reduced_rhs(0.0, [0.0, 0.1], **_P, q=0.3)
    with pytest.raises(ValueError, match="`q`"):
        th.reduced_rhs(0.0, [0.5, 0.1], **_P, q=np.nan)
    with pytest.raises(ValueError, match="a_low"):
        th.reduced_jacobian_at_fixed_point(0.3, -1.0, rate_h=1.0, rate_y=1.0, dx_sq=1.0)
    with pytest.raises(ValueError, match="a_high"):
        th.origin_eigen(np.inf, 1.0, rate_h=1.0, rate_y=1.0, dx_sq=1.0)
    with pytest.raises(ValueError, match="rate_y"):
        th.origin_eigen(0.3, 1.0, rate_h=1.0, rate_y=0.0, dx_sq=1.0)


def test_identical_outputs_solution_rejects_bad_input():
    with pytest.raises(ValueError, match=r"`t`.*1-dimensional"):
        th.identical_outputs_solution([[0.0, 1.0]], 0.5, 0.1, rate_h=1.0, rate_y=1.0, dx_sq=1.0)
    with pytest.raises(ValueError, match="dh_sq0"):
        th.identical_outputs_solution([0.0, 1.0], 0.0, 0.1, rate_h=1.0, rate_y=1.0, dx_sq=1.0)
    with pytest.raises(ValueError, match="rate_h"):
        th.identical_outputs_solution([0.0, 1.0], 0.5, 0.1, rate_h=0.0, rate_y=1.0, dx_sq=1.0)


@pytest.mark.parametrize("n", [0, -5, 2.5, "10"])
def test_sample_final_distance_rejects_bad_n(n):
    with pytest.raises(ValueError, match="`n`"):
        th.sample_final_distance(n, **_DIST, seed=0)


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(init_scale=0.0), "init_scale"), (dict(rate_h=0.0), "rate_h"), (dict(dx_sq=-1.0), "dx_sq"),
     (dict(dy_target_sq=-1.0), "dy_target_sq")],
)
def test_distribution_functions_reject_bad_parameters(kwargs, match):
    args = dict(_DIST)
    args.update(kwargs)
    for fn in (th.final_distance_cdf, th.final_distance_pdf):
        with pytest.raises(ValueError, match=match):
            fn(0.5, **args)
    with pytest.raises(ValueError, match=match):
        th.sample_final_distance(10, **args, seed=0)


@pytest.mark.parametrize("h", [0.0, -1.0, np.nan])
def test_distribution_functions_reject_non_positive_h(h):
    for fn in (th.final_distance_cdf, th.final_distance_pdf):
        with pytest.raises(ValueError, match="`h`"):
            fn(h, **_DIST)


def test_solve_keeps_relative_accuracy_from_very_small_weights():
    """Default atol scales with the start: a 1e-24 start matches a far tighter solve."""
    t = np.linspace(0.0, 6000.0, 301)
    for a0 in (1e-16, 1e-24):
        z0 = th.initial_state(a0, a0**2, 0.0, dy_target_sq=0.5)
        z = th.solve(z0, t, rate_h=1e-2, rate_y=2e-2, dx_sq=1.0, dy_target_sq=0.5)
        tight = th.solve(z0, t, rate_h=1e-2, rate_y=2e-2, dx_sq=1.0, dy_target_sq=0.5, rtol=1e-12, atol=1e-40)
        assert np.max(np.abs(z - tight)) < 1e-7


def test_solve_rejects_repeated_times():
    with pytest.raises(ValueError, match="`t` must be strictly increasing"):
        th.solve([1.0, 0.5, 0.2], [0.0, 1.0, 1.0, 2.0], rate_h=1.0, rate_y=1.0, dx_sq=1.0, dy_target_sq=0.5)
