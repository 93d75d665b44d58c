"""falsification: the modified systems, and the generic fitter that compares them with eq. (7).

Evidence: trajectories of eq. (7) with known rates (`theory.solve`). The fitter must recover the rates
on the true system, and each modified system, fitted by the same procedure, must do clearly worse on
them (a check that the modifications change the dynamics, and that the fitter does not rescue them).
"""

import numpy as np
import pytest

from repalign import falsification as fa
from repalign import theory as th

DX, DY = 1.0, 0.5
T = np.arange(0.0, 3000.0, 2.0)
Z0 = th.initial_state(1e-4, 1e-7, 0.3, dy_target_sq=DY)
RH, RY = 3e-3, 2e-2
Z = th.solve(Z0, T, rate_h=RH, rate_y=RY, dx_sq=DX, dy_target_sq=DY)
STARTS = [(RH * a, RY * b) for a, b in ((2, 0.5), (0.3, 3), (5, 5))]  # none at the true rates


def test_true_system_is_eq7():
    rhs = fa.system_rhs("eq. (7)")
    for z in Z[::100]:
        np.testing.assert_allclose(rhs(*z, RH * DX, RY, DY), th.rhs(0.0, z, rate_h=RH, rate_y=RY, dx_sq=DX, dy_target_sq=DY), rtol=1e-12)


def test_fitter_recovers_known_rates_on_eq7():
    f = fa.fit_system(T, Z, "eq. (7)", DX, DY, starts=STARTS)
    assert f.success
    assert f.rate_h == pytest.approx(RH, rel=1e-3) and f.rate_y == pytest.approx(RY, rel=1e-3)
    assert f.error < 1e-4


@pytest.mark.parametrize("system", [s for s in fa.SYSTEMS if s != "eq. (7)"])
def test_every_modification_changes_the_dynamics(system):
    """Fitted to an exact eq. (7) trajectory, a modified system is left with an error at least ten
    times the true system's bound above (1e-4). Doubling d||dh||^2/dt comes closest (about 0.5 %):
    with rate_h halved it differs from eq. (7) only in the small encoder terms of the other two lines."""
    f = fa.fit_system(T, Z, system, DX, DY, starts=STARTS + [(RH, RY)])
    assert f.error > 1e-3, (system, f.error)


def test_bad_arguments():
    with pytest.raises(ValueError, match="`system` must be one of"):
        fa.fit_system(T, Z, "eq. (8)", DX, DY, starts=STARTS)
    with pytest.raises(ValueError, match="`starts` must be pairs of positive"):
        fa.fit_system(T, Z, "eq. (7)", DX, DY, starts=[(0.0, 1.0)])
    with pytest.raises(ValueError, match=r"`z` must have shape"):
        fa.fit_system(T, Z[:, :2], "eq. (7)", DX, DY, starts=STARTS)
    with pytest.raises(ValueError, match="strictly increasing"):
        fa.fit_system(T[::-1], Z, "eq. (7)", DX, DY, starts=STARTS)


def test_fit_system_rejects_a_negative_target_distance():
    import pytest as _pytest

    from repalign import falsification as _f

    with _pytest.raises(ValueError, match="`dy_target_sq` is a squared distance and must be >= 0"):
        _f.fit_system(T, Z, list(_f.SYSTEMS)[0], DX, -DY, starts=[(RH, RY)])
