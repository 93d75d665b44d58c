"""Issue 21: property-based tests (hypothesis) over theory.solve, theory.final_distance and
geometry.sq_distances: for any input in the declared domain, finite output or a clear ValueError.

The ``ci`` profile (the default, ``HYPOTHESIS_PROFILE`` selects another) draws few examples with a
fixed seed so the module runs in seconds; ``thorough`` draws many.
"""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from repalign import geometry, theory
from repalign.theory import dynamics

settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def logs(lo, hi):
    """Floats log-uniform in [10**lo, 10**hi]."""
    return st.floats(lo, hi).map(lambda e: 10.0 ** e)


@given(alpha=logs(-6, 1), m_par=st.floats(-3, 3), m_perp=logs(-6, 0.5), rate_h=logs(-2, 2), rate_y=logs(-2, 2),
       dx_sq=logs(-2, 1), dy_target_sq=logs(-2, 1), t_end=logs(-2, 3))
def test_solve_is_finite_on_its_domain(alpha, m_par, m_perp, rate_h, rate_y, dx_sq, dy_target_sq, t_end):
    z0 = dynamics.from_signed(np.array([[alpha, m_par, m_perp]]), dy_target_sq)[0]  # realisable by construction
    kw = dict(rate_h=rate_h, rate_y=rate_y, dx_sq=dx_sq, dy_target_sq=dy_target_sq)
    try:
        z = theory.solve(z0, [0.0, t_end / 2, t_end], **kw)
    except RuntimeError as err:  # the solver's own failure or the work limit: said, never silent
        assert "integration" in str(err)
        return
    assert z.shape == (3, 3) and np.isfinite(z).all()
    assert (z[:, 0] >= 0).all() and (z[:, 1] >= 0).all()


@given(z0=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), min_size=3, max_size=3),
       rate=st.floats(allow_nan=True, allow_infinity=True), t_end=st.floats(allow_nan=True, allow_infinity=True))
def test_solve_any_input_is_finite_or_a_clear_error(z0, rate, t_end):
    try:
        z = theory.solve(z0, [0.0, t_end], rate_h=rate, rate_y=1.0, dx_sq=1.0, dy_target_sq=0.5)
    except ValueError as err:
        assert "`" in str(err)  # names the argument
        return
    except RuntimeError as err:
        assert "integration" in str(err)
        return
    assert np.isfinite(z).all()


@given(dh_sq0=logs(-12, 3), dy_sq0=st.one_of(st.just(0.0), logs(-12, 3)), rate_h=logs(-3, 3), rate_y=logs(-3, 3),
       dx_sq=logs(-6, 3), dy_target_sq=st.one_of(st.just(0.0), logs(-6, 3)))
def test_final_distance_is_finite_and_non_negative(dh_sq0, dy_sq0, rate_h, rate_y, dx_sq, dy_target_sq):
    r = theory.final_distance(dh_sq0, dy_sq0, rate_h=rate_h, rate_y=rate_y, dx_sq=dx_sq, dy_target_sq=dy_target_sq)
    assert np.isfinite(r).all() and r.distance >= 0
    # eq. (10): distance = (A_high + sqrt(A_high^2 + 4 A_low^2)) / 2 >= A_low, computed independently
    a_high = dh_sq0 - rate_h / rate_y * dx_sq * dy_sq0 / dh_sq0
    assert float(r.a_high) == pytest.approx(a_high, rel=1e-9, abs=1e-300)


@given(x=arrays(np.float64, st.tuples(st.integers(2, 6), st.integers(1, 4)), elements=st.floats(-1e3, 1e3)),
       offset=st.floats(-1e8, 1e8))
def test_sq_distances_match_explicit_differences(x, offset):
    x = x + offset
    d = geometry.sq_distances(x)
    exact = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    assert np.isfinite(d).all() and (d >= 0).all() and (np.diag(d) == 0).all()
    np.testing.assert_allclose(d, d.T, rtol=0, atol=0)
    # rounding: relative to the squared spread of the centred points (the offset drops out exactly)
    spread = (((x - x.mean(0)) ** 2).sum(-1).max() if x.size else 0.0)
    np.testing.assert_allclose(d, exact, rtol=1e-7, atol=1e-10 * spread + 1e-300)
