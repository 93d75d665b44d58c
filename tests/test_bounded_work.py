"""Issue 21, bounded work: extreme times, rates, sizes or tolerances get a clear error, never an hour."""
import numpy as np
import pytest

from repalign import fit, geometry, theory
from repalign import linearised as lin
from repalign.data import two_point
from repalign.profiles import TABLE1
from repalign.train import MAX_TRIALS, train

Z0 = [1e-3, 1e-6, 1e-6]
RATES = dict(rate_h=1.0, rate_y=1.0, dx_sq=1.0, dy_target_sq=0.5)


@pytest.mark.parametrize("name, change", [
    ("t", dict(t=[0.0, 1e300])), ("rate_h", dict(rate_h=1e300)), ("rate_y", dict(rate_y=1e300)),
    ("z0", dict(z0=[1e300, 1e-6, 1e-6])), ("dx_sq", dict(dx_sq=1e300)),
])
def test_solve_rejects_extreme_magnitudes_naming_the_argument(name, change):
    kw = {"z0": Z0, "t": [0.0, 1e4], **RATES, **change}
    with pytest.raises(ValueError, match=rf"`{name}` must be at most 1e\+15"):
        theory.solve(kw.pop("z0"), kw.pop("t"), **kw)


@pytest.mark.parametrize("name", ["rtol", "atol"])
@pytest.mark.parametrize("bad", [float("nan"), 0.0, -1e-3, 2.0])
def test_solve_rejects_bad_tolerances(name, bad):
    with pytest.raises(ValueError, match=rf"`{name}` must be a number in \(0, 1\)"):
        theory.solve(Z0, [0.0, 1e4], **RATES, **{name: bad})


def test_solve_long_valid_time_is_bounded_and_reaches_the_fixed_point():
    # independent check: the fixed point of eq. (7) from aligned outputs is dy_sq = dy_target_sq, w = 0
    z = theory.solve(Z0, [0.0, 1e14], **RATES)
    assert np.isfinite(z).all()
    assert z[-1, 1] == pytest.approx(0.5, rel=1e-6) and abs(z[-1, 2]) < 1e-6


def _two_points():
    rng = np.random.default_rng(0)
    return lin.TwoPoints(*(rng.normal(size=n) for n in (3, 3, 2, 2)))


def test_flow_to_a_huge_time_stops_with_a_clear_error():
    data = _two_points()
    s0 = lin.aligned_init(data, 5, 0.3, seed=0, aligned=False)
    with pytest.raises(RuntimeError, match=f"stopped after {lin.FLOW_MAX_EVALUATIONS} evaluations.*shorten `t`"):
        lin.flow(s0, data, [0.0, 1e6], rate_h=1.0, rate_y=1.0, rate_ybar=1.0)


def test_flow_rejects_nan_tolerance():
    data = _two_points()
    s0 = lin.aligned_init(data, 5, 0.3, seed=0)
    with pytest.raises(ValueError, match="`rtol` must be a number in"):
        lin.flow(s0, data, [0.0, 1.0], rate_h=1.0, rate_y=1.0, rate_ybar=1.0, rtol=float("nan"))


def test_fit_rates_rejects_a_huge_grid():
    z = theory.solve(Z0, np.linspace(0.0, 50.0, 51), **RATES)
    with pytest.raises(ValueError, match=f"`grid_per_decade` must be at most {fit.MAX_GRID_PER_DECADE}"):
        fit.fit_rates(np.arange(51.0), z, dx_sq=1.0, dy_target_sq=0.5, grid_per_decade=1e6)


def test_train_rejects_too_many_trials():
    d = two_point()
    with pytest.raises(ValueError, match=rf"`trials` must be an integer in \[1, {MAX_TRIALS}\]"):
        train(TABLE1["default"], d.x, d.y, trials=10**9, epochs=1, progress=False)


def test_mds_rejects_too_many_starts():
    h = np.random.default_rng(0).normal(size=(6, 4))
    with pytest.raises(ValueError, match=f"`n_init` must be at most {geometry.MDS_MAX_INIT}"):
        geometry.mds(h, seed=0, n_init=10**7)


def test_final_distance_overflow_is_an_error():
    with pytest.raises(ValueError, match="eq. \\(10\\) overflows float64"):
        theory.final_distance(1e300, 0.0, **RATES)


# ------------------------------------------------ found by benchmarks/sweep_bad_inputs.py: overflow is an error

def _overflow_calls():
    from repalign import fit, linear_networks, theory

    huge = np.full((3, 3), 1e300)
    modes = linear_networks.io_modes(np.eye(3), np.eye(3)[:, :2])
    w1, w2 = linear_networks.decoupled_init(modes, a0=0.01, hidden=4, seed=0)
    rates = dict(rate_h=1.0, rate_y=0.5, dx_sq=1.0, dy_target_sq=0.5)
    return {
        "theory.rhs": lambda: theory.rhs(0.0, [1e300, 1e300, 1e300], **rates),
        "theory.jacobian": lambda: theory.jacobian([1e300, 1e300, 1e300], **rates),
        "sample_final_distance": lambda: theory.sample_final_distance(10, **rates, init_scale=1e300, seed=0),
        "normalised_error": lambda: fit.normalised_error(huge, -huge),
        "imbalance": lambda: linear_networks.imbalance(w1 * 1e300, w2),
        "effective_initial_strength": lambda: linear_networks.effective_initial_strength(w1 * 1e300, w2, modes),
        "io_modes": lambda: linear_networks.io_modes(huge, huge),
        "mode_strength": lambda: linear_networks.mode_strength([0.0, 1.0], s=1.0, a0=1e300),
        "decoupled_init": lambda: linear_networks.decoupled_init(modes, a0=1e300, hidden=4, seed=0),
        "gated_gradient_descent": lambda: linear_networks.gated_gradient_descent(np.eye(3), np.eye(3)[:, :2], w1, w2,
                                                                                 lr=1e300, epochs=3),
    }


@pytest.mark.parametrize("name", list(_overflow_calls()))
def test_overflow_raises_instead_of_returning_inf(name):
    with pytest.raises(ValueError, match="overflows float64|diverged at epoch"):
        _overflow_calls()[name]()


def test_mode_strength_depth_is_bounded():
    from repalign import linear_networks

    with pytest.raises(ValueError, match=r"`depth` must be an integer in \[1, 1000\]"):
        linear_networks.mode_strength([1.0], s=1.0, a0=0.1, depth=10**12)


@pytest.mark.parametrize("kwargs", [dict(measured=float("inf")), dict(tolerance=float("inf")),
                                    dict(relation="close", expected=float("-inf"))])
def test_claims_reject_infinite_numbers(tmp_path, monkeypatch, kwargs):
    from repalign import claims

    monkeypatch.setenv("REPALIGN_CLAIMS_DIR", str(tmp_path))
    args = dict(measured=0.1, tolerance=1.0, quiet=True, profile="quick") | kwargs
    with pytest.raises(ValueError, match="finite numbers only"):
        claims.check("99_x", "c", **args)


def test_representations_reject_non_finite_inputs_and_overflow():
    from dataclasses import replace

    from repalign import data, experiments, profiles, train

    d = data.two_point()
    rec = train.train(replace(profiles.TABLE1["default"], width=8, hidden_layers=3), d.x, d.y, epochs=2,
                      keep_models=True, progress=False)
    with pytest.raises(ValueError, match="`x` must be finite"):
        experiments.representations(rec.models, np.full_like(d.x, np.nan), 2)
    with pytest.raises(ValueError, match="hidden representations overflows float64"):
        experiments.representations(rec.models, np.full_like(d.x, 1e300), 2)


@pytest.mark.parametrize("kwargs", [dict(dx_sq=1e300), dict(dy_target_sq=1e300), dict(starts=[(1e300, 1.0)])])
def test_fit_system_bounds_its_inputs_instead_of_returning_an_inf_error(kwargs):
    from repalign import falsification

    t = np.linspace(0.0, 5.0, 21)
    z = theory.solve([1.0, 0.1, 0.05], t, rate_h=1.0, rate_y=0.5, dx_sq=1.0, dy_target_sq=0.5)
    args = dict(dx_sq=1.0, dy_target_sq=0.5, starts=[(1.0, 0.5)]) | kwargs
    with pytest.raises(ValueError, match="must be at most 1e\\+15 in magnitude"):
        falsification.fit_system(t, z, "eq. (7)", args["dx_sq"], args["dy_target_sq"], starts=args["starts"],
                                 records=15)
