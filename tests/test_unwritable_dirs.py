"""An unwritable claims directory, result store or MNIST cache is a clear error naming the path and the
environment variable that moves it, not a raw OSError. The blocked path lies under a regular file
(``file/sub``), which no user, root included, can create."""

from __future__ import annotations

import tempfile

import numpy as np
import pytest

from repalign import _mnist, claims
from repalign._mnist import MNISTUnavailableError
from repalign.claims import ClaimsDirError
from repalign.store import Store, StoreError, Task, register


@pytest.fixture
def blocked(tmp_path):
    """A directory path that cannot be created: its parent is a regular file."""
    blocker = tmp_path / "file"
    blocker.write_text("a regular file, not a directory")
    return blocker / "sub"


def test_claims_dir_unwritable(blocked, monkeypatch):
    monkeypatch.setenv("REPALIGN_CLAIMS_DIR", str(blocked))
    with pytest.raises(ClaimsDirError, match=r"cannot write the claims directory at .*file/sub.*REPALIGN_CLAIMS_DIR"):
        claims.for_chapter("01_x", profile="quick")
    with pytest.raises(ClaimsDirError, match=r"cannot write the claims directory at .*file/sub.*REPALIGN_CLAIMS_DIR"):
        claims.check("01_x", "a claim", 1.0, paper="p", relation="<=", tolerance=2.0, quiet=True)


def test_claims_file_unwritable(tmp_path, monkeypatch):
    # the directory exists but the chapter's file cannot be replaced: a directory stands in its place
    monkeypatch.setenv("REPALIGN_CLAIMS_DIR", str(tmp_path))
    (tmp_path / "01_x.json").mkdir()
    with pytest.raises(ClaimsDirError, match=r"cannot write the claims file at .*01_x.json.*REPALIGN_CLAIMS_DIR"):
        claims.check("01_x", "a claim", 1.0, paper="p", relation="<=", tolerance=2.0, quiet=True)


@register("unwritable_probe", version=1)
def _probe(spec):
    return {"x": np.zeros(1)}


def test_results_dir_unwritable(blocked, monkeypatch):
    monkeypatch.setenv("REPALIGN_RESULTS_DIR", str(blocked))
    with pytest.raises(StoreError, match=r"cannot write the result store at .*file/sub.*REPALIGN_RESULTS_DIR"):
        Store().compute(Task("unwritable_probe", {"seed": 0}))


def test_mnist_cache_unwritable(blocked, monkeypatch):
    monkeypatch.setenv("REPALIGN_DATA_DIR", str(blocked))
    monkeypatch.setattr(_mnist, "SOURCES", ())
    with pytest.raises(MNISTUnavailableError,
                       match=r"cannot write the MNIST cache at .*file/sub.*REPALIGN_DATA_DIR") as info:
        _mnist.mnist("test", progress=False)
    assert str(blocked) in str(info.value)


def test_mnist_cache_directory_without_write_permission(tmp_path, monkeypatch):
    # a directory that exists but refuses new files (chmod can't show this when the tests run as root)
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path))

    monkeypatch.setenv("REPALIGN_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    monkeypatch.setattr(_mnist, "SOURCES", (lambda names, workdir, progress: {},))
    with pytest.raises(MNISTUnavailableError, match=r"cannot write the MNIST cache at .*Permission denied"):
        _mnist.mnist("test", progress=False)
