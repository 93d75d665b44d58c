"""The opening and closing cell every chapter shares.

A chapter starts with::

    page = chapter.start("02_universal_dynamics", "universal")
    cfg, check = page.settings, page.check

which loads the profile's settings for the chapter's section, starts the chapter's record of checks
(:func:`repalign.claims.for_chapter`), sets the torch thread count and starts the run timer; it prints
one line that says which profile and seed run. The chapter ends with ``page.finish()``, which closes
the run of checks (a chapter interrupted before it is marked incomplete on the scorecard) and prints
the run time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from . import claims, profiles

__all__ = ["ChapterRun", "start"]

#: Torch threads a chapter uses by default: the two cores of a laptop or of CI.
DEFAULT_THREADS = 2


@dataclass
class ChapterRun:
    """A running chapter: its settings, its check function and its timer.

    Attributes
    ----------
    name : str
        The chapter's file stem, e.g. ``"02_universal_dynamics"`` (the name its claims are recorded under).
    settings : dict
        ``profiles.settings(section)`` for the current profile.
    check : callable
        This chapter's :func:`repalign.claims.check` (see :func:`repalign.claims.for_chapter`).
    threads : int or None
        The torch thread count set at the start (None: torch untouched).
    started : float
        ``time.perf_counter()`` at the start.
    """

    name: str
    settings: dict[str, Any]
    check: Callable[..., claims.Claim]
    threads: int | None
    started: float = field(default_factory=time.perf_counter)
    #: What :meth:`finish` undoes (the subnormal flushing of ``start(flush_denormal=True)``).
    _settings_held: ExitStack = field(default_factory=ExitStack, repr=False)

    def elapsed(self) -> float:
        """Seconds since :func:`start`."""
        return time.perf_counter() - self.started

    def finish(self) -> None:
        """Close the chapter's run of checks (:func:`repalign.claims.finish_chapter`: records it did not
        re-check are forgotten, the scorecard no longer lists it as incomplete), restore the subnormal
        setting that :func:`start` changed, and print the run time, with the profile and the torch
        threads (a closing cell's only output)."""
        self._settings_held.close()
        claims.finish_chapter(self.name, started=self.check.run_started, profile=self.settings["profile"])
        threads = "" if self.threads is None else f", {self.threads} torch threads"
        print(f"chapter run time ({self.settings['profile']} profile{threads}): {self.elapsed():.0f} s")

    def scorecard(self) -> str:
        """This chapter's checks under the current profile, as a Markdown table (the scorecard's columns)."""
        records = [c for c in claims.load() if c.chapter == self.name and c.profile == self.settings["profile"]]
        return claims.scorecard_markdown(records, compact=True)


def start(name: str, section: str, *, threads: int | None = DEFAULT_THREADS, flush_denormal: bool = False,
          quiet: bool = False) -> ChapterRun:
    """Open a chapter: settings, record of checks, torch threads, timer.

    Parameters
    ----------
    name : str
        The chapter's file stem (``"04_xor"``).
    section : str
        The :func:`repalign.profiles.settings` section the chapter reads.
    threads : int or None, default 2
        Torch threads for the chapter's kernel (never more than torch's own default); None leaves
        torch alone (and does not import it).
    flush_denormal : bool, default False
        Flush subnormal floats to zero from here to :meth:`ChapterRun.finish`
        (:func:`repalign.numerics.flush_denormal`, on every torch thread; ``finish`` restores the
        previous setting). Small-weight networks trained with Adam or tanh produce subnormal numbers
        that a CPU processes about ten times slower; flushing them changes only values below the
        smallest normal float. Stated in the printed line.
    quiet : bool, default False
        Do not print the opening line (a chapter that prints its own).

    Returns
    -------
    ChapterRun

    Raises
    ------
    TypeError
        If `threads` is not an int or None, or `flush_denormal`/`quiet` is not a bool.
    ValueError
        If `threads` < 1, or `section` is not a profile section.
    """
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)):
        raise TypeError(f"`threads` must be an int >= 1 or None, got {threads!r}")
    if threads is not None and threads < 1:
        raise ValueError(f"`threads` must be >= 1, got {threads}")
    for flag, value in (("flush_denormal", flush_denormal), ("quiet", quiet)):
        if not isinstance(value, bool):
            raise TypeError(f"`{flag}` must be True or False, got {value!r}")
    cfg = profiles.settings(section)
    try:
        check = claims.for_chapter(name)
    except ValueError as err:  # claims names its own argument `chapter`; here it is `name`
        raise ValueError(str(err).replace("`chapter`", "`name` (the chapter's file stem)", 1)) from None
    used = None
    held = ExitStack()
    if threads is not None:
        import torch

        from . import numerics

        torch.set_num_threads(max(1, min(threads, torch.get_num_threads())))
        if flush_denormal:
            held.enter_context(numerics.flush_denormal())
        used = torch.get_num_threads()
    elif flush_denormal:
        raise ValueError("`flush_denormal=True` needs torch: pass `threads` as well")
    page = ChapterRun(name=name, settings=cfg, check=check, threads=used, _settings_held=held)
    if not quiet:
        extra = "" if used is None else f", torch threads: {used}"
        extra += ", subnormals flushed to zero" if flush_denormal else ""
        print(f"profile: {cfg['profile']}, first seed: {cfg['seed']}{extra}")
    return page
