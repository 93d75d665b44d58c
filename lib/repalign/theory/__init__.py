"""The effective theory of the two-point interaction (van Rossem & Saxe 2024, Sec. 2 and App. A).

The state is ``z = (dh_sq, dy_sq, w)``:

============================  ==========================================  =============================
code                          paper                                       meaning
============================  ==========================================  =============================
``dh_sq``                     ``||dh||^2 = ||D_h (x2 - x1)||^2``          representational distance
``dy_sq``                     ``||dy||^2 = ||D_y D_h (x2 - x1)||^2``      predicted output difference
``w``                         ``||dy||^2 - dy^T (y2 - y1)``               output alignment
``dx_sq``                     ``||x2 - x1||^2``                           input distance
``dy_target_sq``              ``||y2 - y1||^2``                           target distance
``rate_h, rate_y, rate_ybar`` ``1/tau_h, 1/tau_y, 1/tau_ybar``            effective learning rates
``init_scale``                ``G`` (App. A.6)                            scale of the initial weights
============================  ==========================================  =============================

Every function takes the state (or times, distances) positionally and the physical parameters by
keyword, in one order: ``rate_h, rate_y, rate_ybar, dx_sq, dy_target_sq``, then the rest
(``offset_sq``, ``q``, ``init_scale``), e.g.
``solve(z0, t, rate_h=..., rate_y=..., dx_sq=..., dy_target_sq=...)``.

Three modules: :mod:`~repalign.theory.dynamics` (eq. 7, the solver, the loss, the conserved quantity
and the reduced system), :mod:`~repalign.theory.fixed_point` (eqs. 10-11, stability, App. A.4) and
:mod:`~repalign.theory.random_features` (App. A.6); their public functions are all here.
Everything is plain numpy/scipy and depends on nothing else in the package. Equation numbers refer to
the paper; where the paper has a misprint the function implements the corrected form and says so
(see ``book/reproduction_notes.md``).
"""

from __future__ import annotations

from .dynamics import conserved_quantity, initial_state, jacobian, loss, reduced_rhs, rhs, solve
from .fixed_point import (
    FinalDistance,
    final_distance,
    identical_outputs_solution,
    origin_eigen,
    reduced_jacobian_at_fixed_point,
)
from .random_features import final_distance_cdf, final_distance_pdf, sample_final_distance

__all__ = [
    "FinalDistance",
    "initial_state",
    "rhs",
    "jacobian",
    "solve",
    "loss",
    "conserved_quantity",
    "reduced_rhs",
    "final_distance",
    "reduced_jacobian_at_fixed_point",
    "origin_eigen",
    "identical_outputs_solution",
    "final_distance_cdf",
    "final_distance_pdf",
    "sample_final_distance",
]
