"""Tests of repalign.linear_networks against independent evidence: the full matrix gradient flow
integrated by scipy, finite differences, and the limits t -> 0 and t -> infinity."""

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from repalign import linear_networks as ln


def _dataset(seed=0, n_in=3, n_out=5):
    """Whitened inputs (scaled orthogonal rows of a 4-point Hadamard design) and random targets."""
    x = np.array([[1, 1, 1], [-1, 1, -1], [1, -1, -1], [-1, -1, 1]], float)[:, :n_in]
    y = np.random.default_rng(seed).standard_normal((4, n_out))
    y -= y.mean(0)
    return x, y


def _matrix_flow(ws, sigma_yx, sigma_xx, t_eval):
    """Gradient flow of W_D ... W_1 on 1/2 E||y - W x||^2, every matrix integrated (no reduction)."""
    shapes = [w.shape for w in ws]
    sizes = np.cumsum([0] + [w.size for w in ws])

    def unpack(z):
        return [z[a:b].reshape(s) for a, b, s in zip(sizes[:-1], sizes[1:], shapes)]

    def rhs(t, z):
        w = unpack(z)
        total = w[0]
        for m in w[1:]:
            total = m @ total
        err = sigma_yx - total @ sigma_xx
        grads = []
        for l in range(len(w)):
            left = _product(w[l + 1:]) if l + 1 < len(w) else np.eye(w[-1].shape[0])
            right = _product(w[:l]) if l > 0 else np.eye(w[0].shape[1])
            grads.append((left.T @ err @ right.T).ravel())
        return np.concatenate(grads)

    sol = solve_ivp(rhs, (0, t_eval[-1]), np.concatenate([w.ravel() for w in ws]), t_eval=t_eval,
                    rtol=1e-10, atol=1e-12, method="DOP853")
    assert sol.success
    return [unpack(z) for z in sol.y.T]


def _product(ws):
    total = ws[0]
    for m in ws[1:]:
        total = m @ total
    return total


def test_io_modes_reconstructs_the_correlation_and_flags_whitening():
    x, y = _dataset()
    m = ln.io_modes(x, y)
    assert m.whitened and m.rank == 3
    np.testing.assert_allclose(m.u @ np.diag(m.s) @ m.v.T, y.T @ x / 4, atol=1e-12)
    assert np.all(np.diff(m.s) <= 0)
    assert not ln.io_modes(2 * x, y).whitened


@pytest.mark.parametrize("lam", [0.0, 0.4, -0.4, 3.0])
def test_two_layer_matches_the_matrix_gradient_flow(lam):
    x, y = _dataset(1)
    m = ln.io_modes(x, y)
    a0 = np.array([1e-3, 3e-3, 2e-2]) if lam == 0 else np.array([0.0, 1e-2, -0.05])
    w1, w2 = ln.decoupled_init(m, a0=np.abs(a0) if lam == 0 else np.abs(a0), lam=lam, hidden=6, seed=3)
    t = np.linspace(0, 12, 25)
    traj = _matrix_flow([w1, w2], m.sigma_yx, m.sigma_xx, t)
    measured = np.array([[m.u[:, k] @ _product(w) @ m.v[:, k] for k in range(m.rank)] for w in traj])
    theory = np.stack([ln.mode_strength(t, s=m.s[k], a0=abs(a0[k]), lam=lam) for k in range(m.rank)], -1)
    np.testing.assert_allclose(measured, theory, atol=1e-7)
    # the pair quantities read off the weights
    i, j = 0, 2
    w1t, w2t = traj[-1]
    dh = w1t @ (x[j] - x[i])
    dy = w2t @ dh
    direct = [dh @ dh, dy @ dy, dy @ dy - dy @ (y[j] - y[i])]
    np.testing.assert_allclose(ln.pair_quantities(m, theory[-1], x[i], x[j], lam=lam), direct, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("depth", [1, 3, 4])
def test_deep_chain_matches_the_matrix_gradient_flow(depth):
    x, y = _dataset(2)
    m = ln.io_modes(x, y)
    a0 = np.array([0.05, 0.1, 0.2])
    b = a0 ** (1 / depth)
    hidden = 4
    rot = [m.v] + [np.linalg.qr(np.random.default_rng(k).standard_normal((hidden, m.rank)))[0]
                   for k in range(depth - 1)] + [m.u]
    ws = [rot[l + 1] @ np.diag(b) @ rot[l].T for l in range(depth)]
    t = np.linspace(0, 15, 16)
    traj = _matrix_flow(ws, m.sigma_yx, m.sigma_xx, t)
    measured = np.array([[m.u[:, k] @ _product(w) @ m.v[:, k] for k in range(m.rank)] for w in traj])
    theory = np.stack([ln.mode_strength(t, s=m.s[k], a0=a0[k], depth=depth) for k in range(m.rank)], -1)
    np.testing.assert_allclose(measured, theory, rtol=1e-5, atol=1e-7)  # both solvers integrate at rtol ~1e-10


@pytest.mark.parametrize("depth,lam", [(1, 0.0), (2, 0.0), (2, 0.7), (3, 0.0), (5, 0.0)])
def test_finite_differences_obey_the_mode_equation(depth, lam):
    s, a0, tau, h = 0.8, 0.01, 2.0, 1e-5
    t = np.array([0.5, 3.0, 7.0, 12.0])
    a = ln.mode_strength(t, s=s, a0=a0, depth=depth, lam=lam, tau=tau)
    slope = (ln.mode_strength(t + h, s=s, a0=a0, depth=depth, lam=lam, tau=tau)
             - ln.mode_strength(t - h, s=s, a0=a0, depth=depth, lam=lam, tau=tau)) / (2 * h)
    if depth == 2:
        rhs = np.sqrt(4 * a**2 + lam**2) * (s - a) / tau
    else:
        rhs = depth * a ** (2 - 2 / depth) * (s - a) / tau
    np.testing.assert_allclose(slope, rhs, rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize("depth,lam", [(1, 0.0), (2, 0.0), (2, 2.0), (4, 0.0)])
def test_limits_at_zero_and_infinite_time(depth, lam):
    s, a0 = 1.7, 0.02
    assert ln.mode_strength(0.0, s=s, a0=a0, depth=depth, lam=lam) == pytest.approx(a0, rel=1e-9)
    assert ln.mode_strength(1e3, s=s, a0=a0, depth=depth, lam=lam) == pytest.approx(s, rel=1e-9)


def test_small_lambda_is_continuous_with_the_balanced_sigmoid():
    t = np.linspace(0, 10, 11)
    np.testing.assert_allclose(ln.mode_strength(t, s=1.0, a0=1e-3, lam=1e-7), ln.mode_strength(t, s=1.0, a0=1e-3),
                               rtol=1e-6)


def test_large_lambda_is_exponential_with_rate_two_s_lambda():
    # |lam| >> s: da/dt ~ |lam| (s - a), the one-layer case with tau -> tau / |lam|
    lam, s, a0 = 200.0, 1.0, 0.0
    t = np.linspace(0, 0.05, 6)
    np.testing.assert_allclose(ln.mode_strength(t, s=s, a0=a0, lam=lam),
                               ln.mode_strength(t * lam, s=s, a0=a0, depth=1), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("depth,lam", [(1, 0.0), (2, 0.0), (2, 0.5), (3, 0.0), (6, 0.0)])
def test_time_to_learn_inverts_mode_strength(depth, lam):
    s, a0 = 1.2, 1e-3
    t = ln.time_to_learn(s=s, a0=a0, depth=depth, lam=lam, fraction=0.9, tau=3.0)
    assert ln.mode_strength(t, s=s, a0=a0, depth=depth, lam=lam, tau=3.0) == pytest.approx(0.9 * s, rel=1e-7)


def test_time_to_learn_small_start_asymptotics():
    s = 0.7
    for a0 in (1e-6, 1e-8):
        assert ln.time_to_learn(s=s, a0=a0) * 2 * s / np.log(s / a0) == pytest.approx(1, abs=0.05)
    for depth in (3, 5):
        a0 = 1e-9
        lead = a0 ** -(1 - 2 / depth) / (s * (depth - 2))
        assert ln.time_to_learn(s=s, a0=a0, depth=depth) / lead == pytest.approx(1, abs=0.02)
    # deeper waits longer at the same per-layer scale b0 = a0^(1/D)
    times = [ln.time_to_learn(s=s, a0=0.3**d, depth=d) for d in (2, 3, 4, 6)]
    assert np.all(np.diff(times) > 0)


def test_effective_initial_strength_predicts_random_small_init():
    x, y = _dataset(4, n_out=4)
    m = ln.io_modes(x, y)
    rng = np.random.default_rng(0)
    hidden = 400
    w1 = rng.standard_normal((hidden, 3)) * 0.03 / np.sqrt(hidden)
    w2 = rng.standard_normal((4, hidden)) * 0.03 / np.sqrt(hidden)
    a0 = ln.effective_initial_strength(w1, w2, m)
    t = np.linspace(0, 4 * ln.time_to_learn(s=m.s[-1], a0=a0[-1]), 20)
    traj = _matrix_flow([w1, w2], m.sigma_yx, m.sigma_xx, t)
    measured = np.array([[m.u[:, k] @ _product(w) @ m.v[:, k] for k in range(m.rank)] for w in traj])
    theory = np.stack([ln.mode_strength(t, s=m.s[k], a0=a0[k]) for k in range(m.rank)], -1)
    assert np.max(np.abs(measured - theory) / m.s) < 0.03


def test_imbalance_is_conserved_by_gradient_flow():
    x, y = _dataset(5)
    m = ln.io_modes(x, y)
    rng = np.random.default_rng(1)
    w1, w2 = rng.standard_normal((4, 3)) * 0.5, rng.standard_normal((5, 4)) * 0.2
    end = _matrix_flow([w1, w2], m.sigma_yx, m.sigma_xx, np.array([0.0, 5.0]))[-1]
    np.testing.assert_allclose(ln.imbalance(*end), ln.imbalance(w1, w2), atol=1e-8)
    w1, w2 = ln.decoupled_init(m, a0=0.1, lam=0.6, hidden=5, seed=0)
    q = ln.imbalance(w1, w2)
    np.testing.assert_allclose(np.linalg.eigvalsh(q), [0, 0, 0.6, 0.6, 0.6], atol=1e-12)


def test_gated_gradient_descent_steps_down_the_finite_difference_gradient():
    x, y = _dataset(6, n_out=2)
    rng = np.random.default_rng(2)
    gates = np.array([[1, 1, 1, 1], [1, 0, 1, 0], [0, 0, 1, 1]])
    w1 = [rng.standard_normal((2, 3)) * 0.3 for _ in range(3)]
    w2 = [rng.standard_normal((2, 2)) * 0.3 for _ in range(3)]
    lr = 1e-3
    run = ln.gated_gradient_descent(x, y, w1, w2, gates=gates, lr=lr, epochs=1)

    def loss(a1, a2):
        f = sum(g[:, None] * (x @ (b @ a).T) for a, b, g in zip(a1, a2, gates))
        return 0.5 * np.mean(np.sum((y - f) ** 2, 1))

    h = 1e-6
    p, (i, j) = 1, (0, 2)
    plus = [w.copy() for w in w1]
    minus = [w.copy() for w in w1]
    plus[p][i, j] += h
    minus[p][i, j] -= h
    grad = (loss(plus, w2) - loss(minus, w2)) / (2 * h)
    assert run.w1[p][i, j] == pytest.approx(w1[p][i, j] - lr * grad, rel=1e-7)
    assert run.loss[0] == pytest.approx(loss(w1, w2))
    np.testing.assert_allclose(run.outputs(x, gates)[0].sum(0), sum(g[:, None] * (x @ (b @ a).T)
                                                                   for a, b, g in zip(w1, w2, gates)))


def test_gated_gradient_descent_with_small_steps_follows_the_sigmoid():
    x, y = _dataset(7)
    m = ln.io_modes(x, y)
    w1, w2 = ln.decoupled_init(m, a0=1e-3, hidden=3, seed=0)
    lr = 2e-3
    run = ln.gated_gradient_descent(x, y, w1, w2, lr=lr, epochs=4000)
    a = np.einsum("ok,toi,ik->tk", m.u, run.maps[:, 0], m.v)
    theory = np.stack([ln.mode_strength(np.arange(4001) * lr, s=m.s[k], a0=1e-3) for k in range(3)], -1)
    assert np.max(np.abs(a - theory)) < 0.01 * m.s[0]


@pytest.mark.parametrize("kwargs,match", [
    ({"s": 0.0, "a0": 0.1}, "`s` must be > 0"),
    ({"s": 1.0, "a0": 0.0}, "`a0` must be > 0"),
    ({"s": 1.0, "a0": 0.1, "depth": 0}, "`depth` must be an integer in \\[1, 1000\\]"),
    ({"s": 1.0, "a0": 0.1, "depth": 2.5}, "`depth` must be an integer"),
    ({"s": 1.0, "a0": 0.1, "depth": 3, "lam": 1.0}, "`lam`"),
    ({"s": 1.0, "a0": 0.1, "tau": -1.0}, "`tau` must be > 0"),
])
def test_bad_mode_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ln.mode_strength(1.0, **kwargs)
    with pytest.raises(ValueError, match=match):
        ln.time_to_learn(**kwargs)


def test_bad_inputs_name_the_argument():
    x, y = _dataset()
    m = ln.io_modes(x, y)
    with pytest.raises(ValueError, match="`t` must be >= 0"):
        ln.mode_strength(-1.0, s=1.0, a0=0.1)
    with pytest.raises(ValueError, match="`fraction` must lie in"):
        ln.time_to_learn(s=1.0, a0=0.6, fraction=0.5)
    with pytest.raises(ValueError, match="same number of rows"):
        ln.io_modes(x, y[:3])
    with pytest.raises(ValueError, match="uncorrelated"):
        ln.io_modes(x, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="`sigma_xx` must have shape"):
        ln.io_modes(x, y, sigma_xx=np.eye(2))
    with pytest.raises(ValueError, match="`hidden` must be >="):
        ln.decoupled_init(m, a0=0.1, hidden=2, seed=0)
    with pytest.raises(ValueError, match="`w2` must have as many columns"):
        ln.imbalance(np.zeros((3, 2)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="`strengths` must have last axis"):
        ln.pair_quantities(m, [0.1, 0.2], x[0], x[1])
    with pytest.raises(ValueError, match="`gates` must hold only 0 and 1"):
        ln.gated_gradient_descent(x, y, np.zeros((2, 3)), np.zeros((5, 2)), gates=np.full((1, 4), 0.5), lr=0.1,
                                  epochs=1)
    with pytest.raises(ValueError, match="`lr` must be > 0"):
        ln.gated_gradient_descent(x, y, np.zeros((2, 3)), np.zeros((5, 2)), lr=0.0, epochs=1)
