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
