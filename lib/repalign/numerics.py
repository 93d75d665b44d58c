"""Floating-point settings of a computation, made explicit and local.

Small-weight networks trained with Adam (whose second moments shrink towards zero) or with tanh produce
subnormal numbers, which a CPU processes many times slower than normal ones. :func:`flush_denormal`
flushes them to zero inside a ``with`` block and restores the previous setting when the block ends, so
the change is never a silent global one. Flushing changes a value only where it is below the smallest
normal float (about 1.2e-38 in float32, 2.2e-308 in float64); ``tests/test_numerics.py`` checks that an
Adam run at small weights gives the same records with and without it, to a stated tolerance.

Why not just ``torch.set_flush_denormal``: it sets the flags of the calling thread only. Torch's OpenMP
worker threads keep the flags they were started with (measured: with 2 threads, half of a large tensor
of subnormals is flushed), so a result would depend on how an operation is split between threads, and
turning flushing off again would not reach the workers. :func:`flush_denormal` sets the flags on every
thread of torch's OpenMP team (a parallel region of torch's own ``libgomp``; :func:`set_flush_denormal`).

>>> import torch
>>> with flush_denormal() as ok:
...     inside = denormals_flushed()
>>> inside == ok, denormals_flushed()
(True, False)
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

__all__ = ["flush_denormal", "denormals_flushed", "set_flush_denormal", "flush_denormal_supported"]

#: A float64 subnormal: it survives a multiplication by 1 unless subnormals are flushed.
_SUBNORMAL = 1e-310
#: Elements of the probe of :func:`denormals_flushed`: enough for torch to split it over its threads.
_PROBE = 1 << 18


@functools.cache
def _omp_parallel():
    """``run(fn)``: call ``fn()`` once on every thread of torch's OpenMP team, or None when torch's
    OpenMP runtime (a ``libgomp`` or a library with its ``GOMP_parallel`` entry point) is not found."""
    try:
        with open("/proc/self/maps") as f:
            paths = {w for line in f for w in line.split() if "gomp" in w or "libiomp" in w or "libomp" in w}
    except OSError:
        return None
    # torch's own runtime first: numba's OpenMP threading layer loads the system libgomp too, whose
    # team is not torch's (taking it, by name order, left torch's workers unflushed)
    torch_dir = str(Path(torch.__file__).resolve().parent)
    for path in sorted(paths, key=lambda p: (not str(Path(p).resolve()).startswith(torch_dir), p)):
        try:
            lib = ctypes.CDLL(path)
            entry = lib.GOMP_parallel
        except (OSError, AttributeError):
            continue
        callback = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
        entry.argtypes = [callback, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
        entry.restype = None

        def run(fn, entry=entry, callback=callback):
            cb = callback(lambda _: fn())  # kept alive for the call
            entry(cb, None, torch.get_num_threads(), 0)

        return run
    return None


def set_flush_denormal(enabled: bool) -> bool:
    """``torch.set_flush_denormal(enabled)`` on the calling thread and on every thread of torch's OpenMP
    team; returns whether the CPU supports it (torch's answer). Prefer the context manager
    :func:`flush_denormal`, which restores the previous setting."""
    supported = bool(torch.set_flush_denormal(enabled))
    run = _omp_parallel()
    if run is not None and torch.get_num_threads() > 1:
        run(lambda: torch.set_flush_denormal(enabled))
    return supported


def denormals_flushed() -> bool:
    """Whether torch's CPU operations flush subnormal numbers to zero, on every one of its threads.

    Torch cannot be asked for this setting, so it is read from its effect: a tensor of subnormals large
    enough to be split over all threads, times one, must come out all zero.
    """
    probe = torch.full((_PROBE,), _SUBNORMAL, dtype=torch.float64) * 1.0
    return not bool(probe.any())


def flush_denormal_supported() -> bool:
    """Whether this CPU lets torch flush subnormals (x86 with SSE3; ``torch.set_flush_denormal``'s answer),
    on every thread of torch's OpenMP team. Leaves the setting as it was."""
    with flush_denormal() as ok:
        return ok


@contextmanager
def flush_denormal(enabled: bool = True) -> Iterator[bool]:
    """Flush subnormal floats to zero (``enabled=True``) or keep them (``False``) inside the block.

    The setting of the calling thread before the block is restored on every torch thread when the
    block ends, also after an exception. It applies to torch's CPU operations (see the module
    docstring); not to numba's threads (:mod:`repalign._kernel`, plain SGD, where subnormals do not
    arise at the book's settings) nor to CUDA.

    Parameters
    ----------
    enabled : bool, default True

    Yields
    ------
    bool
        Whether the requested setting is in force on every thread (``False`` when this CPU cannot flush
        subnormals or torch's OpenMP runtime was not found; the block then runs all the same).

    Raises
    ------
    TypeError
        If ``enabled`` is not a bool.
    """
    if not isinstance(enabled, bool):
        raise TypeError(f"`enabled` must be True or False, got {enabled!r}")
    before = float(torch.full((1,), _SUBNORMAL, dtype=torch.float64) * 1.0) == 0.0  # the calling thread
    set_flush_denormal(enabled)
    try:
        yield denormals_flushed() == enabled
    finally:
        set_flush_denormal(before)
