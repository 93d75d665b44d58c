"""Exact learning dynamics of deep linear networks (Saxe et al. 2014; Braun et al. 2022), the background
of the book's chapter 0.

A linear network ``f(x) = W_D ... W_1 x`` trained by gradient flow on the loss ``1/2 mean ||y - f(x)||^2``
(the paper's eq. (1)) sees the data only through the input and input-output correlations
``Sigma_xx = E[x x^T]`` and ``Sigma_yx = E[y x^T]``. With whitened inputs (``Sigma_xx = I``) and weights
that start aligned with the singular value decomposition ``Sigma_yx = U S V^T`` ("decoupled"), every
mode ``alpha`` evolves on its own: its strength ``a_alpha = u_alpha^T W_D ... W_1 v_alpha`` follows a
scalar chain of ``D`` weights with target ``s_alpha``.

==================  ==========================================  ======================
code                symbol                                       meaning
==================  ==========================================  ======================
``s``               s_alpha                                      singular value of Sigma_yx
``a0``, ``a``       a_alpha(0), a_alpha(t)                       mode strength
``tau``             tau                                          time constant, 1/learning rate
``depth``           D                                            number of weight matrices
``lam``             lambda                                       c^2 - d^2 of a two-layer mode
==================  ==========================================  ======================

Time is gradient-flow time: gradient descent with learning rate ``eta`` for ``k`` epochs is
``t = eta k`` at ``tau = 1``. Everything here is plain numpy/scipy.

References
----------
A. M. Saxe, J. L. McClelland, S. Ganguli, "Exact solutions to the nonlinear dynamics of learning in deep
linear neural networks", ICLR 2014. L. Braun, C. Dominé, J. Fitzgerald, A. Saxe, "Exact learning
dynamics of deep linear networks with prior knowledge", NeurIPS 2022. A. Saxe, S. Sodhani, S. Lewallen,
"The neural race reduction", ICML 2022.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np
from scipy.integrate import quad, solve_ivp

from . import _validate as v

__all__ = ["Modes", "io_modes", "mode_strength", "time_to_learn", "effective_initial_strength",
           "decoupled_init", "imbalance", "pair_quantities", "GatedRun", "gated_gradient_descent"]


@dataclass(frozen=True, eq=False)
class Modes:
    """The correlations of a dataset and the singular value decomposition of ``Sigma_yx``.

    Attributes
    ----------
    sigma_yx : numpy.ndarray, shape (output_dim, input_dim)
        ``E[y x^T]`` over the points.
    sigma_xx : numpy.ndarray, shape (input_dim, input_dim)
        ``E[x x^T]`` over the points, or the one given.
    u : numpy.ndarray, shape (output_dim, rank)
        Output singular vectors (columns), one per mode, by decreasing singular value.
    s : numpy.ndarray, shape (rank,)
        Non-zero singular values, decreasing.
    v : numpy.ndarray, shape (input_dim, rank)
        Input singular vectors (columns).
    whitened : bool
        ``sigma_xx`` equals the identity (to 1e-10): only then do the modes decouple exactly.
    """

    sigma_yx: np.ndarray
    sigma_xx: np.ndarray
    u: np.ndarray
    s: np.ndarray
    v: np.ndarray
    whitened: bool

    @property
    def rank(self) -> int:
        return self.s.size


def io_modes(x, y, *, sigma_xx=None, rtol: float = 1e-10) -> Modes:
    """The input-output correlation of ``(x, y)`` and its modes.

    Parameters
    ----------
    x : array_like, shape (n_points, input_dim)
    y : array_like, shape (n_points, output_dim)
    sigma_xx : array_like, shape (input_dim, input_dim), optional, keyword-only
        The input correlation to report instead of ``x^T x / n_points`` (e.g. the population value).
    rtol : float, keyword-only
        Singular values below ``rtol * s_max`` count as zero (> 0).

    Returns
    -------
    Modes

    Raises
    ------
    ValueError
        ``x`` or ``y`` not 2-D and finite, different numbers of rows, a ``sigma_xx`` of the wrong
        shape, not symmetric, or ``Sigma_yx = 0``.

    Examples
    --------
    >>> import numpy as np
    >>> m = io_modes(np.eye(2) * np.sqrt(2), np.array([[2.0], [0.0]]) * np.sqrt(2))
    >>> m.s.round(6).tolist(), m.whitened
    ([2.0], True)
    """
    x = v.finite_array("x", x, ndim=2)
    y = v.finite_array("y", y, ndim=2)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"`x` and `y` must have the same number of rows (points), got {x.shape[0]} and {y.shape[0]}")
    rtol = float(v.positive("rtol", rtol))
    n, d = x.shape
    sxy = y.T @ x / n
    if sigma_xx is None:
        sxx = x.T @ x / n
    else:
        sxx = v.finite_array("sigma_xx", sigma_xx, shape=(d, d))
        if not np.allclose(sxx, sxx.T, atol=1e-12):
            raise ValueError("`sigma_xx` must be symmetric")
    v.finite_output(sxy, "the input-output correlation", "rescale `x` and `y`")
    v.finite_output(sxx, "the input correlation", "rescale `x`")
    u, s, vt = np.linalg.svd(sxy, full_matrices=False)
    if s.size == 0 or s[0] == 0:
        raise ValueError("`y` is uncorrelated with `x` (Sigma_yx = 0): there are no modes to learn")
    keep = s > rtol * s[0]
    for arr in (sxy, sxx):
        arr.flags.writeable = False
    return Modes(sxy, sxx, u[:, keep], s[keep], vt[keep].T, bool(np.allclose(sxx, np.eye(d), atol=1e-10)))


#: Deepest chain :func:`mode_strength` and :func:`time_to_learn` take (bounded work; the balanced
#: chain's integrand is stiff as ``a ** (1 - 2 / depth)`` for large depths).
MAX_DEPTH = 1000


def _scalars(s, a0, tau, lam, depth):
    s = float(v.positive("s", s))
    tau = float(v.positive("tau", tau))
    a0 = float(v.finite_array("a0", a0))
    lam = abs(float(v.finite_array("lam", lam)))
    if lam and depth != 2:
        raise ValueError(f"`lam` (lambda-balanced start) is defined for depth 2 only, got depth={depth}; use lam=0")
    if depth >= 2 and lam == 0 and a0 <= 0:
        raise ValueError(f"`a0` must be > 0 for a balanced deep network (a0 = 0 is the saddle), got {a0!r}")
    return s, a0, tau, lam


def _lambda_constants(s, a0, lam):
    """``u = e^theta`` with ``a = (lam/2) sinh(theta)`` obeys a logistic (Riccati) equation with roots u+-."""
    s_lam = np.hypot(s, lam / 2)
    u_plus, u_minus = 2 * (s + s_lam) / lam, 2 * (s - s_lam) / lam
    u0 = np.exp(np.arcsinh(2 * a0 / lam))
    c = (u0 - u_plus) / (u0 - u_minus)
    return s_lam, u_plus, u_minus, c


def _chain_rhs(t, log_a, s, depth, tau):
    a = np.exp(log_a)
    return depth * a ** (1 - 2 / depth) * (s - a) / tau


def mode_strength(t, *, s: float, a0: float, depth: int = 2, lam: float = 0.0, tau: float = 1.0) -> np.ndarray:
    """Strength ``a(t)`` of one mode of a decoupled linear network under gradient flow.

    ``depth=1``: ``tau da/dt = s - a``, so ``a(t) = s (1 - e^{-t/tau}) + a0 e^{-t/tau}`` (exponential).

    ``depth=2``, balanced (``lam=0``): ``tau da/dt = 2 a (s - a)``, the sigmoid of Saxe et al. (2014),
    ``a(t) = s e^{2st/tau} / (e^{2st/tau} - 1 + s/a0)``.

    ``depth=2``, lambda-balanced: the mode's output weight ``c`` and input weight ``d`` keep
    ``c^2 - d^2 = lam``, so ``tau da/dt = sqrt(4 a^2 + lam^2) (s - a)``; with ``a = (lam/2) sinh(theta)``
    and ``u = e^theta`` this is a logistic equation, solved in closed form. Large ``|lam|`` makes the
    dynamics exponential (lazy-like) with rate ``2 s_lam = sqrt(4 s^2 + lam^2)``.

    ``depth >= 3``, balanced (every layer's mode weight equal, ``a = b^D``):
    ``tau da/dt = D a^{2 - 2/D} (s - a)``, integrated numerically (relative tolerance 1e-11).

    Parameters
    ----------
    t : array_like
        Times (>= 0); any shape.
    s : float, keyword-only
        Singular value of the mode (> 0).
    a0 : float, keyword-only
        Initial strength; > 0 for a balanced deep network (0 is the saddle point).
    depth : int, keyword-only
        Number of weight matrices ``D`` (>= 1).
    lam : float, keyword-only
        ``c^2 - d^2`` of a two-layer mode (only ``depth=2``); the dynamics depend on ``|lam|``.
    tau : float, keyword-only
        Time constant (> 0).

    Returns
    -------
    numpy.ndarray
        ``a(t)``, the shape of ``t``.

    Raises
    ------
    ValueError
        Non-positive ``s`` or ``tau``, negative ``t``, ``a0 <= 0`` for a balanced deep network,
        ``depth < 1``, or ``lam != 0`` with ``depth != 2``.

    References
    ----------
    Saxe et al. (2014), eqs. (5)-(8); Braun et al. (2022), eqs. (13)-(15).

    Examples
    --------
    >>> float(mode_strength(0.0, s=1.0, a0=1e-3))
    0.001
    >>> round(float(mode_strength(50.0, s=1.0, a0=1e-3)), 6)
    1.0
    """
    depth = v.integer("depth", depth, high=MAX_DEPTH, meaning="the number of weight matrices")
    s, a0, tau, lam = _scalars(s, a0, tau, lam, depth)
    t = v.finite_array("t", t)
    if np.any(t < 0):
        raise ValueError("`t` must be >= 0 (times since the start of training)")
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        out = _mode_strength(t, s, a0, depth, lam, tau)
    return v.finite_output(out, "the mode strength", "lower `a0` or `s`")


def _mode_strength(t, s, a0, depth, lam, tau):
    """:func:`mode_strength` after validation (the closed forms and the depth >= 3 integration)."""
    if depth == 1:
        e = np.exp(-t / tau)
        return s * (1 - e) + a0 * e
    if depth == 2 and lam == 0:
        with np.errstate(over="ignore"):
            g = np.exp(-2 * s * t / tau)  # divide numerator and denominator by e^{2st/tau}: no overflow
        return s / (1 + g * (s / a0 - 1))
    if depth == 2:
        s_lam, u_plus, u_minus, c = _lambda_constants(s, a0, lam)
        e = np.exp(-2 * s_lam * t / tau)
        u = (u_plus - c * u_minus * e) / (1 - c * e)
        return lam / 4 * (u - 1 / u)
    grid, where = np.unique(np.concatenate([[0.0], t.ravel()]), return_inverse=True)
    if grid.size == 1:
        return np.full(t.shape, a0)
    sol = solve_ivp(_chain_rhs, (0.0, grid[-1]), [np.log(a0)], t_eval=grid, args=(s, depth, tau),
                    method="DOP853", rtol=1e-11, atol=1e-12)
    if not sol.success:
        raise RuntimeError(f"integrating the depth-{depth} chain failed: {sol.message}")
    out = np.exp(sol.y[0])[where[1:]]
    return out.reshape(t.shape)


def time_to_learn(*, s: float, a0: float, depth: int = 2, fraction: float = 0.5, lam: float = 0.0,
                  tau: float = 1.0) -> float:
    """Gradient-flow time for a mode to grow from ``a0`` to ``fraction * s`` (the end of its plateau).

    Closed forms for ``depth`` 1 and 2 (the inverse of :func:`mode_strength`); for ``depth >= 3`` the
    quadrature ``t = tau/D * int_{a0}^{fraction s} a^{2/D - 2} / (s - a) da``. For small ``a0`` it grows
    like ``ln(s/a0) / (2s)`` at ``depth=2`` and like ``a0^{-(1 - 2/D)} / (s (D - 2))`` for ``D >= 3``:
    deeper networks wait longer on the plateau, and far longer the smaller the start.

    Parameters
    ----------
    s, a0, depth, lam, tau
        As in :func:`mode_strength`, keyword-only.
    fraction : float, keyword-only
        Target strength as a fraction of ``s``, in ``(0, 1)``; must exceed ``a0 / s``.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        As :func:`mode_strength`, or ``fraction`` outside ``(a0/s, 1)``.

    Examples
    --------
    >>> round(time_to_learn(s=1.0, a0=1e-3), 4)  # ln(999) / 2
    3.4534
    """
    depth = v.integer("depth", depth, high=MAX_DEPTH, meaning="the number of weight matrices")
    s, a0, tau, lam = _scalars(s, a0, tau, lam, depth)
    fraction = float(v.finite_array("fraction", fraction))
    if not (a0 / s < fraction < 1):
        raise ValueError(f"`fraction` must lie in (a0/s, 1) = ({a0 / s:.3g}, 1), got {fraction!r}")
    target = fraction * s
    if depth == 1:
        return tau * float(np.log((s - a0) / (s - target)))
    if depth == 2 and lam == 0:
        return tau / (2 * s) * float(np.log(fraction * (s / a0 - 1) / (1 - fraction)))
    if depth == 2:
        s_lam, u_plus, u_minus, c = _lambda_constants(s, a0, lam)
        u = np.exp(np.arcsinh(2 * target / lam))
        return -tau / (2 * s_lam) * float(np.log((u - u_plus) / (c * (u - u_minus))))
    # substitute a = e^r to integrate evenly over the decades between a0 and the target
    val, _ = quad(lambda r: np.exp(r) ** (2 / depth - 1) / (s - np.exp(r)), np.log(a0), np.log(target),
                  epsabs=0.0, epsrel=1e-11, limit=200)
    return tau / depth * val


def _weights(w1, w2):
    w1 = v.finite_array("w1", w1, ndim=2)
    w2 = v.finite_array("w2", w2, ndim=2)
    if w2.shape[1] != w1.shape[0]:
        raise ValueError(f"`w2` must have as many columns as `w1` has rows (hidden units), "
                         f"got {w2.shape} and {w1.shape}")
    return w1, w2


def effective_initial_strength(w1, w2, modes: Modes) -> np.ndarray:
    """The start ``a0`` that small *random* two-layer weights give each mode's sigmoid.

    Near the origin the loss is nearly flat and gradient flow is linear: with ``r = W1 v`` and
    ``q = W2^T u`` for one mode, ``dr/dt = s q`` and ``dq/dt = s r``. So ``r - q`` decays like
    ``e^{-st}`` and ``r + q`` grows like ``e^{st}``; once aligned, ``a = q . r`` grows like
    ``|r0 + q0|^2 / 4 e^{2st}``, the early part of the balanced sigmoid with
    ``a0 = |W1(0) v + W2(0)^T u|^2 / 4``.

    Parameters
    ----------
    w1 : array_like, shape (hidden, input_dim)
    w2 : array_like, shape (output_dim, hidden)
    modes : Modes

    Returns
    -------
    numpy.ndarray, shape (modes.rank,)

    Raises
    ------
    ValueError
        Weights not finite 2-D matrices whose shapes fit each other and ``modes``.
    """
    w1, w2 = _weights(w1, w2)
    if w1.shape[1] != modes.v.shape[0] or w2.shape[0] != modes.u.shape[0]:
        raise ValueError(f"`w1` and `w2` must map input_dim={modes.v.shape[0]} to output_dim={modes.u.shape[0]}, "
                         f"got shapes {w1.shape} and {w2.shape}")
    return v.finite_output(np.sum((w1 @ modes.v + w2.T @ modes.u) ** 2, axis=0) / 4,
                           "the effective strength", "rescale `w1` and `w2`")


def decoupled_init(modes: Modes, *, a0, lam: float = 0.0, hidden: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two-layer weights aligned with the modes: ``W1 = R D V^T``, ``W2 = U C R^T``.

    ``R`` (hidden x rank) has random orthonormal columns; mode ``alpha`` gets output weight ``c`` and
    input weight ``d`` with ``c d = a0`` and ``c^2 - d^2 = lam``. ``lam = 0`` is balanced, large
    ``|lam|`` unbalanced. Then :func:`mode_strength` is the exact solution of every mode.

    Parameters
    ----------
    modes : Modes
    a0 : float or array_like, keyword-only
        Initial strength of every mode (>= 0; > 0 when ``lam == 0``), one value or one per mode.
    lam : float, keyword-only
        ``c^2 - d^2``, the same for every mode (``W2^T W2 - W1 W1^T = lam R R^T``).
    hidden : int, keyword-only
        Hidden units (>= ``modes.rank``).
    seed : int, keyword-only
        Seed of ``R`` (>= 0).

    Returns
    -------
    (w1, w2) : numpy.ndarray, shapes (hidden, input_dim) and (output_dim, hidden)

    Raises
    ------
    ValueError
        ``hidden < modes.rank``, a negative ``seed``, or a bad ``a0``.
    """
    hidden = operator.index(hidden)
    if hidden < modes.rank:
        raise ValueError(f"`hidden` must be >= the number of modes ({modes.rank}), got {hidden}")
    seed = operator.index(seed)
    if seed < 0:
        raise ValueError(f"`seed` must be >= 0, got {seed}")
    a0 = np.broadcast_to(v.non_negative("a0", a0), (modes.rank,)).astype(float)
    lam = float(v.finite_array("lam", lam))
    if lam == 0 and np.any(a0 <= 0):
        raise ValueError("`a0` must be > 0 for a balanced start (lam=0)")
    d = np.sqrt((np.sqrt(lam**2 + 4 * a0**2) - lam) / 2)
    c = np.sqrt(d**2 + lam)
    r, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((hidden, modes.rank)))
    w1, w2 = r @ np.diag(d) @ modes.v.T, modes.u @ np.diag(c) @ r.T
    return v.finite_output(w1, "the initial weights", "lower `a0`"), v.finite_output(w2, "the initial weights",
                                                                                     "lower `a0`")


def imbalance(w1, w2) -> np.ndarray:
    """``W2^T W2 - W1 W1^T`` (hidden x hidden), conserved by gradient flow on any data.

    It is ``lam I`` on the modes' hidden directions for :func:`decoupled_init`, and 0 for a balanced
    network. Raises ``ValueError`` for weights whose shapes do not fit.
    """
    w1, w2 = _weights(w1, w2)
    return v.finite_output(w2.T @ w2 - w1 @ w1.T, "the imbalance", "rescale `w1` and `w2`")


def pair_quantities(modes: Modes, strengths, x_i, x_j, *, lam: float = 0.0) -> np.ndarray:
    """``(dh_sq, dy_sq, w)`` of a decoupled two-layer network for the pair ``x_i, x_j`` (whitened inputs).

    With mode strengths ``a`` and projections ``p = V^T (x_j - x_i)``, the hidden layer holds
    ``d_alpha p_alpha`` along each mode with ``d^2 = (sqrt(lam^2 + 4 a^2) - lam) / 2``, so
    ``dh_sq = sum d^2 p^2``, ``dy_sq = sum a^2 p^2`` and, when the targets are the linear map
    ``U S V^T x``, ``w = dy_sq - dy . (y_j - y_i) = sum a (a - s) p^2``.

    Parameters
    ----------
    modes : Modes
    strengths : array_like, shape (..., rank)
        Mode strengths, e.g. :func:`mode_strength` of each mode on a time grid (last axis: the modes).
    x_i, x_j : array_like, shape (input_dim,)
    lam : float, keyword-only

    Returns
    -------
    numpy.ndarray, shape (..., 3)

    Raises
    ------
    ValueError
        ``strengths`` whose last axis is not ``modes.rank``, or inputs of the wrong length.
    """
    a = v.finite_array("strengths", strengths)
    if a.ndim == 0 or a.shape[-1] != modes.rank:
        raise ValueError(f"`strengths` must have last axis of length {modes.rank} (one per mode), got shape {a.shape}")
    d_in = modes.v.shape[0]
    p2 = (modes.v.T @ (v.finite_array("x_j", x_j, shape=(d_in,)) - v.finite_array("x_i", x_i, shape=(d_in,)))) ** 2
    lam = float(v.finite_array("lam", lam))
    d_sq = (np.sqrt(lam**2 + 4 * a**2) - lam) / 2
    return np.stack([d_sq @ p2, a**2 @ p2, (a * (a - modes.s)) @ p2], axis=-1)


@dataclass(frozen=True, eq=False)
class GatedRun:
    """Result of :func:`gated_gradient_descent` (arrays float64).

    Attributes
    ----------
    maps : numpy.ndarray, shape (epochs + 1, n_pathways, output_dim, input_dim)
        Each pathway's map ``W2_p W1_p`` after every epoch (record 0: the start).
    loss : numpy.ndarray, shape (epochs + 1,)
        ``1/2 mean_n ||y_n - f(x_n)||^2`` (eq. (1)).
    w1, w2 : tuple of numpy.ndarray
        The final weights of each pathway.
    """

    maps: np.ndarray
    loss: np.ndarray
    w1: tuple
    w2: tuple

    def outputs(self, x, gates) -> np.ndarray:
        """Each pathway's contribution ``g_p(n) W_p x_n``: shape (epochs + 1, n_pathways, n_points, output_dim)."""
        return np.einsum("tpoi,ni,pn->tpno", self.maps, np.asarray(x, float), np.asarray(gates, float))


def gated_gradient_descent(x, y, w1, w2, *, gates=None, lr: float, epochs: int) -> GatedRun:
    """Full-batch gradient descent on a gated deep linear network with two-layer pathways.

    ``f(x_n) = sum_p g_p(n) W2_p W1_p x_n``: pathway ``p`` is switched on for point ``n`` when
    ``gates[p, n] = 1`` (Saxe, Sodhani & Lewallen 2022). One pathway with all gates on is a plain
    two-layer linear network. A ReLU network is of this form while no unit switches its activity set.

    Parameters
    ----------
    x : array_like, shape (n_points, input_dim)
    y : array_like, shape (n_points, output_dim)
    w1, w2 : sequence of array_like
        Initial weights of each pathway, shapes (hidden_p, input_dim) and (output_dim, hidden_p); a
        single pair of matrices is one pathway.
    gates : array_like, shape (n_pathways, n_points), optional, keyword-only
        0/1 gates; default all ones.
    lr : float, keyword-only
        Learning rate (> 0).
    epochs : int, keyword-only
        Number of updates (>= 1).

    Returns
    -------
    GatedRun

    Raises
    ------
    ValueError
        Bad shapes, gates not 0/1, ``lr <= 0`` or ``epochs < 1``.
    """
    x = v.finite_array("x", x, ndim=2)
    y = v.finite_array("y", y, ndim=2)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"`x` and `y` must have the same number of rows (points), got {x.shape[0]} and {y.shape[0]}")
    if np.ndim(w1[0]) == 1:  # a single pathway given as two matrices
        w1, w2 = [w1], [w2]
    if len(w1) != len(w2):
        raise ValueError(f"`w1` and `w2` must hold one matrix per pathway, got {len(w1)} and {len(w2)}")
    pairs = [_weights(a, b) for a, b in zip(w1, w2)]
    for a, b in pairs:
        if a.shape[1] != x.shape[1] or b.shape[0] != y.shape[1]:
            raise ValueError(f"each pathway must map input_dim={x.shape[1]} to output_dim={y.shape[1]}, "
                             f"got shapes {a.shape} and {b.shape}")
    n, n_paths = x.shape[0], len(pairs)
    g = np.ones((n_paths, n)) if gates is None else v.finite_array("gates", gates, shape=(n_paths, n))
    if not np.all((g == 0) | (g == 1)):
        raise ValueError("`gates` must hold only 0 and 1")
    lr = float(v.positive("lr", lr))
    epochs = operator.index(epochs)
    if epochs < 1:
        raise ValueError(f"`epochs` must be >= 1, got {epochs}")
    w1s, w2s = [a.copy() for a, _ in pairs], [b.copy() for _, b in pairs]
    maps = np.empty((epochs + 1, n_paths, y.shape[1], x.shape[1]))
    loss = np.empty(epochs + 1)
    for k in range(epochs + 1):
        maps[k] = [b @ a for a, b in zip(w1s, w2s)]
        err = y - np.einsum("poi,ni,pn->no", maps[k], x, g)  # (n, output_dim)
        loss[k] = 0.5 * np.mean(np.sum(err**2, axis=1))
        if not np.isfinite(loss[k]):
            raise ValueError(f"gated gradient descent diverged at epoch {k} (loss {loss[k]}): lower `lr` "
                             f"(got {lr:g}) or rescale `x`, `y`, `w1`, `w2`")
        if k == epochs:
            break
        for p in range(n_paths):
            corr = (err * g[p][:, None]).T @ x / n  # the pathway's effective error correlation
            w1s[p], w2s[p] = w1s[p] + lr * w2s[p].T @ corr, w2s[p] + lr * corr @ w1s[p].T
    return GatedRun(maps, loss, tuple(w1s), tuple(w2s))
