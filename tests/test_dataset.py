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
