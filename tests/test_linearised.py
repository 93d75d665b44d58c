"""Unit tests for repalign.linearised: the matrix gradient flow of the linearised two-point model.

Independent evidence used here: a loss written from scratch from the paper's eqs. (5) and (16),
central finite differences of that loss, direct recomputation of the summary quantities (eq. 8), and
the geometry of the flow (does dh = D_h dx rotate or not).
"""

from __future__ import annotations

import numpy as np
import pytest

from repalign import linearised as lin


def _data(seed=0, n_x=4, n_y=3) -> lin.TwoPoints:
    rng = np.random.default_rng(seed)
    return lin.TwoPoints(rng.normal(size=n_x), rng.normal(size=n_x), rng.normal(size=n_y), rng.normal(size=n_y))


def _replace(state: lin.LinearisedState, name: str, value) -> lin.LinearisedState:
    fields = {"d_h": state.d_h, "d_y": state.d_y, "ybar": state.ybar}
    fields[name] = value
    return lin.LinearisedState(**fields)


def _loss_eq16(state: lin.LinearisedState, data: lin.TwoPoints) -> float:
    """Eq. (16) written out from eq. (5): L = 1/2 <||ybar + 1/2 D_y D_h (x_i - x_{-i}) - y_i||^2>."""
    preds = [
        state.ybar + 0.5 * state.d_y @ state.d_h @ (data.x1 - data.x2),
        state.ybar + 0.5 * state.d_y @ state.d_h @ (data.x2 - data.x1),
    ]
    errs = [np.sum((preds[0] - data.y1) ** 2), np.sum((preds[1] - data.y2) ** 2)]
    return 0.5 * np.mean(errs)


def _fd_gradient(state, data, name, eps=1e-6):
    """Central finite differences of the eq. (16) loss with respect to one parameter block."""
    p = getattr(state, name)
    g = np.zeros_like(p)
    for idx in np.ndindex(p.shape):
        plus, minus = p.copy(), p.copy()
        plus[idx] += eps
        minus[idx] -= eps
        g[idx] = (_loss_eq16(_replace(state, name, plus), data) - _loss_eq16(_replace(state, name, minus), data)) / (
            2 * eps
        )
    return g


# --------------------------------------------------------------------------------------------------
# loss and gradients


def test_loss_equals_eq16_written_from_predictions():
    """linearised.loss against the loss recomputed from the eq. (5) predictions of both points."""
    data = _data(1)
    states = [lin.aligned_init(data, 5, 1.3, seed=s, aligned=False) for s in range(4)]
    expected = np.array([_loss_eq16(s, data) for s in states])
    np.testing.assert_allclose(lin.loss(states, data), expected, rtol=1e-13, atol=0)


def test_gradient_ybar_matches_finite_differences_of_loss():
    """dL/dybar against central finite differences of the eq. (16) loss."""
    data = _data(2)
    state = lin.aligned_init(data, 5, 1.0, seed=3, aligned=False)
    fd = _fd_gradient(state, data, "ybar")
    np.testing.assert_allclose(lin.gradients(state, data).ybar, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", ["d_h", "d_y"])
def test_gradient_matrices_match_finite_differences_of_loss(name):
    """dL/dD_h and dL/dD_y against central finite differences of the eq. (16) loss (= linearised.loss).

    `gradients` is documented as the loss gradients; eq. (6) of the paper says dD/dt = -(1/tau) dL/dD.
    """
    data = _data(2)
    state = lin.aligned_init(data, 5, 1.0, seed=3, aligned=False)
    fd = _fd_gradient(state, data, name)
    got = getattr(lin.gradients(state, data), name)
    ratio = float(got.ravel() @ fd.ravel() / (fd.ravel() @ fd.ravel()))
    np.testing.assert_allclose(
        got, fd, rtol=1e-6, atol=1e-8, err_msg=f"gradients().{name} / finite-difference gradient ~ {ratio:.6f}"
    )


def test_gradients_vanish_at_the_target():
    """At D_y D_h dx = y2 - y1 and ybar = target mean the loss is minimal, so all gradients are 0."""
    data = _data(3, n_x=3, n_y=2)
    rng = np.random.default_rng(4)
    d_h = rng.normal(size=(4, 3))
    dh = d_h @ data.dx
    d_y = np.outer(data.dy_target, dh) / (dh @ dh)  # maps dh exactly onto y2 - y1
    g = lin.gradients(lin.LinearisedState(d_h, d_y, data.y_mean.copy()), data)
    for part in (g.d_h, g.d_y, g.ybar):
        np.testing.assert_allclose(part, 0.0, atol=1e-12)
    assert _loss_eq16(lin.LinearisedState(d_h, d_y, data.y_mean.copy()), data) == pytest.approx(0.0, abs=1e-24)


# --------------------------------------------------------------------------------------------------
# summary


def test_summary_equals_direct_recomputation():
    """summary against (||dh||^2, ||dy||^2, w) recomputed with einsum and w = dy.(dy - (y2 - y1))."""
    data = _data(5, n_x=3, n_y=2)
    states = [lin.aligned_init(data, 7, 0.8, seed=s, aligned=bool(s % 2)) for s in range(5)]
    got = lin.summary(states, data)
    assert got.shape == (5, 3)
    for row, s in zip(got, states):
        dh = np.einsum("ij,j->i", s.d_h, data.x2 - data.x1)
        dy = np.einsum("ij,j->i", s.d_y, dh)
        expected = [np.sum(dh**2), np.sum(dy**2), np.dot(dy, dy - (data.y2 - data.y1))]
        np.testing.assert_allclose(row, expected, rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------------------------------
# aligned_init and the no-rotation condition (eq. 19)


def _cosines_to_start(states, data):
    dh = np.array([s.d_h @ data.dx for s in states])
    return dh @ dh[0] / (np.linalg.norm(dh, axis=1) * np.linalg.norm(dh[0]))


def test_aligned_init_decoder_reads_only_along_dh():
    """With aligned=True, D_y(0) = m u^T with u = dh(0)/||dh(0)||: rank one, row space spanned by dh(0)."""
    data = _data(6)
    s = lin.aligned_init(data, 6, 1.0, seed=7, aligned=True)
    u = s.d_h @ data.dx
    u /= np.linalg.norm(u)
    np.testing.assert_allclose(s.d_y, np.outer(s.d_y @ u, u), atol=1e-14)
    assert s.d_h.shape == (6, 4) and s.d_y.shape == (3, 6) and s.ybar.shape == (3,)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_aligned_flow_keeps_dh_direction(seed):
    """aligned=True: dh = D_h dx stays parallel to dh(0) along the flow (cosine 1 to round-off)."""
    data = _data(0)
    s0 = lin.aligned_init(data, 6, 1.0, seed=seed, aligned=True)
    states = lin.flow(s0, data, np.linspace(0.0, 20.0, 41), rate_h=1.0, rate_y=0.5, rate_ybar=2.0)
    cos = _cosines_to_start(states, data)
    np.testing.assert_allclose(cos, 1.0, atol=1e-9)


def test_unaligned_flow_rotates_dh():
    """aligned=False (i.i.d. entries): dh rotates; with these data and seed the cosine drops below 0.95."""
    data = _data(0)
    s0 = lin.aligned_init(data, 6, 1.0, seed=1, aligned=False)
    states = lin.flow(s0, data, np.linspace(0.0, 20.0, 41), rate_h=1.0, rate_y=0.5, rate_ybar=2.0)
    cos = _cosines_to_start(states, data)
    assert cos.min() < 0.95


def test_aligned_init_is_seeded():
    """Same seed gives the same state, a different seed a different one."""
    data = _data(0)
    a = lin.aligned_init(data, 4, 1.0, seed=11)
    b = lin.aligned_init(data, 4, 1.0, seed=11)
    c = lin.aligned_init(data, 4, 1.0, seed=12)
    np.testing.assert_array_equal(a.pack(), b.pack())
    assert not np.allclose(a.pack(), c.pack())


# --------------------------------------------------------------------------------------------------
# flow


def test_flow_ybar_relaxes_exponentially_with_its_own_rate():
    """eq. (18): ybar(t) = mean + (ybar(0) - mean) exp(-rate_ybar t), independent of rate_h, rate_y."""
    data = _data(8)
    s0 = lin.aligned_init(data, 3, 1.0, seed=0, aligned=False)
    t = np.linspace(0.0, 3.0, 7)
    states = lin.flow(s0, data, t, rate_h=1.0, rate_y=0.5, rate_ybar=1.7)
    got = np.array([s.ybar for s in states])
    expected = data.y_mean + np.outer(np.exp(-1.7 * t), s0.ybar - data.y_mean)
    np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-10)


def test_flow_returns_initial_state_first_and_decreases_loss():
    """Gradient flow: states at every requested time, the first equal to state0, loss non-increasing."""
    data = _data(9)
    s0 = lin.aligned_init(data, 5, 0.7, seed=2, aligned=False)
    t = np.linspace(0.0, 15.0, 31)
    states = lin.flow(s0, data, t, rate_h=1.0, rate_y=0.8, rate_ybar=1.2)
    assert len(states) == t.size
    np.testing.assert_allclose(states[0].pack(), s0.pack(), rtol=0, atol=1e-15)
    loss = lin.loss(states, data)
    assert np.all(np.diff(loss) <= 1e-12)
    assert loss[-1] < 0.1 * loss[0]


def test_flow_is_deterministic():
    """Same inputs, bit-identical outputs."""
    data = _data(10)
    s0 = lin.aligned_init(data, 4, 1.0, seed=3, aligned=False)
    t = np.linspace(0.0, 5.0, 6)
    a = np.array([s.pack() for s in lin.flow(s0, data, t, rate_h=1.0, rate_y=0.5, rate_ybar=2.0)])
    b = np.array([s.pack() for s in lin.flow(s0, data, t, rate_h=1.0, rate_y=0.5, rate_ybar=2.0)])
    np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------------------------------
# bad input


def test_two_points_rejects_identical_inputs():
    with pytest.raises(ValueError, match="x1.*x2"):
        lin.TwoPoints([1.0, 2.0], [1.0, 2.0], [0.0], [1.0])


@pytest.mark.parametrize(
    "args, match",
    [
        (([1.0, 2.0], [1.0, 2.0, 3.0], [0.0], [1.0]), "x1.*x2"),
        (([1.0, 2.0], [0.0, 2.0], [0.0, 1.0], [1.0]), "y1.*y2"),
        (([[1.0, 2.0]], [[0.0, 2.0]], [0.0], [1.0]), "x1"),
        (([1.0, np.nan], [0.0, 2.0], [0.0], [1.0]), "x1"),
        (([1.0, 2.0], [0.0, 2.0], [0.0], [np.inf]), "y2"),
    ],
)
def test_two_points_rejects_bad_shapes_and_values(args, match):
    with pytest.raises(ValueError, match=match):
        lin.TwoPoints(*args)


@pytest.mark.parametrize(
    "field, bad, match",
    [
        ("d_h", np.zeros((5, 3)), "d_h"),  # wrong number of input columns (data have 4 inputs)
        ("d_y", np.zeros((3, 4)), "d_y"),  # should be (3, 5)
        ("ybar", np.zeros(2), "ybar"),  # should be (3,)
    ],
)
def test_flow_rejects_wrong_matrix_shapes(field, bad, match):
    data = _data(0)
    s0 = lin.aligned_init(data, 5, 1.0, seed=0)
    with pytest.raises(ValueError, match=match):
        lin.flow(_replace(s0, field, bad), data, [0.0, 1.0], rate_h=1.0, rate_y=1.0, rate_ybar=1.0)


@pytest.mark.parametrize(
    "rates, match",
    [((0.0, 1.0, 1.0), "rate_h"), ((1.0, -1.0, 1.0), "rate_y"), ((1.0, 1.0, 0.0), "rate_ybar"), ((np.nan, 1.0, 1.0), "rate_h")],
)
def test_flow_rejects_non_positive_rates(rates, match):
    data = _data(0)
    s0 = lin.aligned_init(data, 5, 1.0, seed=0)
    with pytest.raises(ValueError, match=match):
        lin.flow(s0, data, [0.0, 1.0], **dict(zip(("rate_h", "rate_y", "rate_ybar"), rates)))


@pytest.mark.parametrize("t", [[1.0, 0.0], [[0.0, 1.0]], [0.0, np.nan]])
def test_flow_rejects_bad_times(t):
    data = _data(0)
    s0 = lin.aligned_init(data, 5, 1.0, seed=0)
    with pytest.raises(ValueError, match="`t`"):
        lin.flow(s0, data, t, rate_h=1.0, rate_y=1.0, rate_ybar=1.0)


@pytest.mark.parametrize("n_hidden", [0, -2, 2.5])
def test_aligned_init_rejects_bad_n_hidden(n_hidden):
    with pytest.raises(ValueError, match="n_hidden"):
        lin.aligned_init(_data(0), n_hidden, 1.0, seed=0)


def test_aligned_init_rejects_non_positive_scale():
    with pytest.raises(ValueError, match="scale"):
        lin.aligned_init(_data(0), 3, 0.0, seed=0)
