"""A result store: one file per task, keyed by the task's spec and its experiment's result version.

An experiment is a pure function ``spec -> dict of arrays`` registered with :func:`register` under a
name and a *result version*, an integer bumped whenever the code's output for the same spec changes
(a changed version misses every old file). A :class:`Task` is one call of it: the experiment's name
and a small JSON-able spec (settings, seed(s), dtype, profile).

Each stored task is two files in ``<root>/<experiment>/``:

``<key>.npz``
    The arrays (numbers and strings only: it is read with ``allow_pickle=False``, so a committed or
    downloaded store can never execute code). The zip members carry a fixed timestamp, so the same
    arrays always give the same bytes.
``<key>.json``
    Provenance: the spec, result version, package version, git revision and whether the tree was
    dirty, python/numpy/scipy/torch/numba versions, device and CPU count, seed(s), profile, wall time,
    start and end times, and the SHA-256 of the ``.npz``.

``key`` is the first 20 hex digits of the SHA-256 of ``{experiment, result version, spec}`` in
canonical JSON. Both files are written atomically (temporary file in the same directory, ``fsync``,
``os.replace``, ``fsync`` of the directory), the ``.npz`` first: a killed writer leaves at most a stray
temporary file or an ``.npz`` without provenance, which is a miss. A file whose checksum does not
match (truncated, corrupted) is reported with a warning that names it, never loaded, and recomputed
by :meth:`Store.compute`.

The root is ``$REPALIGN_RESULTS_DIR`` if set, else ``results/store/`` at the repository root.

**Published results.** A profile's long-run results travel with the project in a read-only store,
``published/<profile>/`` at the repository root (or ``$REPALIGN_PUBLISHED_DIR/<profile>``), made by
``python -m repalign.campaign publish``. :func:`cached` (what the chapters call) looks there when the
local store lacks a task, so a reader builds the paper-profile book without training; a local result
always wins (a re-run here is newer). With ``REPALIGN_STORE_ONLY=1`` a task found in neither store raises
:class:`MissingResultError` (which says how to compute it) instead of training: the mode CI builds the
paper-profile chapters in, where a missing result must be an error, not hours of training.

>>> import tempfile
>>> @register("demo_square", version=1)
... def _square(spec):
...     return {"y": np.arange(spec["n"]) ** 2}
>>> s = Store(tempfile.mkdtemp())
>>> r = s.compute(Task("demo_square", {"n": 4}))
>>> r.loaded, r.arrays["y"].tolist()
(False, [0, 1, 4, 9])
>>> s.compute(Task("demo_square", {"n": 4})).loaded
True
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from ._validate import not_writable, results_dir

__all__ = ["ENV_VAR", "PUBLISHED_ENV_VAR", "STORE_ONLY_ENV_VAR", "StoreError", "MissingResultError",
           "CorruptResultWarning", "Experiment", "EXPERIMENTS", "register", "experiment", "Task", "Result", "Store",
           "default_root", "published_root", "published_store", "store_only", "cached", "describe",
           "machine_provenance", "run_timed"]

ENV_VAR = "REPALIGN_RESULTS_DIR"
#: Directory holding the published stores, one sub-directory per profile (default ``published/``).
PUBLISHED_ENV_VAR = "REPALIGN_PUBLISHED_DIR"
#: Set to ``1`` to make :func:`cached` raise :class:`MissingResultError` instead of computing a missing task.
STORE_ONLY_ENV_VAR = "REPALIGN_STORE_ONLY"
_KEY_DIGITS = 20
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed member timestamps: equal arrays give equal bytes


class StoreError(OSError):
    """The store directory cannot be created or written (permissions, read-only or full disk)."""


class MissingResultError(LookupError):
    """A task is in no store and ``$REPALIGN_STORE_ONLY`` forbids computing it; the message says how to."""


class CorruptResultWarning(UserWarning):
    """A stored file failed its checksum or could not be read; it is ignored and recomputed."""


@dataclass(frozen=True)
class Experiment:
    """A registered experiment: ``function(spec) -> dict of arrays`` at result version ``version``."""

    name: str
    function: Callable[[Mapping[str, Any]], Mapping[str, Any]] = field(repr=False)
    version: int
    chapter: str | None = None
    epochs_field: str | None = None
    records: tuple[str, ...] = ()
    version_for: Callable[[Mapping[str, Any]], int] | None = field(default=None, repr=False)

    def version_of(self, spec: Mapping[str, Any]) -> int:
        """The result version of ``spec``: ``version_for(spec)`` where given, else ``version``."""
        if self.version_for is None:
            return self.version
        v = self.version_for(spec)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"experiment {self.name!r}: `version_for` must return an integer >= 1, got {v!r}")
        return v


#: Every registered experiment by name (filled by :func:`register`; :mod:`repalign.tasks` registers the book's).
EXPERIMENTS: dict[str, Experiment] = {}


def register(name: str, *, version: int, chapter: str | None = None, epochs_field: str | None = None,
             records: tuple[str, ...] = (), version_for: Callable[[Mapping[str, Any]], int] | None = None):
    """Decorator: register ``function(spec) -> dict of arrays`` as experiment ``name`` at ``version``.

    Parameters
    ----------
    name : str
        Experiment name (letters, digits, ``_``): the store's sub-directory.
    version : int
        Result version (>= 1). Bump it whenever the function's output for the same spec changes.
    chapter : str, optional
        The chapter whose results it computes, e.g. ``"02_universal_dynamics"``.
    epochs_field : str, optional
        The spec entry that holds the number of epochs, declared only where a run's records before
        epoch ``k`` do not depend on that number (nothing in training looks ahead): the same spec with
        ``k`` epochs then reproduces the first ``k`` records of every trajectory, which lets
        :func:`repalign.campaign.verify_prefix` check a task too long to recompute whole.
    records : tuple of str
        With ``epochs_field``: the result arrays that are such records (trials first, then one entry
        per ``epochs`` record), as opposed to arrays computed from the whole run (fits, final values).
    version_for : callable, optional
        ``version_for(spec) -> int``: the result version of one spec, for a change of the code that
        alters the output of some specs only (a faster path for one network variant): bump the version
        of those specs and their old files miss, while every other spec keeps its key and its stored
        result. Default: ``version`` for every spec.
    """
    if not isinstance(name, str) or not name.replace("_", "").isalnum():
        raise ValueError(f"`name` must be a non-empty identifier of letters, digits and '_', got {name!r}")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"`version` must be an integer >= 1, got {version!r}")

    if epochs_field is not None and not (isinstance(epochs_field, str) and epochs_field.isidentifier()):
        raise ValueError(f"`epochs_field` must be the name of a spec entry, got {epochs_field!r}")
    records = tuple(records)
    if (epochs_field is None) != (not records) or not all(isinstance(r, str) and r for r in records):
        raise ValueError(f"`records` (array names) and `epochs_field` go together; got {records!r} and "
                         f"{epochs_field!r}")

    def decorate(function):
        EXPERIMENTS[name] = Experiment(name, function, version, chapter, epochs_field, records, version_for)
        return function

    return decorate


def experiment(name: str) -> Experiment:
    """The registered experiment ``name`` (the book's experiments register on first use)."""
    if name not in EXPERIMENTS:
        from . import tasks  # noqa: F401  (registers the book's experiments)
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; registered: {', '.join(sorted(EXPERIMENTS))}")
    return EXPERIMENTS[name]


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _plain(value):
    """``value`` as plain JSON types (tuples become lists, numpy scalars Python numbers)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"a task spec holds only JSON values (numbers, strings, lists, dicts); got {value!r}")


@dataclass(frozen=True, eq=False)
class Task:
    """One call of a registered experiment: ``experiment`` and its JSON-able ``spec``.

    Tasks are equal and hash equal when their experiment and canonical spec are equal.
    """

    experiment: str
    spec: Mapping[str, Any]

    def __post_init__(self):
        if not isinstance(self.experiment, str) or not self.experiment:
            raise ValueError(f"`experiment` must be a non-empty string, got {self.experiment!r}")
        if not isinstance(self.spec, Mapping):
            raise TypeError(f"`spec` must be a mapping, got {type(self.spec).__name__}")
        plain = _plain(self.spec)
        _canonical(plain)  # rejects NaN/inf early
        object.__setattr__(self, "spec", MappingProxyType(plain))

    @property
    def canonical(self) -> str:
        return _canonical({"experiment": self.experiment, "spec": dict(self.spec)})

    def __eq__(self, other):
        return isinstance(other, Task) and self.canonical == other.canonical

    def __hash__(self):
        return hash(self.canonical)

    def __reduce__(self):  # picklable (to worker processes), although the spec is a read-only mapping
        return (Task, (self.experiment, dict(self.spec)))

    @property
    def version(self) -> int:
        return experiment(self.experiment).version_of(self.spec)

    @property
    def key(self) -> str:
        """Hash of experiment, result version and spec: the file name in the store."""
        text = _canonical({"experiment": self.experiment, "version": self.version, "spec": dict(self.spec)})
        return hashlib.sha256(text.encode()).hexdigest()[:_KEY_DIGITS]

    def label(self) -> str:
        """A short readable name, e.g. ``two_point(name=default, seeds=0..49)`` (consecutive seeds as a
        range, the unset ``None`` settings left out)."""
        def shown(k, v):
            if k == "seeds" and isinstance(v, (list, tuple)) and len(v) > 2 \
                    and list(v) == list(range(v[0], v[0] + len(v))):
                return f"{v[0]}..{v[-1]}"
            return v

        inner = ", ".join(f"{k}={shown(k, v)}" for k, v in self.spec.items() if k != "profile" and v is not None)
        return f"{self.experiment}({inner})"

    def run(self) -> dict[str, np.ndarray]:
        """Compute the task (no store): the experiment's arrays, checked for the store."""
        return _check_arrays(experiment(self.experiment).function(self.spec))


@dataclass(frozen=True, eq=False)
class Result:
    """A task's arrays and provenance; ``loaded`` says whether they came from the store."""

    task: Task
    arrays: Mapping[str, np.ndarray] = field(repr=False)
    provenance: Mapping[str, Any] = field(repr=False)
    loaded: bool

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]


def _check_arrays(arrays) -> dict[str, np.ndarray]:
    if not isinstance(arrays, Mapping):
        raise TypeError(f"an experiment must return a dict of arrays, got {type(arrays).__name__}")
    out = {}
    for name, value in arrays.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"array names must be identifiers, got {name!r}")
        a = np.asarray(value)
        if a.dtype.hasobject:
            raise TypeError(f"array {name!r} has dtype object: the store keeps numbers and strings only "
                            "(it loads with allow_pickle=False)")
        out[name] = a
    return out


def _npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, arrays[name], allow_pickle=False)
    return buf.getvalue()


def _read_npz(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


@functools.cache
def _git() -> tuple[str, bool | None]:
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        if rev.returncode != 0:
            return "unknown", None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=20)
        return rev.stdout.strip(), bool(dirty.stdout.strip()) if dirty.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return "unknown", None


def _version(module: str) -> str | None:
    mod = sys.modules.get(module)
    if mod is None:
        try:
            mod = __import__(module)
        except ImportError:
            return None
    return getattr(mod, "__version__", None)


def machine_provenance(spec: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What produced a result here and now: versions, revision, device, CPU count (no timing)."""
    from . import __version__

    spec = {} if spec is None else spec
    revision, dirty = _git()
    device = str(spec.get("device", "cpu"))
    if device.startswith("cuda"):
        import torch

        device = f"{device} ({torch.cuda.get_device_name()})" if torch.cuda.is_available() else device
    else:
        device = f"cpu ({platform.machine()}, {platform.processor() or platform.system()})"
    threads = None
    if "torch" in sys.modules:
        threads = sys.modules["torch"].get_num_threads()
    return {
        "package": "repalign", "package_version": __version__, "git_revision": revision, "git_dirty": dirty,
        "python": platform.python_version(), "numpy": np.__version__, "scipy": _version("scipy"),
        "torch": _version("torch"), "numba": _version("numba"), "device": device, "cpu_count": os.cpu_count(),
        "torch_threads": threads, "platform": platform.platform(),
        "seed": spec.get("seeds", spec.get("seed")), "profile": spec.get("profile"),
    }


def default_root() -> Path:
    """``$REPALIGN_RESULTS_DIR``, else ``results/store/`` at the repository root (or ``~/.cache/repalign/store``)."""
    return results_dir(ENV_VAR, "store")


def published_root(profile: str) -> Path | None:
    """Where ``profile``'s published store lives: ``$REPALIGN_PUBLISHED_DIR/<profile>``, else
    ``published/<profile>`` at the repository root; None for an installed package without a checkout."""
    from .profiles import _check

    _check(profile, "`profile`")
    env = os.environ.get(PUBLISHED_ENV_VAR, "").strip()
    if env:
        return Path(env) / profile
    root = Path(__file__).resolve().parents[2]
    return root / "published" / profile if (root / "pyproject.toml").exists() else None


def published_store(profile: str) -> Store | None:
    """The read-only published store of ``profile`` (:func:`published_root`), or None if it has none."""
    root = published_root(profile)
    return Store(root) if root is not None and root.is_dir() else None


def store_only() -> bool:
    """Whether ``$REPALIGN_STORE_ONLY`` forbids computing missing tasks (``1``/``true``/``yes``; ``0``,
    ``false``, ``no`` or unset: compute them).

    Raises
    ------
    ValueError
        If the variable holds anything else (a typo must not silently start hours of training).
    """
    value = os.environ.get(STORE_ONLY_ENV_VAR, "").strip().lower()
    if value in ("", "0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise ValueError(f"environment variable {STORE_ONLY_ENV_VAR} must be 1/true/yes or 0/false/no, got {value!r}")


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds")


class Store:
    """A directory of task results (see the module docstring).

    Parameters
    ----------
    root : path, optional
        The store directory (default :func:`default_root`); created on the first write.
    """

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(default_root() if root is None else root)

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    def paths(self, task: Task) -> tuple[Path, Path]:
        """``(npz, json)`` paths of ``task``."""
        d = self.root / task.experiment
        return d / f"{task.key}.npz", d / f"{task.key}.json"

    def __contains__(self, task: Task) -> bool:
        npz, meta = self.paths(task)
        return npz.exists() and meta.exists()

    def get(self, task: Task) -> Result | None:
        """The stored result of ``task``, or None if absent or corrupt (a warning names a corrupt file).

        The returned provenance carries ``"store"``: the directory it was read from."""
        npz, meta = self.paths(task)
        if not (npz.exists() and meta.exists()):
            return None
        try:
            prov = json.loads(meta.read_text())
            data = npz.read_bytes()
            if hashlib.sha256(data).hexdigest() != prov["sha256"]:
                raise ValueError("the .npz does not match the SHA-256 in its provenance (truncated or corrupted)")
            if prov.get("spec") != dict(task.spec) or prov.get("result_version") != task.version:
                raise ValueError("the provenance names another spec or result version")
            arrays = _read_npz(data)
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
            warnings.warn(f"ignoring corrupt stored result {npz} ({exc}); it will be recomputed",
                          CorruptResultWarning, stacklevel=2)
            return None
        prov["store"] = str(self.root)
        return Result(task, MappingProxyType(arrays), MappingProxyType(prov), True)

    def put(self, task: Task, arrays: Mapping[str, Any], provenance: Mapping[str, Any] | None = None) -> Result:
        """Store ``arrays`` as the result of ``task``, with ``provenance`` (default :func:`machine_provenance`).

        Raises
        ------
        StoreError
            If the directory cannot be created or written; the message names the path.
        """
        arrays = _check_arrays(arrays)
        data = _npz_bytes(arrays)
        prov = dict(machine_provenance(task.spec) if provenance is None else provenance)
        prov.update({"experiment": task.experiment, "result_version": task.version, "key": task.key,
                     "spec": dict(task.spec), "sha256": hashlib.sha256(data).hexdigest(),
                     "arrays": {k: [str(a.dtype), list(a.shape)] for k, a in sorted(arrays.items())}})
        npz, meta = self.paths(task)
        _atomic_write(npz, data)
        _atomic_write(meta, (json.dumps(prov, indent=1, sort_keys=True) + "\n").encode())
        loaded = {k: a.copy() for k, a in arrays.items()}
        return Result(task, MappingProxyType(loaded), MappingProxyType(prov), False)

    def compute(self, task: Task) -> Result:
        """Load ``task`` if stored (and intact), else compute it, store it and return it."""
        hit = self.get(task)
        return hit if hit is not None else self.put(task, *run_timed(task))

    def tasks(self, experiment: str | None = None) -> list[dict[str, Any]]:
        """The provenance of every stored result (optionally of one experiment), read from the ``.json`` files."""
        out = []
        if not self.root.exists():
            return out
        dirs = [self.root / experiment] if experiment else sorted(p for p in self.root.iterdir() if p.is_dir())
        for d in dirs:
            for meta in sorted(d.glob("*.json")):
                try:
                    out.append(json.loads(meta.read_text()))
                except (OSError, ValueError):
                    warnings.warn(f"ignoring unreadable provenance {meta}", CorruptResultWarning, stacklevel=2)
        return out


def run_timed(task: Task) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Compute ``task`` and return ``(arrays, provenance)`` with wall time and start/end times."""
    started = _now()
    t0 = time.perf_counter()
    arrays = task.run()
    seconds = time.perf_counter() - t0
    prov = machine_provenance(task.spec)
    prov.update({"started": started, "finished": _now(), "wall_seconds": seconds})
    return arrays, prov


def _source(result: Result) -> str:
    """Where a loaded result came from, for :func:`describe`: the store, or a profile's published store."""
    profile = result.task.spec.get("profile")
    if isinstance(profile, str) and profile in _profiles():
        pub = published_root(profile)
        if pub is not None and str(result.provenance.get("store")) == str(pub):
            return f"the published {profile}-profile store"
    return "the store"


def _profiles() -> tuple[str, ...]:
    from .profiles import PROFILES

    return tuple(PROFILES)


def describe(results) -> str:
    """One sentence for a chapter: how many ``results`` were loaded (from which store, revisions and
    dates) and how many were computed now, e.g. ``"12 results: 12 loaded from the published
    paper-profile store (revision 7851ca3, 2026-12-02), 0 computed now."``"""
    results = list(results)
    groups: dict[str, list[Result]] = {}
    for r in results:
        if r.loaded:
            groups.setdefault(_source(r), []).append(r)
    parts = []
    for source, loaded in groups.items():
        revs = sorted({str(r.provenance.get("git_revision", "unknown"))[:7]
                       + ("-dirty" if r.provenance.get("git_dirty") else "") for r in loaded})
        days = sorted({str(r.provenance.get("finished", "?"))[:10] for r in loaded})
        parts.append(f"{len(loaded)} loaded from {source} (revision{'s' * (len(revs) > 1)} {', '.join(revs)}, "
                     f"{days[0] if len(days) == 1 else days[0] + ' to ' + days[-1]})")
    if not parts:
        parts = ["0 loaded from the store"]
    n_loaded = sum(len(g) for g in groups.values())
    return f"{len(results)} results: {', '.join(parts)}, {len(results) - n_loaded} computed now."


def cached(task: Task, store: Store | None = None) -> Result:
    """The stored result of ``task``, computed and stored if missing (what the chapters call).

    With ``store=None``: the local store (:class:`Store()`), else the published store of the task's
    profile (:func:`published_store`), else computed and written to the local store, unless
    ``$REPALIGN_STORE_ONLY`` is set (:func:`store_only`), which raises :class:`MissingResultError`
    instead. An explicit ``store`` is ``store.compute(task)``: no published fallback.
    """
    if store is not None:
        return store.compute(task)
    local = Store()
    hit = local.get(task)
    profile = task.spec.get("profile")
    published = published_store(profile) if isinstance(profile, str) and profile in _profiles() else None
    if hit is None and published is not None:
        hit = published.get(task)
    if hit is not None:
        return hit
    if store_only():
        where = f"{local.root}" + ("" if published is None else f" nor in {published.root}")
        raise MissingResultError(
            f"{task.label()} (key {task.key}) is not in {where}, and {STORE_ONLY_ENV_VAR} forbids training it "
            f"here. Compute it with `python -m repalign.campaign run --profile {profile}` (add --store DIR "
            f"to choose where), or unset {STORE_ONLY_ENV_VAR} to train it now.")
    return local.put(task, *run_timed(task))


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temporary file in the same directory, fsync, rename, fsync dir."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a store is shared like any results directory
        os.replace(tmp, path)
        tmp = None
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as exc:
        raise not_writable(exc, path, "the result store", ENV_VAR, StoreError, " with free space") from exc
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
