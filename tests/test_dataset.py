"""dataset: the one dataset type every loader of data returns."""

import numpy as np
import pytest

from repalign import data
from repalign.dataset import Dataset


@pytest.mark.parametrize("make, extras", [
    (data.two_point, ("dx_sq", "dy_target_sq")),
    (data.xor, ("labels",)),
    (lambda: data.blobs(4, 3), ("images", "context", "mu_x", "mu_y", "relevant", "irrelevant", "centres")),
])
def test_every_loader_returns_a_dataset_that_unpacks(make, extras):
    ds = make()
    assert isinstance(ds, Dataset)
    x, y = ds
    assert x is ds.x and y is ds.y and len(ds) == x.shape[0] == y.shape[0]
    assert not x.flags.writeable and not y.flags.writeable
    for name in extras:
        assert getattr(ds, name) is ds.meta[name]
    with pytest.raises(AttributeError, match="no field 'nope'"):
        _ = ds.nope
    with pytest.raises(TypeError):
        ds.meta["new"] = 1
    assert repr(ds).startswith(f"Dataset({ds.name!r}, n={len(ds)}")


def test_dataset_rejects_mismatched_arrays_and_clashing_meta():
    with pytest.raises(ValueError, match="one row per point"):
        Dataset(np.zeros((3, 1)), np.zeros((2, 1)), "bad")
    with pytest.raises(ValueError, match="must not redefine"):
        Dataset(np.zeros((2, 1)), np.zeros((2, 1)), "bad", {"x": 1})


# --- issue 21: degenerate but valid inputs give defined values or clear errors


def test_blobs_small_variance_has_no_nan():
    from repalign import data as _data

    d = _data.blobs(variance=1e-4)
    assert np.isfinite(d.x).all()
    np.testing.assert_allclose(d.images.sum(axis=(1, 2)), 1.0, rtol=1e-12)
    # independent: at this variance each image is (nearly) one pixel, the one nearest its centre
    assert (d.images.reshape(len(d.images), -1).max(axis=1) > 0.99).mean() > 0.1


@pytest.mark.parametrize("name", ["dx_sq", "dy_target_sq"])
def test_two_point_rejects_distances_its_points_cannot_carry(name):
    from repalign import data as _data

    with pytest.raises(ValueError, match=rf"`{name}` = 1e-40 is below float64's resolution.*>= 4.93e-20"):
        _data.two_point(**{name: 1e-40})
    d = _data.two_point(**{name: 1e-12})
    pts = d.x if name == "dx_sq" else d.y
    assert float(np.sum((pts[1] - pts[0]) ** 2)) == pytest.approx(1e-12, rel=1e-6)
