"""Argument checks shared by the public functions: each names the argument and the allowed range."""

from __future__ import annotations

import operator
import os
from pathlib import Path

import numpy as np


def finite_array(name: str, value, *, ndim: int | None = None, shape: tuple | None = None) -> np.ndarray:
    """Return ``value`` as a float64 array, raising ``ValueError`` if it is not finite or has the wrong shape."""
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"`{name}` must be numeric, got {value!r}") from exc
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"`{name}` must be {ndim}-dimensional, got shape {arr.shape}")
    if shape is not None and arr.shape != shape:
        raise ValueError(f"`{name}` must have shape {shape}, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` must be finite (no NaN or inf), got {value!r}")
    return arr


def positive(name: str, value) -> np.ndarray:
    """A finite, strictly positive value (a rate, a gain, a non-zero squared distance)."""
    arr = finite_array(name, value)
    if np.any(arr <= 0):
        raise ValueError(f"`{name}` must be > 0, got {value!r}")
    return arr


def non_negative(name: str, value) -> np.ndarray:
    """A finite value >= 0 (a squared distance that may vanish)."""
    arr = finite_array(name, value)
    if np.any(arr < 0):
        raise ValueError(f"`{name}` is a squared distance and must be >= 0, got {value!r}")
    return arr


def times(name: str, value) -> np.ndarray:
    """A 1-D, finite, strictly increasing array of at least one time point."""
    arr = finite_array(name, value, ndim=1)
    if arr.size == 0:
        raise ValueError(f"`{name}` must contain at least one time point")
    if np.any(np.diff(arr) <= 0):
        raise ValueError(f"`{name}` must be strictly increasing (sorted, no repeated times)")
    return arr


def integer(name: str, value, *, low: int = 1, high: int | None = None, meaning: str = "") -> int:
    """``value`` as an int in ``[low, high]`` (bools and floats rejected); the error names `name` and, if
    given, its meaning. ``high`` bounds the work a call can ask for (``None``: no upper bound)."""
    extra = f" ({meaning})" if meaning else ""
    span = f"in [{low}, {high}]" if high is not None else f">= {low}"
    try:
        out = operator.index(value)
    except TypeError:
        raise ValueError(f"`{name}` must be an integer {span}{extra}, got {value!r}") from None
    if isinstance(value, bool) or out < low or (high is not None and out > high):
        raise ValueError(f"`{name}` must be an integer {span}{extra}, got {value!r}")
    return out


def finite_output(value, what: str, fix: str):
    """``value`` if every entry is finite, else a ValueError: ``what`` overflowed float64 (inf or NaN) for
    the given inputs, and ``fix`` says which argument to change. Never a silent inf/NaN result."""
    arr = np.asarray(value)
    if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
        raise ValueError(f"{what} overflows float64 (inf or NaN) for these inputs; {fix}")
    return value


def instance(name: str, value, cls: type, made_by: str, duck: tuple[str, ...] = ()):
    """``value`` if it is a ``cls`` (or has every attribute in ``duck``: a stand-in with the same fields),
    else a TypeError naming ``name``, the type expected and what makes one (instead of an
    AttributeError from deep inside the function)."""
    if not isinstance(value, cls) and not (duck and all(hasattr(value, a) for a in duck)):
        raise TypeError(f"`{name}` must be a {cls.__module__}.{cls.__qualname__} ({made_by}), "
                        f"got {type(value).__name__}: {value!r:.80}")
    return value


def flag(name: str, value) -> bool:
    """A real bool (``True``/``False`` or a numpy bool): strings such as ``'no'`` would be truthy, so
    anything else raises ``TypeError``."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be True or False, got {value!r}")
    return bool(value)


def seed(name: str, value) -> int:
    """A required seed: an int >= 0; ``None`` (unseeded) and other types raise ``TypeError``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{name}` must be an integer >= 0 (a seed is required), got {value!r}")
    if value < 0:
        raise ValueError(f"`{name}` must be an integer >= 0, got {value!r}")
    return int(value)


def at_most(name: str, value, limit: float) -> np.ndarray:
    """A finite value with ``|value| <= limit`` (bounded work for solvers and grids)."""
    arr = finite_array(name, value)
    if np.any(np.abs(arr) > limit):
        raise ValueError(f"`{name}` must be at most {limit:g} in magnitude, got {value!r}")
    return arr


def tolerance(name: str, value) -> float:
    """A solver tolerance: a finite number in ``(0, 1)``."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a number in (0, 1), got {value!r}") from None
    if not 0 < out < 1:
        raise ValueError(f"`{name}` must be a number in (0, 1), got {value!r}")
    return out


class WorkLimit:
    """Wrap an ODE right-hand side ``fun(t, y, *args)`` so that more than ``limit`` evaluations raise a
    ``RuntimeError`` that names ``what`` (bounded work whatever the input)."""

    def __init__(self, fun, limit: int, what: str):
        self.fun, self.limit, self.what, self.calls = fun, limit, what, 0

    def __call__(self, *args):
        self.calls += 1
        if self.calls > self.limit:
            raise RuntimeError(f"integration stopped after {self.limit} evaluations: {self.what}")
        return self.fun(*args)


def not_writable(exc: OSError, path: str | os.PathLike, what: str, env_var: str, error: type[OSError],
                 hint: str = "") -> OSError:
    """``error`` (an ``OSError`` subclass) saying that ``what`` cannot be written at ``path``, why, and which
    environment variable points it elsewhere; raise it ``from exc``. The one wording for the claims, the
    result store and the MNIST cache."""
    reason = exc.strerror or str(exc)
    return error(exc.errno, f"cannot write {what} at {path}: {reason} "
                            f"(set ${env_var} to a writable directory{hint})", str(path))


def results_dir(env_var: str, subdir: str) -> Path:
    """``$env_var`` if set, else ``results/<subdir>`` at the repository root (a source checkout), else
    ``~/.cache/repalign/<subdir>`` (an installed package): where claims and stored results go."""
    env = os.environ.get(env_var, "").strip()
    if env:
        return Path(env)
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").exists():
        return root / "results" / subdir
    return Path.home() / ".cache" / "repalign" / subdir
