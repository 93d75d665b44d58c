"""Gradient flow on the linearised encoder and decoder, the paper's eq. (6) / (17).

Around the mean of two inputs the network is replaced by its linearisation (eq. 5 / 15): an encoder
Jacobian ``D_h`` (hidden x input), a decoder Jacobian ``D_y`` (output x hidden) and the mean output
``ybar``. Gradient descent directly on these three (eq. 6) is the model; the 3-D system of
:mod:`repalign.theory` is what it reduces to when the two representations move only along their
difference (no rotation, eq. 19). This module integrates the full matrix flow so the reduction can be
checked rather than trusted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.integrate import solve_ivp

from . import _validate as v

__all__ = ["TwoPoints", "LinearisedState", "gradients", "velocity", "flow", "summary", "loss", "aligned_init"]


@dataclass(frozen=True)
class TwoPoints:
    """A two-point dataset ``{(x1, y1), (x2, y2)}`` with inputs and targets as 1-D arrays."""

    x1: np.ndarray
    x2: np.ndarray
    y1: np.ndarray
    y2: np.ndarray

    def __post_init__(self):
        for name in ("x1", "x2", "y1", "y2"):
            object.__setattr__(self, name, v.finite_array(name, getattr(self, name), ndim=1))
        if self.x1.shape != self.x2.shape:
            raise ValueError(f"`x1` and `x2` must have the same shape, got {self.x1.shape} and {self.x2.shape}")
        if self.y1.shape != self.y2.shape:
            raise ValueError(f"`y1` and `y2` must have the same shape, got {self.y1.shape} and {self.y2.shape}")
        if np.array_equal(self.x1, self.x2):
            raise ValueError("`x1` and `x2` must differ: the theory needs ||x2 - x1||^2 > 0")

    @property
    def dx(self) -> np.ndarray:
        return self.x2 - self.x1

    @property
    def dy_target(self) -> np.ndarray:
        return self.y2 - self.y1

    @property
    def y_mean(self) -> np.ndarray:
        return 0.5 * (self.y1 + self.y2)


@dataclass(frozen=True)
class LinearisedState:
    """Parameters of the linearised model: ``D_h`` (n_h, n_x), ``D_y`` (n_y, n_h), ``ybar`` (n_y,)."""

    d_h: np.ndarray
    d_y: np.ndarray
    ybar: np.ndarray

    def pack(self) -> np.ndarray:
        return np.concatenate([self.d_h.ravel(), self.d_y.ravel(), self.ybar])

    @classmethod
    def unpack(cls, flat: np.ndarray, shape_h: tuple, shape_y: tuple) -> LinearisedState:
        n_h, n_y = int(np.prod(shape_h)), int(np.prod(shape_y))
        return cls(flat[:n_h].reshape(shape_h), flat[n_h : n_h + n_y].reshape(shape_y), flat[n_h + n_y :])


def _check(state: LinearisedState, data: TwoPoints, name: str = "state") -> None:
    v.instance(name, state, LinearisedState, "e.g. from aligned_init")
    v.instance("data", data, TwoPoints, "the two points")
    n_hidden, n_in = state.d_h.shape
    if n_in != data.x1.size:
        raise ValueError(f"`d_h` must have {data.x1.size} columns (the input dimension), got {n_in}")
    if state.d_y.shape != (data.y1.size, n_hidden):
        raise ValueError(f"`d_y` must have shape {(data.y1.size, n_hidden)}, got {state.d_y.shape}")
    if state.ybar.shape != (data.y1.size,):
        raise ValueError(f"`ybar` must have shape {(data.y1.size,)}, got {state.ybar.shape}")


def gradients(state: LinearisedState, data: TwoPoints) -> LinearisedState:
    """The exact gradients ``dL/dD_h, dL/dD_y, dL/dybar`` of the loss eq. (16) (see :func:`loss`).

    With ``err = D_y D_h dx - dy_target`` and ``dh = D_h dx``: ``dL/dD_h = D_y^T err dx^T / 4``,
    ``dL/dD_y = err dh^T / 4`` and ``dL/dybar = ybar - (y1 + y2)/2``. The paper's eq. (17) reaches
    the first two with a factor 1/2 instead of 1/4 (its last step drops the 1/2 of the average over
    the two points); see :func:`velocity`.
    """
    _check(state, data)
    dh = state.d_h @ data.dx
    err = state.d_y @ dh - data.dy_target  # dy - (y2 - y1)
    return LinearisedState(
        0.25 * np.outer(state.d_y.T @ err, data.dx),
        0.25 * np.outer(err, dh),
        state.ybar - data.y_mean,
    )


def velocity(
    state: LinearisedState, data: TwoPoints, *, rate_h: float, rate_y: float, rate_ybar: float
) -> LinearisedState:
    """The time derivatives of ``D_h, D_y, ybar`` under eq. (17) as printed in the paper.

    Eq. (17) writes ``dD_h/dt = -(1/tau_h) (1/2) D_y^T err dx^T`` and
    ``dD_y/dt = -(1/tau_y) (1/2) err dh^T``, which is ``-(2/tau) dL/dD``; the mean output follows
    ``-(1/tau_ybar) dL/dybar``. The 3-D system eq. (7) is derived from these printed lines, so its
    ``1/tau_h`` and ``1/tau_y`` are twice the rates that multiply the exact gradients in eq. (6),
    while ``1/tau_ybar`` is not. Since the three rates are fitted to networks independently, this
    changes no prediction; it is listed in ``book/reproduction_notes.md``.
    """
    g = gradients(state, data)
    return LinearisedState(-2.0 * rate_h * g.d_h, -2.0 * rate_y * g.d_y, -rate_ybar * g.ybar)


FLOW_MAX_EVALUATIONS = 100_000
"""Evaluations of eq. (17) after which :func:`flow` gives up (some seconds of work)."""


def flow(
    state0: LinearisedState,
    data: TwoPoints,
    t,
    *,
    rate_h: float,
    rate_y: float,
    rate_ybar: float,
    rtol: float = 1e-10,
    atol: float = 1e-12,
) -> list[LinearisedState]:
    """Integrate the gradient flow of the linearised model, eq. (17) as printed (see :func:`velocity`).

    Returns the states at the times ``t`` (the first is ``state0``). The rates are keyword-only, in
    the order of :mod:`repalign.theory`.
    """
    _check(state0, data, "state0")
    rates = {n: float(v.positive(n, r)) for n, r in (("rate_h", rate_h), ("rate_y", rate_y), ("rate_ybar", rate_ybar))}
    t = v.times("t", t)
    shape_h, shape_y = state0.d_h.shape, state0.d_y.shape

    def fun(_, flat):
        return velocity(LinearisedState.unpack(flat, shape_h, shape_y), data, **rates).pack()

    rtol, atol = v.tolerance("rtol", rtol), v.tolerance("atol", atol)
    limited = v.WorkLimit(fun, FLOW_MAX_EVALUATIONS, "the explicit DOP853 steps are bounded by the fastest rate; "
                                                   "shorten `t` (the flow converges long before) or lower the rates")
    sol = solve_ivp(limited, (t[0], t[-1]), state0.pack(), t_eval=t, method="DOP853", rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"integration of eq. (6) failed: {sol.message}")
    return [LinearisedState.unpack(col, shape_h, shape_y) for col in sol.y.T]


def summary(states, data: TwoPoints) -> np.ndarray:
    """``(||dh||^2, ||dy||^2, w)`` of each state (eq. 8), shape (len(states), 3)."""
    out = []
    for s in states:
        dh = s.d_h @ data.dx
        dy = s.d_y @ dh
        out.append([dh @ dh, dy @ dy, dy @ dy - dy @ data.dy_target])
    return np.array(out)


def loss(states, data: TwoPoints) -> np.ndarray:
    """The loss eq. (16), computed directly from the linearised predictions of both points."""
    out = []
    for s in states:
        half = 0.5 * (s.d_y @ (s.d_h @ data.dx))  # y(x2) - ybar = -(y(x1) - ybar)
        out.append(0.25 * (np.sum((s.ybar - half - data.y1) ** 2) + np.sum((s.ybar + half - data.y2) ** 2)))
    return np.array(out)


def aligned_init(
    data: TwoPoints, n_hidden: int, scale: float, *, seed: int, aligned: bool = True
) -> LinearisedState:
    """A random initial state, optionally satisfying the no-rotation condition (eq. 19) for all time.

    With ``aligned=True`` the decoder reads the hidden space only along ``dh(0)``:
    ``D_y(0) = m u^T`` with ``u = dh(0)/||dh(0)||``. The flow then changes ``D_y`` only along ``u``
    and ``D_h (x2 - x1)`` only along ``D_y^T (...) ∝ u``, so ``dh`` never rotates and the 3-D system
    is exact. With ``aligned=False`` all entries are i.i.d. Gaussian and the condition fails.
    Entries have standard deviation ``scale / sqrt(fan_in)``.
    """
    v.instance("data", data, TwoPoints, "the two points")
    if not isinstance(n_hidden, (int, np.integer)) or n_hidden < 1:
        raise ValueError(f"`n_hidden` must be a positive integer, got {n_hidden!r}")
    scale = float(v.positive("scale", scale))
    rng = np.random.default_rng(seed)
    n_x, n_y = data.x1.size, data.y1.size
    d_h = rng.normal(0.0, scale / np.sqrt(n_x), size=(n_hidden, n_x))
    d_y = rng.normal(0.0, scale / np.sqrt(n_hidden), size=(n_y, n_hidden))
    if aligned:
        u = d_h @ data.dx
        u /= np.linalg.norm(u)
        d_y = np.outer(d_y @ u, u)
    ybar = data.y_mean + rng.normal(0.0, scale, size=n_y)
    return LinearisedState(d_h, d_y, ybar)
