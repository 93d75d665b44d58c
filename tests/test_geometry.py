"""geometry: distances, eq. (10) at small weights, eq. (50) on hand-checkable cases, correlations, MDS
and the feature-collapse measures; data.blobs."""

import numpy as np
import pytest

from repalign import data, experiments, geometry


def test_sq_distances_match_the_definition():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(7, 5)), rng.normal(size=(4, 5))
    direct = ((a[:, None] - b[None]) ** 2).sum(-1)
    np.testing.assert_allclose(geometry.sq_distances(a, b), direct, rtol=1e-12, atol=1e-12)
    d = geometry.sq_distances(a)
    assert np.all(np.diag(d) == 0) and np.allclose(d, d.T)
    with pytest.raises(ValueError, match="same number of columns"):
        geometry.sq_distances(a, b[:, :3])


def test_low_weight_distances_are_eq10_with_a_high_zero():
    x = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]])
    y = np.array([[0.0], [1.0], [0.0]])
    d = geometry.low_weight_distances(x, y, tau_y_over_tau_h=2.0)
    # pair (0,1): sqrt(2) * 5 * 1; pair (0,2): same target -> 0; pair (1,2): sqrt(2) * sqrt(18) * 1
    np.testing.assert_allclose(d[0, 1], np.sqrt(2) * 5)
    assert d[0, 2] == 0
    np.testing.assert_allclose(d[1, 2], np.sqrt(2) * np.sqrt(18))
    with pytest.raises(ValueError, match="`tau_y_over_tau_h` must be > 0"):
        geometry.low_weight_distances(x, y, tau_y_over_tau_h=0)


def test_exponential_weighting_eq50_by_hand():
    """Three points with D = [[0, a, b], [a, 0, c], [b, c, 0]]: P_ij = sum_kl E_ik D_kl E_lj."""
    a, b, c = 1.0, 2.0, 0.5
    D = np.array([[0, a, b], [a, 0, c], [b, c, 0]])
    E = np.exp(-D)
    expected = np.array([[sum(E[i, k] * D[k, l] * E[l, j] for k in range(3) for l in range(3)) for j in range(3)]
                         for i in range(3)])
    np.testing.assert_allclose(geometry.exponential_weighting(D), expected, rtol=1e-13)
    # a length scale s: weights exp(-D/s); normalised: each row of weights sums to 1
    W = np.exp(-D / 2.0)
    W /= W.sum(1, keepdims=True)
    np.testing.assert_allclose(geometry.exponential_weighting(D, scale=2.0, normalise=True), W @ D @ W.T, rtol=1e-13)
    # reference points: d (n, m) to the references, d_ref (m, m) among them
    np.testing.assert_allclose(geometry.exponential_weighting(D[:2], D), expected[:2, :2], rtol=1e-13)


def test_exponential_weighting_block_structure_of_the_code():
    """Huge cross-class distances make the weights class indicators: P is constant on class blocks."""
    labels = np.array([0, 0, 1, 1, 1])
    D = np.where(labels[:, None] == labels[None], 0.0, 1000.0 + np.arange(25).reshape(5, 5) % 7)
    D = np.maximum(D, D.T)
    P = geometry.exponential_weighting(D)
    assert np.ptp(P[:2, 2:]) < 1e-9 and P[0, 2] == pytest.approx(D[:2, 2:].sum())


@pytest.mark.parametrize("kwargs, match", [
    (dict(d=[[0.0, -1.0], [-1.0, 0.0]]), "`d` is a squared distance"),
    (dict(d=[[0.0, 1.0, 2.0], [1.0, 0.0, 1.0]]), "`d` must be square"),
    (dict(d=[[0.0, 1.0], [1.0, 0.0]], d_ref=np.zeros((3, 3))), "`d_ref` must have shape"),
    (dict(d=[[0.0, 1.0], [1.0, 0.0]], scale=0.0), "`scale` must be > 0"),
])
def test_exponential_weighting_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        geometry.exponential_weighting(**kwargs)


def test_upper_entries_and_pearson():
    m = np.arange(16.0).reshape(4, 4)
    assert geometry.upper_entries(m).tolist() == [1, 2, 3, 6, 7, 11]
    assert geometry.upper_entries(m, [0, 0, 1, 1], between_groups=True).tolist() == [2, 3, 6, 7]
    assert geometry.pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert geometry.pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="must both vary"):
        geometry.pearson([1, 1, 1], [1, 2, 3])
    with pytest.raises(ValueError, match="`groups` is required"):
        geometry.upper_entries(m, between_groups=True)


def test_mds_is_seeded_and_keeps_distances():
    rng = np.random.default_rng(1)
    h = rng.normal(size=(40, 3)) @ np.diag([3.0, 1.0, 0.3])
    a, b = geometry.mds(h, seed=4), geometry.mds(h, seed=4)
    np.testing.assert_array_equal(a, b)
    d_in, d_out = geometry.sq_distances(h), geometry.sq_distances(a)
    assert geometry.pearson(geometry.upper_entries(d_in), geometry.upper_entries(d_out)) > 0.99
    with pytest.raises(ValueError, match="`seed` must be an integer >= 0"):
        geometry.mds(h, seed=-1)


def test_feature_shares_collinearity_and_context_gap():
    blobs = data.blobs(n_centres=6)
    f = [blobs.relevant, blobs.irrelevant]
    square = np.stack([blobs.mu_x, blobs.mu_y, 5.0 * blobs.context], axis=1)  # each context keeps its square
    collapsed = np.stack([blobs.relevant, 0 * blobs.mu_y, 5.0 * blobs.context], axis=1)
    one_line = np.stack([blobs.relevant, 0 * blobs.mu_y, 0 * blobs.context], axis=1)
    np.testing.assert_allclose(geometry.feature_shares(square, f, blobs.context), 0.5, atol=1e-12)
    np.testing.assert_allclose(geometry.feature_shares(collapsed, f, blobs.context)[:, 1], 0.0, atol=1e-12)
    assert geometry.context_gap(one_line, blobs.context, blobs.y[:, 0]) == pytest.approx(0.0, abs=1e-12)
    assert geometry.context_gap(collapsed, blobs.context, blobs.y[:, 0]) > 1.0
    assert geometry.collinearity(one_line) == pytest.approx(1.0)
    assert geometry.collinearity(square) < 1.0
    stacked = np.stack([square, collapsed])  # a leading trial axis
    assert geometry.feature_shares(stacked, f, blobs.context).shape == (2, 2, 2)
    assert geometry.context_gap(stacked, blobs.context, blobs.y[:, 0]).shape == (2,)


def test_blobs_match_the_released_code():
    d = data.blobs()
    assert d.x.shape == (1800, 27) and d.y.shape == (1800, 1)
    np.testing.assert_allclose(d.images.sum(axis=(1, 2)), 1.0)
    k = 7 * 30 + 11  # context 0, mu_x = centres[7], mu_y = centres[11]
    c = np.linspace(-1, 1, 30)
    assert (d.mu_x[k], d.mu_y[k]) == (c[7], c[11]) and d.y[k, 0] == c[7] and d.y[900 + k, 0] == c[11]
    g = np.linspace(-1, 1, 5)
    img = np.exp(-((g[None, :] - c[7]) ** 2 + (g[:, None] - c[11]) ** 2) / 2)
    np.testing.assert_allclose(d.images[k], img / img.sum(), rtol=1e-12)  # rows = y, columns = x
    assert d.x[k, -2:].tolist() == [1.0, 0.0] and d.x[900 + k, -2:].tolist() == [0.0, 1.0]
    assert not d.x.flags.writeable
    with pytest.raises(ValueError, match="`n_centres` must be an integer >= 2"):
        data.blobs(n_centres=1)
    with pytest.raises(ValueError, match="`variance` must be > 0"):
        data.blobs(variance=0)


def test_sorted_first_is_stable():
    labels = np.array([5, 0, 4, 1, 0, 9, 1])
    idx = experiments.sorted_first(labels, 5)
    assert idx.tolist() == [1, 4, 3, 2, 0]
    with pytest.raises(ValueError, match="`n` must be an integer"):
        experiments.sorted_first(labels, 0)


def test_weighted_predictions_on_a_tiny_set():
    x = np.array([[0.0], [1.0], [3.0]])
    y = np.eye(2)[[0, 1, 1]]
    p = experiments.weighted_predictions(x, y, [0, 2], tau_y_over_tau_h=4.0, x_raw=x)
    full = geometry.low_weight_distances(x, y, tau_y_over_tau_h=4.0)
    np.testing.assert_allclose(p["eq10"], full[np.ix_([0, 2], [0, 2])])
    raw = geometry.low_weight_distances(x, y)
    np.testing.assert_allclose(p["eq50_code"], geometry.exponential_weighting(raw[[0, 2]], raw))
    assert p["eq50_normalised"].shape == (2, 2)


# --- issue 21: numerically fragile formulas computed stably


def test_sq_distances_survive_a_large_common_offset():
    assert geometry.sq_distances([[1e8], [1e8 + 1]]).tolist() == [[0.0, 1.0], [1.0, 0.0]]
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(5, 4)) + 1e7, rng.normal(size=(3, 4)) + 1e7
    exact = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)  # independent: explicit differences
    np.testing.assert_allclose(geometry.sq_distances(a, b), exact, rtol=1e-8)


def test_pearson_is_stable_for_very_large_and_small_values():
    base = np.corrcoef([1.0, 2.0, 3.0, 5.0], [2.0, 4.0, 7.0, 1.0])[0, 1]  # independent, at unit scale
    for scale in (1e160, 1e-200):
        got = geometry.pearson(np.array([1.0, 2.0, 3.0, 5.0]) * scale, np.array([2.0, 4.0, 7.0, 1.0]) * scale)
        assert got == pytest.approx(base, rel=1e-12)
    assert geometry.pearson([1e8, 1e8 + 1, 1e8 + 3], [0.0, 1.0, 3.0]) == pytest.approx(1.0, rel=1e-12)


def test_degenerate_inputs_give_defined_values_not_nan():
    h = np.ones((4, 3))  # every point coincides
    f1, f2 = np.repeat([0, 1], 2), np.tile([0, 1], 2)
    assert geometry.collinearity(h) == 1.0 and geometry.collinearity(np.ones((2, 4, 3))).tolist() == [1.0, 1.0]
    assert geometry.feature_shares(h, [f1, f2]).tolist() == [[0.0, 0.0]]
    assert geometry.context_gap(h, [0, 0, 1, 1], [0, 1, 0, 1]) == 0.0
    # exponential weighting with weights that underflow exp(): the softmax keeps each row an average
    d = np.array([[0.0, 1e4], [1e4, 0.0]]) + 1e4
    p = geometry.exponential_weighting(d, normalise=True)
    np.testing.assert_allclose(p, d)  # independent: E = identity after normalising, so P = D


def test_normalised_exponential_weighting_matches_the_direct_formula():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(20, 20))
    d = x + x.T
    np.fill_diagonal(d, 0.0)
    e = np.exp(-d / 0.7)
    e /= e.sum(1, keepdims=True)
    np.testing.assert_allclose(geometry.exponential_weighting(d, scale=0.7, normalise=True), e @ d @ e.T, rtol=1e-13)


def test_overflowing_inputs_raise_instead_of_returning_inf():
    with pytest.raises(ValueError, match="overflow float64; rescale"):
        geometry.sq_distances([[1e300], [0.0]])
    with pytest.raises(ValueError, match="`h` overflows float64"):
        geometry.collinearity([[1e300], [0.0]])


def test_upper_entries_rejects_non_finite_matrices():
    import numpy as np
    import pytest

    from repalign import geometry

    with pytest.raises(ValueError, match="`m` must be finite"):
        geometry.upper_entries(np.full((3, 3), np.nan))
    assert geometry.upper_entries(np.arange(9).reshape(3, 3)).dtype.kind == "i"


def test_triangle_violations_zero_for_a_metric_and_counted_for_a_broken_one():
    rng = np.random.default_rng(1)
    assert geometry.triangle_violations(geometry.sq_distances(rng.normal(size=(40, 6)))) == 0.0
    # eq. (10) at small weights on two classes: 0 within a class, the input distance across. Points 0, 1
    # of class a and 2 of class b with ||x0 - x2|| = 2, ||x1 - x2|| = 1: d02 = 2 > d01 + d12 = 0 + 1.
    sq = np.array([[0.0, 0.0, 4.0], [0.0, 0.0, 1.0], [4.0, 1.0, 0.0]])
    assert geometry.triangle_violations(sq) == pytest.approx(1 / 3)
    # counted by brute force on a random non-metric matrix
    a = rng.uniform(0, 1, (9, 9))
    sq = (a + a.T) ** 2
    np.fill_diagonal(sq, 0)
    d = np.sqrt(sq)
    brute = [d[i, j] > d[i, k] + d[k, j] + 1e-9 * d.max()
             for i in range(9) for j in range(i + 1, 9) for k in range(9) if k not in (i, j)]
    assert geometry.triangle_violations(sq) == pytest.approx(np.mean(brute))
    assert 0 < np.mean(brute) < 1


@pytest.mark.parametrize("bad, match", [
    (np.zeros((2, 2)), "at least 3"), (np.zeros((3, 4)), "square"), (-np.ones((3, 3)), "negative"),
    (np.array([[0, 1, 2], [1, 0, 1], [3, 1, 0.0]]), "symmetric"), (np.full((3, 3), np.nan), "finite"),
])
def test_triangle_violations_rejects_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        geometry.triangle_violations(bad)
    with pytest.raises(ValueError, match="rtol"):
        geometry.triangle_violations(np.zeros((3, 3)), rtol=-1)
