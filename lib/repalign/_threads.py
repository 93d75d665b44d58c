"""Thread counts for training, chosen per call and restored afterwards.

On a CPU, torch's intra-op threads spin-wait between operations. For the small matrix products of the
two-point networks (a few rows per step) the threads gain nothing, and when another process keeps a
core busy a spinning thread waits for a time slice at every operation: the fused path ran 16-25x
slower with torch's default two threads than with one on a two-core machine with one busy process
(``python benchmarks/threads.py``). :func:`train_threads` therefore gives small problems one thread;
the numba kernel runs one thread per trial (its threads do not spin-wait between epochs) up to the
torch setting. :func:`torch_threads` and :func:`numba_threads` set a count for the duration of a call
and restore the caller's, so no library call changes global settings.
"""

from __future__ import annotations

import contextlib
import os

#: Rows of a training step's matrix products (trials x points per step) up to which the torch paths use
#: one thread: the two-point experiments (2-20 rows) and small minibatches. Measured, not tuned.
SMALL_ROWS = 64


def cores() -> int:
    """CPU cores this process may run on (its affinity mask, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def train_threads(engine: str, rows: int, requested: int | None, device) -> int:
    """Torch threads for one training call on ``engine`` whose steps multiply ``rows`` rows.

    ``requested`` (the caller's ``threads``) is honoured up to :func:`cores`; otherwise small problems on
    the CPU torch paths get 1 thread and everything else torch's current setting, at most :func:`cores`.
    """
    import torch

    if requested is not None:
        return max(1, min(requested, cores()))
    current = max(1, min(torch.get_num_threads(), cores()))
    if engine in ("fused", "reference") and torch.device(device).type == "cpu" and rows <= SMALL_ROWS:
        return 1
    return current


@contextlib.contextmanager
def torch_threads(n: int):
    """Run the block with ``torch.set_num_threads(n)``; the caller's count is restored afterwards."""
    import torch

    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


@contextlib.contextmanager
def numba_threads(n: int):
    """Run the block with ``numba.set_num_threads(n)`` (capped to numba's pool); restored afterwards."""
    import numba

    before = numba.get_num_threads()
    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(before)
