"""Recorded checks: every claim a chapter tests is measured, judged against a stated tolerance, printed
as a one-line verdict and stored, so that the reproduction scorecard is generated from the runs and
never typed by hand.

Records go to ``$REPALIGN_CLAIMS_DIR`` if set, else to ``results/claims/`` at the repository root
(one JSON file per chapter, ``<chapter>.json``, and its run log ``<chapter>.runs``). A run of a chapter
(:func:`for_chapter` ... :func:`finish_chapter`, which :mod:`repalign.chapter` calls) replaces its
records for that profile as it goes; only when it finishes are the records it did not re-check (checks
renamed or removed since) forgotten. A run interrupted half way keeps the previous run's other records
and is listed by :func:`incomplete`, which the scorecard shows. Chapter names are file-name stems
(letters, digits, ``_``, ``-``, ``.``): no name can write outside the claims directory.

>>> import tempfile, os
>>> os.environ["REPALIGN_CLAIMS_DIR"] = tempfile.mkdtemp()
>>> c = check("demo", "an identity holds", 3e-12, tolerance=1e-9, paper="eq. (1)", quiet=True)
>>> c.verdict
'pass'
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import math
import os
import re
import subprocess
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from . import profiles
from ._validate import not_writable, results_dir
from .tables import markdown_table

__all__ = ["Claim", "ClaimFailed", "ClaimsDirError", "RELATIONS", "check", "for_chapter", "finish_chapter",
           "incomplete", "claims_dir", "load", "scorecard_markdown"]

#: How ``measured`` is judged: against ``tolerance`` alone, or against ``expected`` within ``tolerance``.
RELATIONS = {
    "<=": "measured <= tolerance",
    ">=": "measured >= tolerance",
    "close": "|measured - expected| <= tolerance",
    "rel": "|measured - expected| <= tolerance * |expected|",
}


#: A chapter name: a file-name stem that cannot leave the claims directory (no '/', no leading '.').
_CHAPTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def _chapter_name(chapter) -> str:
    if not isinstance(chapter, str) or not chapter.strip():
        raise ValueError(f"`chapter` must be a non-empty string, got {chapter!r}")
    if not _CHAPTER_NAME.fullmatch(chapter):
        raise ValueError(f"`chapter` must be a file-name stem: letters, digits, '_', '-' and '.', not starting "
                         f"with '.', at most 100 characters (no '/', '..', spaces or control characters), "
                         f"e.g. '02_universal_dynamics'; got {chapter!r}")
    return chapter


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="microseconds")


class ClaimFailed(AssertionError):
    """A strict check failed: an identity that must hold did not, so the chapter stops here."""


@dataclass(frozen=True)
class Claim:
    """One recorded check."""

    chapter: str
    claim: str
    paper: str
    measured: float
    expected: float | None
    tolerance: float
    relation: str
    verdict: str
    profile: str
    revision: str
    time: str

    def line(self) -> str:
        """The one-line verdict printed under a check cell."""
        mark = "PASS" if self.verdict == "pass" else "FAIL"
        if self.relation in ("close", "rel"):
            rule = f"|{self.measured:.4g} - {self.expected:.4g}| {'<=' if self.verdict == 'pass' else '>'} "
            rule += f"{self.tolerance:.3g}" + (" x |expected|" if self.relation == "rel" else "")
        else:
            holds = self.verdict == "pass"
            op = self.relation if holds else {"<=": ">", ">=": "<"}[self.relation]
            rule = f"{self.measured:.4g} {op} {self.tolerance:.4g}"
        return f"[{mark}] {self.claim}\n       {rule}   (paper: {self.paper}; profile: {self.profile})"


class ClaimsDirError(OSError):
    """The claims directory cannot be created or written; the message names it and ``$REPALIGN_CLAIMS_DIR``."""


def claims_dir() -> Path:
    """Where records are stored (see the module docstring)."""
    return results_dir("REPALIGN_CLAIMS_DIR", "claims")


def _revision() -> str:
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=7"], cwd=Path(__file__).parent,
            capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _number(name: str, value) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"`{name}` must be a real number, got {value!r}") from exc
    if math.isnan(x):
        raise ValueError(f"`{name}` is NaN: a check cannot judge a NaN (the computation upstream failed)")
    if math.isinf(x):
        raise ValueError(f"`{name}` is {x}: a check records finite numbers only (the computation upstream "
                         "overflowed; a bound that does not apply is not a check)")
    return x


def check(
    chapter: str,
    claim: str,
    measured,
    *,
    tolerance,
    relation: str = "<=",
    expected=None,
    paper: str | float | None = None,
    strict: bool = True,
    profile: str | None = None,
    quiet: bool = False,
) -> Claim:
    """Judge ``measured``, record the result and print the verdict.

    Parameters
    ----------
    chapter : str
        Chapter key, e.g. ``"01_derivation"``.
    claim : str
        What is checked, in words, e.g. ``"3-D system equals the matrix flow (max rel. error)"``.
    measured : float
        The measured value.
    tolerance : float
        The stated tolerance (see ``relation``).
    relation : {"<=", ">=", "close", "rel"}
        How ``measured`` is judged; see :data:`RELATIONS`.
    expected : float, optional
        The reference value for ``"close"`` and ``"rel"``.
    paper : str or float, optional
        What the paper states (a value or an equation number); defaults to ``expected``.
    strict : bool
        If true (identities that must hold), a failure raises :class:`ClaimFailed` after recording.
        Use ``strict=False`` for paper claims that may honestly fail to reproduce: the failure is
        recorded and printed, and the chapter goes on to discuss it.
    profile : str, optional
        Defaults to :func:`repalign.profiles.current`.
    quiet : bool
        Do not print the verdict line.

    Returns
    -------
    Claim
    """
    if relation not in RELATIONS:
        raise ValueError(f"`relation` must be one of {', '.join(RELATIONS)}; got {relation!r}")
    chapter = _chapter_name(chapter)
    if not isinstance(claim, str) or not claim.strip():
        raise ValueError(f"`claim` must be a non-empty string, got {claim!r}")
    if any(ord(c) < 32 or ord(c) == 127 for c in claim):
        raise ValueError(f"`claim` must be one line without control characters (newline, tab, NUL), got {claim!r}")
    measured = _number("measured", measured)
    tolerance = _number("tolerance", tolerance)
    if tolerance < 0 and relation != ">=":
        raise ValueError(f"`tolerance` must be >= 0 for relation {relation!r}, got {tolerance}")
    if relation in ("close", "rel"):
        if expected is None:
            raise ValueError(f"relation {relation!r} needs `expected`")
        expected = _number("expected", expected)
        bound = tolerance * abs(expected) if relation == "rel" else tolerance
        ok = abs(measured - expected) <= bound
    else:
        expected = None if expected is None else _number("expected", expected)
        ok = measured <= tolerance if relation == "<=" else measured >= tolerance
    if paper is None:
        paper = "-" if expected is None else f"{expected:.4g}"
    record = Claim(
        chapter=chapter,
        claim=claim,
        paper=str(paper),
        measured=measured,
        expected=expected,
        tolerance=tolerance,
        relation=relation,
        verdict="pass" if ok else "fail",
        profile=profiles.current() if profile is None else profile,
        revision=_revision(),
        time=_now(),
    )
    _store(record)
    if not quiet:
        print(record.line())
    if strict and not ok:
        raise ClaimFailed(record.line())
    return record


def for_chapter(chapter: str, *, profile: str | None = None):
    """Start a run of ``chapter`` under ``profile``: log the start, return a :func:`check` bound to both.

    A chapter calls ``check = claims.for_chapter("01_derivation")`` once at the top and
    ``claims.finish_chapter("01_derivation", started=check.run_started)`` at the end
    (:mod:`repalign.chapter` does both). Until then the run is listed by :func:`incomplete` and the
    previous run's records that it has not re-checked stay, marked as such on the scorecard.
    The returned function's ``run_started`` attribute is the run's start time.
    """
    chapter = _chapter_name(chapter)
    profile = profiles.current() if profile is None else profiles._check(profile, "`profile`")
    started = _now()
    _log_run(chapter, profile, started=started, finished=None)

    def check_in_chapter(claim: str, measured, **kwargs) -> Claim:
        kwargs.setdefault("profile", profile)
        return check(chapter, claim, measured, **kwargs)

    check_in_chapter.__doc__ = f"Record a check of chapter {chapter!r}; see repalign.claims.check."
    check_in_chapter.run_started = started
    return check_in_chapter


def finish_chapter(chapter: str, *, started: str, profile: str | None = None) -> None:
    """End the run of ``chapter`` begun at ``started`` (:func:`for_chapter`'s ``run_started``): forget
    this profile's records that the run did not re-check (renamed or removed checks) and log it finished."""
    chapter = _chapter_name(chapter)
    profile = profiles.current() if profile is None else profiles._check(profile, "`profile`")
    if not isinstance(started, str):
        raise TypeError(f"`started` must be the run's start time from for_chapter (a str), got {started!r}")
    _update(_directory() / f"{chapter}.json",
            lambda rows: [r for r in rows if r.get("profile") != profile or r.get("time", "") >= started])
    _log_run(chapter, profile, started=started, finished=_now())


def _readable(directory: Path, pattern: str):
    """``(path, rows)`` of every file matching ``pattern`` in ``directory``, in name order; a file that
    cannot be parsed is skipped with a :class:`CorruptClaimsWarning` naming it."""
    for path in sorted(directory.glob(pattern)):
        try:
            rows = _read_rows(path)
        except ValueError as exc:
            warnings.warn(str(exc), CorruptClaimsWarning, stacklevel=3)
            continue
        yield path, rows


def incomplete(profile: str | None = None, directory: str | Path | None = None) -> dict[str, str]:
    """``{chapter: start time}`` of the chapters whose last run under ``profile`` started and did not
    finish (interrupted, or still running). A corrupt run log is skipped with a
    :class:`CorruptClaimsWarning` naming it."""
    profile = profiles.current() if profile is None else profiles._check(profile, "`profile`")
    directory = claims_dir() if directory is None else Path(directory)
    out = {}
    for path, rows in _readable(directory, "*.runs"):
        for row in rows:
            if row.get("profile") == profile and row.get("finished") is None:
                out[path.stem] = str(row.get("started"))
    return out


def _log_run(chapter: str, profile: str, *, started: str, finished: str | None) -> None:
    entry = {"profile": profile, "started": started, "finished": finished}
    _update(_directory() / f"{chapter}.runs", lambda rows: [r for r in rows if r.get("profile") != profile] + [entry])


def _directory() -> Path:
    """:func:`claims_dir`, created if missing (ClaimsDirError naming it if it cannot be)."""
    directory = claims_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise not_writable(exc, directory, "the claims directory", "REPALIGN_CLAIMS_DIR", ClaimsDirError) from exc
    return directory


def _store(record: Claim) -> None:
    key = (record.claim, record.profile)
    _update(_directory() / f"{record.chapter}.json",
            lambda rows: [r for r in rows if (r["claim"], r["profile"]) != key] + [asdict(record)])


class CorruptClaimsWarning(UserWarning):
    """A chapter's claims file could not be parsed; it is skipped (when loading) or set aside (when writing)."""


def _read_rows(path: Path) -> list[dict]:
    """The records in ``path`` (``[]`` if absent). Raises ValueError naming ``path`` if it is not a records file."""
    try:
        rows = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"corrupt claims file {path}: {exc}") from exc
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ValueError(f"corrupt claims file {path}: expected a JSON list of records")
    return rows


@contextlib.contextmanager
def _locked(path: Path):
    """Hold an exclusive ``flock`` on ``<path>.lock``: one read-modify-write of ``path`` at a time,
    across processes (the lock is released by the kernel if a holder dies)."""
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _update(path: Path, change) -> None:
    """Replace the records of ``path`` by ``change(records)`` under the lock, atomically (temporary file,
    fsync, rename): concurrent writers never lose or interleave records, and a reader never sees half a
    file. A corrupt file is moved aside to ``<path>.corrupt`` with a warning naming both paths. A file
    that cannot be written raises :class:`ClaimsDirError` naming it."""
    try:
        _update_locked(path, change)
    except ClaimsDirError:
        raise
    except OSError as exc:
        raise not_writable(exc, path, "the claims file", "REPALIGN_CLAIMS_DIR", ClaimsDirError) from exc


def _update_locked(path: Path, change) -> None:
    with _locked(path):
        try:
            rows = _read_rows(path)
        except ValueError as exc:
            aside = path.with_name(path.name + ".corrupt")
            os.replace(path, aside)
            warnings.warn(f"{exc}; moved it to {aside} and started the chapter's records afresh",
                          CorruptClaimsWarning, stacklevel=3)
            rows = []
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(change(rows), indent=1))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def load(directory: str | Path | None = None) -> list[Claim]:
    """All stored records, sorted by chapter, then in the order they were last written.

    A chapter file that cannot be parsed is skipped with a :class:`CorruptClaimsWarning` naming it;
    the other chapters still load.
    """
    directory = claims_dir() if directory is None else Path(directory)
    out: list[Claim] = []
    for _, rows in _readable(directory, "*.json"):
        out.extend(Claim(**row) for row in rows)
    return out


def scorecard_markdown(records: list[Claim], *, compact: bool = False,
                       incomplete: dict[str, str] | None = None) -> str:
    """A Markdown table of records (what the scorecard page shows).

    ``compact=True`` drops the chapter and profile columns (for a chapter's own summary).
    ``incomplete`` (from :func:`incomplete`) marks the chapters whose last run did not finish, and
    their records older than that run as "(previous run)".
    """
    incomplete = incomplete or {}
    if not records:
        return "*No checks have been recorded yet: execute the chapters first.*"
    head = ["chapter", "claim", "paper", "measured", "tolerance", "verdict", "profile"]
    if compact:
        head = head[1:-1]
    rows = []
    for r in records:
        tol = {
            "<=": lambda: f"≤ {r.tolerance:.3g}",
            ">=": lambda: f"≥ {r.tolerance:.3g}",
            "close": lambda: f"{r.expected:.4g} ± {r.tolerance:.3g}",
            "rel": lambda: f"{r.expected:.4g} ± {100 * r.tolerance:.3g} %",
        }[r.relation]()
        verdict = "pass" if r.verdict == "pass" else "**FAIL**"
        chapter = r.chapter
        if r.chapter in incomplete:
            chapter += " (**incomplete run**)"
            if r.time < incomplete[r.chapter]:
                verdict += " (previous run)"
        cells = [chapter, r.claim, r.paper, f"{r.measured:.4g}", tol, verdict, r.profile]
        rows.append(cells[1:-1] if compact else cells)
    return markdown_table(head, rows)
