"""Issue 21, options: bool flags take only real bools, a required seed is not None, profile names are exact."""
import numpy as np
import pytest

from repalign import claims, geometry, profiles
from repalign._mnist import mnist
from repalign.data import two_point
from repalign.profiles import TABLE1
from repalign.train import train


@pytest.mark.parametrize("name", ["progress", "keep_models", "batched"])
@pytest.mark.parametrize("bad", ["no", "False", 0, None])
def test_train_bool_flags_reject_non_bools(name, bad):
    d = two_point()
    with pytest.raises(TypeError, match=f"`{name}` must be True or False"):
        train(TABLE1["default"], d.x, d.y, epochs=1, **{"progress": False, name: bad})


@pytest.mark.parametrize("name", ["fetch", "progress"])
def test_mnist_flags_reject_strings_before_any_download(name, tmp_path):
    with pytest.raises(TypeError, match=f"`{name}` must be True or False"):
        mnist("train", cache_dir=tmp_path, **{"fetch": False, name: "no"})
    assert not any(tmp_path.iterdir())  # nothing fetched or written


def test_exponential_weighting_normalise_flag():
    with pytest.raises(TypeError, match="`normalise` must be True or False"):
        geometry.exponential_weighting(np.zeros((2, 2)), normalise="yes")


def test_required_seeds_reject_none():
    d = two_point()
    with pytest.raises(TypeError, match="`seed` must be an integer >= 0 \\(a seed is required\\)"):
        train(TABLE1["default"], d.x, d.y, epochs=1, seed=None, progress=False)
    with pytest.raises(TypeError, match="`seed` must be an integer >= 0"):
        geometry.mds(np.random.default_rng(0).normal(size=(6, 4)), seed=None)


@pytest.mark.parametrize("bad", ["PAPER", "Quick", " paper"])
def test_profile_names_are_exact(bad):
    with pytest.raises(ValueError, match=f"`profile` must be one of quick, paper; got {bad!r}"):
        profiles.settings("universal", bad)
    with pytest.raises(ValueError, match="`profile` must be one of"):
        claims.for_chapter("00_test_profile_names", profile=bad)
    with pytest.raises(TypeError, match="`profile` must be one of"):
        profiles.settings("universal", 1)


@pytest.mark.parametrize("layer", [None, 1])  # with `layer` given the convention is moot, but it is recorded
def test_train_checks_convention_even_with_an_explicit_layer(layer):
    d = two_point()
    with pytest.raises(ValueError, match="`convention` must be one of paper, code; got 'middle'"):
        train(TABLE1["default"], d.x, d.y, epochs=1, layer=layer, convention="middle", progress=False)


@pytest.mark.parametrize("bad", [None, 3, "rec"])
def test_functions_of_a_recording_reject_other_objects(bad):
    from repalign import experiments, fit

    for call in (lambda: experiments.plateau_loss(bad), lambda: experiments.plateau_epochs(bad),
                 lambda: experiments.stop_records(bad, 1e-3), lambda: experiments.fit_layers(bad),
                 lambda: fit.fit_recording(bad)):
        with pytest.raises(TypeError, match="`recording` must be a repalign.recording.Recording"):
            call()


def test_plateau_loss_checks_the_trial_index():
    from repalign import experiments

    d = two_point()
    rec = train(TABLE1["default"], d.x, d.y, trials=2, epochs=3, progress=False)
    for bad in (2, 2.5, "0", 10**12):
        with pytest.raises(ValueError, match=r"`trial` must be an integer in \[-2, 1\]"):
            experiments.plateau_loss(rec, bad)


def test_linearised_functions_reject_other_objects():
    from repalign import linearised

    points = linearised.TwoPoints(np.array([-1.0]), np.array([0.0]), np.array([0.6]), np.array([1.3]))
    state = linearised.aligned_init(points, 4, 0.1, seed=0)
    with pytest.raises(TypeError, match="`data` must be a repalign.linearised.TwoPoints"):
        linearised.aligned_init("points", 4, 0.1, seed=0)
    with pytest.raises(TypeError, match="`state0` must be a repalign.linearised.LinearisedState"):
        linearised.flow(None, points, [0.0, 1.0], rate_h=1.0, rate_y=1.0, rate_ybar=1.0)
    with pytest.raises(TypeError, match="`state` must be a repalign.linearised.LinearisedState"):
        linearised.gradients(3, points)
    with pytest.raises(TypeError, match="`data` must be a repalign.linearised.TwoPoints"):
        linearised.gradients(state, None)


@pytest.mark.parametrize("name", ["rtol", "atol"])
@pytest.mark.parametrize("bad", ["x", [1.0, 2.0], float("nan"), 0.0])
def test_fit_rates_checks_tolerances(name, bad):
    from repalign import fit, theory

    t = np.linspace(0.0, 5.0, 21)
    z = theory.solve([1.0, 0.1, 0.05], t, rate_h=1.0, rate_y=0.5, dx_sq=1.0, dy_target_sq=0.5)
    with pytest.raises(ValueError, match=f"`{name}`"):
        fit.fit_rates(t, z, 1.0, 0.5, **{name: bad})
