"""Representational geometry: distance matrices, the theory's prediction for a whole dataset, MDS.

The two-point theory predicts one number per pair of points: the final squared hidden distance of
eq. (10)-(11). On a dataset of many points this module turns it into a matrix and compares it with the
network's own distance matrix.

=====================================  ===============================================  ============
function                               what                                             paper
=====================================  ===============================================  ============
:func:`sq_distances`                   squared Euclidean distances between rows          --
:func:`low_weight_distances`           eq. (10) at small weights: ``sqrt(tau_y/tau_h)      eq. (10)
                                       ||dx|| ||dy||`` for every pair
:func:`exponential_weighting`          ``sum_kl e^{-D_ik} e^{-D_lj} D_kl``, optionally     eq. (50)
                                       with a length scale and normalised weights
:func:`upper_entries`, :func:`pearson`  the entries a correlation uses, and Pearson's r    Fig. 9
:func:`triangle_violations`            share of triples whose distances break the         App. B.4
                                       triangle inequality
:func:`mds`                            seeded metric MDS (scikit-learn)                   Figs. 8, 12, 15
:func:`feature_shares`                 share of a context's hidden variance explained     Sec. 4.5
                                       by each feature of a grid
:func:`collinearity`                   variance share of the first principal component    App. C.2
:func:`context_gap`                    distance between the contexts at equal targets      App. C.2
=====================================  ===============================================  ============
"""

from __future__ import annotations

import numpy as np

from . import _validate as v

__all__ = ["sq_distances", "low_weight_distances", "exponential_weighting", "upper_entries", "pearson",
           "triangle_violations", "mds", "feature_shares", "collinearity", "context_gap"]


def sq_distances(a, b=None) -> np.ndarray:
    """Squared Euclidean distances between the rows of ``a`` (and of ``b``): (..., n, d) -> (..., n, m).

    Computed through the Gram matrix (memory ``n m`` rather than ``n m d``) of the rows centred on the
    mean of ``a``'s rows (distances do not change under a common shift, and centring removes the
    cancellation of large offsets, e.g. ``[[1e8], [1e8 + 1]]``), clipped at 0 and with an exact zero
    diagonal when ``b`` is None.

    >>> sq_distances([[0.0, 0.0], [3.0, 4.0]]).tolist()
    [[0.0, 25.0], [25.0, 0.0]]
    """
    a = v.finite_array("a", a)
    if a.ndim < 2:
        raise ValueError(f"`a` must have shape (..., n, d), got shape {a.shape}")
    same = b is None
    b = a if same else v.finite_array("b", b)
    if b.shape[-1] != a.shape[-1]:
        raise ValueError(f"`a` and `b` must have the same number of columns, got {a.shape[-1]} and {b.shape[-1]}")
    centre = a.mean(-2, keepdims=True)
    a = a - centre
    b = a if same else b - centre
    na = (a * a).sum(-1)
    nb = na if same else (b * b).sum(-1)
    d = na[..., :, None] + nb[..., None, :] - 2.0 * a @ np.swapaxes(b, -1, -2)
    if not np.isfinite(d).all():
        raise ValueError("the squared distances of `a` (and `b`) overflow float64; rescale the points")
    np.maximum(d, 0.0, out=d)
    if same:
        idx = np.arange(a.shape[-2])
        d[..., idx, idx] = 0.0
    return d


def low_weight_distances(x, y, *, tau_y_over_tau_h: float = 1.0) -> np.ndarray:
    """Eq. (10) in the small-weight limit for every pair: ``sqrt(tau_y_over_tau_h) ||x_i - x_j|| ||y_i - y_j||``.

    At small initial weights ``A_high -> 0`` and eq. (10) gives ``||dh(inf)||^2 = A_low``; ``tau_y_over_tau_h`` is
    ``tau_y / tau_h``. The released code's Fig. 9 used ``tau_y_over_tau_h = 1``.

    Parameters
    ----------
    x : array_like, shape (n, d_in)
    y : array_like, shape (n, d_out)
    tau_y_over_tau_h : float, keyword-only
        ``tau_y / tau_h`` (> 0). Default 1.

    Returns
    -------
    numpy.ndarray, shape (n, n)

    >>> low_weight_distances([[0.0], [2.0]], [[0.0], [1.0]], tau_y_over_tau_h=4.0).tolist()
    [[0.0, 4.0], [4.0, 0.0]]
    """
    x = v.finite_array("x", x, ndim=2)
    y = v.finite_array("y", y, ndim=2)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"`x` and `y` must have the same number of rows, got {x.shape[0]} and {y.shape[0]}")
    tau_y_over_tau_h = float(v.positive("tau_y_over_tau_h", tau_y_over_tau_h))
    return np.sqrt(tau_y_over_tau_h * sq_distances(x) * sq_distances(y))


def exponential_weighting(d, d_ref=None, *, scale: float = 1.0, normalise: bool = False) -> np.ndarray:
    """Eq. (50): ``P_ij = sum_kl e^{-D_ik / s} e^{-D_lj / s} D_kl`` -- predicted distances made consistent.

    ``d_ref`` (m, m) holds the theory's squared distances among the reference points ``k, l`` and ``d``
    (n, m) those from each point ``i`` of interest to them; with ``d_ref=None``, ``d`` is (n, n) and
    the points are their own references. Written as matrices, ``P = E D_ref E^T`` with ``E =
    exp(-d / s)``. Eq. (50) as printed is ``scale = 1``, ``normalise = False``: its size then grows
    with the number of neighbours. ``normalise=True`` divides each row of ``E`` by its sum, making
    ``P_ij`` a weighted *average* of theory distances, in the units of ``D``.

    Parameters
    ----------
    d : array_like, shape (n, m)
        Squared theory distances from the points of interest to the reference points (>= 0).
    d_ref : array_like, shape (m, m), optional
        Squared theory distances among the reference points; default ``d`` itself (then n = m).
    scale : float, keyword-only
        Length scale ``s`` of the weights (> 0). Default 1 (eq. 50).
    normalise : bool, keyword-only
        Normalise each point's weights to sum to 1. Default False (eq. 50).

    Returns
    -------
    numpy.ndarray, shape (n, n)

    Raises
    ------
    ValueError
        Negative or non-finite distances, shapes that do not match, or ``scale <= 0``.

    Examples
    --------
    Two points at squared distance 1, ``E = [[1, e^-1], [e^-1, 1]]``: ``P = E D E`` gives ``P_01 = 1 +
    e^-2`` and, as printed, a non-zero self-distance ``P_00 = 2 e^-1``.

    >>> p = exponential_weighting([[0.0, 1.0], [1.0, 0.0]])
    >>> bool(np.isclose(p[0, 1], 1 + np.exp(-2))), bool(np.isclose(p[0, 0], 2 * np.exp(-1)))
    (True, True)
    """
    d = v.non_negative("d", d)
    if d.ndim != 2:
        raise ValueError(f"`d` must be a 2-D matrix of squared distances, got shape {d.shape}")
    if d_ref is None:
        if d.shape[0] != d.shape[1]:
            raise ValueError(f"`d` must be square when `d_ref` is None, got shape {d.shape}")
        d_ref = d
    else:
        d_ref = v.non_negative("d_ref", d_ref)
        if d_ref.ndim != 2 or d_ref.shape != (d.shape[1], d.shape[1]):
            raise ValueError(f"`d_ref` must have shape ({d.shape[1]}, {d.shape[1]}) to match `d` {d.shape}, "
                             f"got {d_ref.shape}")
    scale = float(v.positive("scale", scale))
    # normalised: a softmax per row, shifted by the row's smallest distance, so no row underflows to 0 / 0
    if v.flag("normalise", normalise):
        from scipy.special import softmax

        e = softmax(-d / scale, axis=1)
    else:
        e = np.exp(-d / scale)
    return e @ d_ref @ e.T


def upper_entries(m, groups=None, *, between_groups: bool = False) -> np.ndarray:
    """The entries ``m[i, j]`` with ``i < j`` (the diagonal is left out), in row order.

    With ``groups`` (one label per row) and ``between_groups=True`` only pairs from different groups
    are kept (the off-diagonal blocks of a class-sorted matrix).

    >>> upper_entries(np.arange(9).reshape(3, 3)).tolist()
    [1, 2, 5]
    >>> upper_entries(np.arange(9).reshape(3, 3), [0, 0, 1], between_groups=True).tolist()
    [2, 5]
    """
    m = np.asarray(m)  # its own dtype: integer matrices give integer entries
    if m.dtype.kind in "fc" and not np.isfinite(m).all():
        raise ValueError("`m` must be finite (no NaN or inf)")
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"`m` must be a square matrix, got shape {m.shape}")
    i, j = np.triu_indices(m.shape[0], 1)
    if between_groups:
        if groups is None:
            raise ValueError("`groups` is required when `between_groups=True`")
        groups = np.asarray(groups)
        if groups.shape != (m.shape[0],):
            raise ValueError(f"`groups` must have one label per row ({m.shape[0]}), got shape {groups.shape}")
        keep = groups[i] != groups[j]
        i, j = i[keep], j[keep]
    return m[i, j]


def pearson(a, b) -> float:
    """Pearson's correlation coefficient of two equally long 1-D samples (each must vary).

    :func:`scipy.stats.pearsonr`, which centres and rescales each sample first, so that very large or
    very small values (1e160, 1e-200) neither overflow nor underflow.

    >>> pearson([1, 2, 3], [2, 4, 7]) > 0.98
    True
    """
    a = v.finite_array("a", a, ndim=1)
    b = v.finite_array("b", b, ndim=1)
    if a.shape != b.shape or a.size < 2:
        raise ValueError(f"`a` and `b` must be 1-D of the same length >= 2, got {a.shape} and {b.shape}")
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        raise ValueError("`a` and `b` must both vary: Pearson's r is undefined for a constant sample")
    from scipy.stats import pearsonr

    return float(pearsonr(a, b).statistic)


TRIANGLE_MAX_POINTS = 2000
"""Most points :func:`triangle_violations` accepts (its work grows as the cube: 8e9 triples at 2000)."""


def triangle_violations(sq, *, rtol: float = 1e-9) -> float:
    """Share of the triples that break the triangle inequality in a matrix of *squared* distances.

    The distances are ``d = sqrt(sq)``; a triple (an unordered pair ``i < j`` and a third point ``k``)
    breaks the inequality when ``d_ij > d_ik + d_kj + rtol * max(d)``. A metric (e.g. Euclidean
    distances between points) gives 0. App. B.4 introduces the exponential weighting (eq. 50) to
    reduce such violations of eq. (10)'s pairwise predictions, which ``sqrt`` of any squared Euclidean
    matrix never has.

    >>> triangle_violations(sq_distances(np.random.default_rng(0).normal(size=(30, 4))))
    0.0
    >>> triangle_violations([[0, 1, 16], [1, 0, 1], [16, 1, 0]])  # 4 > 1 + 1: one triple of three
    0.3333333333333333
    """
    sq = v.finite_array("sq", sq, ndim=2)
    n = sq.shape[0]
    if sq.shape != (n, n) or n < 3:
        raise ValueError(f"`sq` must be a square matrix of at least 3 points, got shape {sq.shape}")
    if n > TRIANGLE_MAX_POINTS:
        raise ValueError(f"`sq` has {n} points; at most {TRIANGLE_MAX_POINTS} are accepted (the work grows as "
                         "n**3): pass a subset")
    if (sq < 0).any():
        raise ValueError("`sq` must hold squared distances (no negative entries)")
    if not np.allclose(sq, sq.T, rtol=1e-12, atol=0):
        raise ValueError("`sq` must be symmetric")
    if isinstance(rtol, bool) or not isinstance(rtol, (int, float)) or not 0 <= rtol < 1:
        raise ValueError(f"`rtol` must be a number in [0, 1), got {rtol!r}")
    d = np.sqrt(sq)
    slack = rtol * float(d.max())
    upper = np.triu(np.ones((n, n), dtype=bool), 1)
    broken = 0
    for k in range(n):  # one n x n slice per third point: memory n**2, not n**3
        bad = d > d[:, k][:, None] + d[k, :][None, :] + slack
        bad[k, :] = bad[:, k] = False
        broken += int((bad & upper).sum())
    return broken / (n * (n - 1) // 2 * (n - 2))


MDS_MAX_INIT = 1000
"""Most random starts :func:`mds` accepts."""


def mds(h, *, n_components: int = 3, seed: int, n_init: int = 4, max_iter: int = 300) -> np.ndarray:
    """Metric MDS of the rows of ``h`` (Euclidean dissimilarities), seeded: scikit-learn's SMACOF.

    The released code ran :class:`sklearn.manifold.MDS` with 3 components and the defaults of its
    time: metric MDS, 4 random initialisations, 300 iterations; these are the defaults here, with
    ``random_state=seed`` so the same seed gives the same picture. MDS is defined up to a rotation and
    reflection; the result is centred and rotated onto its principal axes (largest variance first), and
    each axis is flipped so that its largest coordinate in absolute value is positive, which makes
    pictures comparable across runs.

    Parameters
    ----------
    h : array_like, shape (n, d)
    n_components : int, keyword-only
        Embedding dimension (>= 1). Default 3.
    seed : int, keyword-only
        Random state of the initialisations (>= 0).
    n_init, max_iter : int, keyword-only
        SMACOF restarts and iterations per restart (>= 1).

    Returns
    -------
    numpy.ndarray, shape (n, n_components)
    """
    from sklearn.manifold import MDS

    h = v.finite_array("h", h, ndim=2)
    for name, value in (("n_components", n_components), ("n_init", n_init), ("max_iter", max_iter)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"`{name}` must be an integer >= 1, got {value!r}")
    if n_init > MDS_MAX_INIT:
        raise ValueError(f"`n_init` must be at most {MDS_MAX_INIT} (each start is a full SMACOF run), got {n_init!r}")
    seed = v.seed("seed", seed)
    if h.shape[0] <= n_components:
        raise ValueError(f"`h` needs more rows than `n_components` ({n_components}), got {h.shape[0]}")
    emb = MDS(n_components=n_components, metric_mds=True, n_init=n_init, init="random", max_iter=max_iter,
              random_state=int(seed), metric="euclidean").fit_transform(h)
    emb = emb - emb.mean(0)
    _, _, vt = np.linalg.svd(emb, full_matrices=False)
    emb = emb @ vt.T
    extreme = emb[np.argmax(np.abs(emb), axis=0), np.arange(emb.shape[1])]
    return emb * np.where(extreme < 0, -1.0, 1.0)


def feature_shares(h, features, context=None) -> np.ndarray:
    """Share of the hidden variance within each context explained by each feature (two-way grid).

    Points sit on a grid of feature values (for the blobs: relevant and irrelevant blob position). The
    share of feature ``f`` in context ``c`` is ``sum_points ||mean_{same f value} h - mean h||^2 /
    sum_points ||h - mean h||^2``: the main effect of ``f`` in an analysis of variance. It is 0 when
    the representation does not change along ``f`` (collapsed) and 1 when it changes only along ``f``.
    On a full grid with additive structure the shares of all features sum to 1. A context whose points
    all coincide gets shares 0 (it changes along no feature).

    Parameters
    ----------
    h : array_like, shape (..., n, d)
        Hidden representations (a leading trial axis is allowed).
    features : sequence of array_like, each shape (n,)
        The feature values of every point.
    context : array_like, shape (n,), optional
        Context label of every point; shares are computed within each context. Default: one context.

    Returns
    -------
    numpy.ndarray, shape (..., n_contexts, n_features)

    >>> f1, f2 = np.repeat([0, 1], 2), np.tile([0, 1], 2)
    >>> h = np.stack([f1, 0 * f2], axis=1)  # changes along f1 only
    >>> feature_shares(h, [f1, f2]).round(6).tolist()
    [[1.0, 0.0]]
    """
    h = v.finite_array("h", h)
    if h.ndim < 2:
        raise ValueError(f"`h` must have shape (..., n, d), got shape {h.shape}")
    n = h.shape[-2]
    features = [np.asarray(f) for f in features]
    if not features or any(f.shape != (n,) for f in features):
        raise ValueError(f"`features` must be one or more arrays of shape ({n},)")
    context = np.zeros(n, int) if context is None else np.asarray(context)
    if context.shape != (n,):
        raise ValueError(f"`context` must have shape ({n},), got {context.shape}")
    out = []
    for c in np.unique(context):
        sel = context == c
        hc = h[..., sel, :]
        centred = hc - hc.mean(-2, keepdims=True)
        total = (centred ** 2).sum((-2, -1))
        shares = []
        for f in features:
            fc = f[sel]
            effect = np.zeros_like(centred)
            for value in np.unique(fc):
                m = fc == value
                effect[..., m, :] = centred[..., m, :].mean(-2, keepdims=True)
            # a collapsed context (no variance at all) changes along no feature: share 0, not 0 / 0
            shares.append(np.divide((effect ** 2).sum((-2, -1)), total, out=np.zeros_like(total),
                                    where=total > 0))
        out.append(np.stack(shares, -1))
    return np.stack(out, -2)


def collinearity(h) -> np.ndarray:
    """Fraction of the variance of the rows of ``h`` along their first principal component.

    1 when all points lie on one line, including the degenerate case of coincident points (no
    variance). ``h`` may have a leading trial axis: (..., n, d) -> (...).

    >>> round(float(collinearity([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])), 6)
    1.0
    """
    h = v.finite_array("h", h)
    if h.ndim < 2:
        raise ValueError(f"`h` must have shape (..., n, d), got shape {h.shape}")
    c = h - h.mean(-2, keepdims=True)
    s = np.linalg.svd(c, compute_uv=False)
    var = s ** 2
    total = var.sum(-1)
    if not np.isfinite(total).all():
        raise ValueError("the variance of `h` overflows float64; rescale `h`")
    out = np.divide(var[..., 0], total, out=np.ones_like(total), where=total > 0)
    return out if out.ndim else out[()]


def context_gap(h, context, target) -> np.ndarray:
    """How far apart two contexts keep points that share a target, relative to the whole spread.

    ``mean_v mean_{a in A_v, b in B_v} ||h_a - h_b||^2 / mean_{a, b} ||h_a - h_b||^2``, where ``A_v``
    and ``B_v`` are the points of context 0 and of context 1 with target ``v``. It is 0 when the two
    contexts' representations coincide (one shared line in Fig. 12) and about 1 or more when the
    contexts are as far apart as any two points; 0 also when all points coincide. ``h`` may have a
    leading trial axis.

    >>> h = np.array([[0.0], [1.0], [0.0], [1.0]])
    >>> float(context_gap(h, [0, 0, 1, 1], [0, 1, 0, 1]))
    0.0
    """
    h = v.finite_array("h", h)
    if h.ndim < 2:
        raise ValueError(f"`h` must have shape (..., n, d), got shape {h.shape}")
    n = h.shape[-2]
    context, target = np.asarray(context), np.asarray(target)
    if context.shape != (n,) or target.shape != (n,):
        raise ValueError(f"`context` and `target` must have shape ({n},), got {context.shape} and {target.shape}")
    labels = np.unique(context)
    if labels.size != 2:
        raise ValueError(f"`context` must hold exactly two contexts, got {labels.size}")

    def spread(a):  # mean squared distance of the rows to their mean
        return ((a - a.mean(-2, keepdims=True)) ** 2).sum(-1).mean(-1)

    gaps = []
    for value in np.unique(target):
        a = h[..., (context == labels[0]) & (target == value), :]
        b = h[..., (context == labels[1]) & (target == value), :]
        if a.shape[-2] == 0 or b.shape[-2] == 0:
            continue
        gaps.append(((a.mean(-2) - b.mean(-2)) ** 2).sum(-1) + spread(a) + spread(b))
    if not gaps:
        raise ValueError("no target value occurs in both contexts")
    total = np.asarray(2.0 * spread(h))
    gap = np.asarray(np.mean(gaps, axis=0))
    out = np.divide(gap, total, out=np.zeros_like(total), where=total > 0)  # coincident points: no gap
    return out if out.ndim else out[()]
