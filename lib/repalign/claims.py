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

The scorecard puts the profiles side by side (:func:`side_by_side`, :func:`comparison_markdown`,
:func:`totals_markdown`): one row per claim, "not run" where a profile has no record of it. A check
prints, under its own verdict, the other profile's stored record of the same claim, if there is one.

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
from .profiles import PROFILES
from .tables import markdown_table

__all__ = ["Claim", "ClaimFailed", "ClaimsDirError", "RELATIONS", "Row", "check", "for_chapter", "finish_chapter",
           "incomplete", "claims_dir", "load", "scorecard_markdown", "side_by_side", "totals", "comparison_markdown",
           "totals_markdown"]

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

    def tolerance_text(self) -> str:
        """The tolerance as the scorecard shows it: ``≤ 0.1``, ``≥ 0.5``, ``0.703 ± 0.01``, ``100 ± 5 %``."""
        return {
            "<=": lambda: f"≤ {self.tolerance:.3g}",
            ">=": lambda: f"≥ {self.tolerance:.3g}",
            "close": lambda: f"{self.expected:.4g} ± {self.tolerance:.3g}",
            "rel": lambda: f"{self.expected:.4g} ± {100 * self.tolerance:.3g} %",
        }[self.relation]()

    def short_revision(self) -> str:
        """The commit hash of :attr:`revision` (``git describe`` output), with ``-dirty`` if it was."""
        match = re.fullmatch(r"(?:.*-g)?([0-9a-f]{4,40})(-dirty)?", self.revision)
        return self.revision if match is None else match[1] + (match[2] or "")

    def recorded_line(self) -> str:
        """The line a check prints for another profile's stored record of the same claim."""
        return (f"       {self.profile} profile (rev {self.short_revision()}, {self.time[:10]}): "
                f"{self.measured:.4g} — {self.verdict}")


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
    before = _store(record)
    if not quiet:
        print(record.line())
        for other in _others(before, record):
            print(other.recorded_line())
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


def _store(record: Claim) -> list[dict]:
    """Store ``record`` in its chapter's file, replacing its profile's previous record of the claim;
    return the file's records as they were before (read under the lock anyway, so the check can show
    the other profiles' records without reading the file again)."""
    key = (record.claim, record.profile)
    before: list[dict] = []

    def change(rows: list[dict]) -> list[dict]:
        before.extend(rows)
        return [r for r in rows if (r.get("claim"), r.get("profile")) != key] + [asdict(record)]

    _update(_directory() / f"{record.chapter}.json", change)
    return before


def _others(rows: list[dict], record: Claim) -> list[Claim]:
    """The records among ``rows`` of ``record``'s claim under the other profiles; a row that is not a
    valid record is left out (the scorecard's loader warns about a broken file once; a check does not)."""
    out = []
    for row in rows:
        if row.get("claim") != record.claim or row.get("profile") == record.profile:
            continue
        try:
            other = Claim(**row)
        except TypeError:  # missing or unknown fields
            continue
        if (isinstance(other.measured, int | float) and isinstance(other.time, str)
                and isinstance(other.revision, str) and isinstance(other.profile, str)):
            out.append(other)
    return out


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
        tol = r.tolerance_text()
        verdict = "pass" if r.verdict == "pass" else "**FAIL**"
        chapter = r.chapter
        if r.chapter in incomplete:
            chapter += " (**incomplete run**)"
            if r.time < incomplete[r.chapter]:
                verdict += " (previous run)"
        cells = [chapter, r.claim, r.paper, f"{r.measured:.4g}", tol, verdict, r.profile]
        rows.append(cells[1:-1] if compact else cells)
    return markdown_table(head, rows)


#: What the scorecard shows for a profile that has no record of a claim.
NOT_RUN = "not run"


@dataclass(frozen=True)
class Row:
    """One claim of one chapter on the side-by-side scorecard: its record under each profile that has one."""

    chapter: str
    claim: str
    records: dict[str, Claim]

    def verdict(self, profile: str) -> str:
        """``"pass"``, ``"fail"`` or :data:`NOT_RUN` under ``profile``."""
        record = self.records.get(profile)
        return NOT_RUN if record is None else record.verdict

    @property
    def disagrees(self) -> bool:
        """True if the claim passes under one profile and fails under another."""
        return {"pass", "fail"} <= {r.verdict for r in self.records.values()}


def side_by_side(records: list[Claim], *, profile_names: tuple[str, ...] = PROFILES) -> list[Row]:
    """One :class:`Row` per (chapter, claim) recorded under any of ``profile_names``, a claim recorded under
    only one profile included. Chapters in the order of ``records`` (:func:`load` sorts them); within a
    chapter, the first profile's claims in the order it checked them, then the claims only the later
    profiles have."""
    by_chapter: dict[str, dict[str, dict[str, Claim]]] = {}
    for profile in profile_names:
        for r in records:
            if r.profile == profile:
                by_chapter.setdefault(r.chapter, {}).setdefault(r.claim, {})[profile] = r
    order = list(dict.fromkeys(r.chapter for r in records if r.chapter in by_chapter))
    return [Row(chapter, claim, found) for chapter in order for claim, found in by_chapter[chapter].items()]


@dataclass(frozen=True)
class Totals:
    """Counts of a side-by-side scorecard: ``counts[profile]`` holds ``"pass"``, ``"fail"`` and
    :data:`NOT_RUN`; ``disagreements`` the rows that pass under one profile and fail under another."""

    counts: dict[str, dict[str, int]]
    disagreements: list[Row]


def totals(rows: list[Row], *, profile_names: tuple[str, ...] = PROFILES) -> Totals:
    """Passed / failed / not run per profile over ``rows``, and the rows on which the profiles disagree."""
    counts = {p: {"pass": 0, "fail": 0, NOT_RUN: 0} for p in profile_names}
    for row in rows:
        for p in profile_names:
            counts[p][row.verdict(p)] += 1
    return Totals(counts, [row for row in rows if row.disagrees])


def _how_to_run(profile: str) -> str:
    """How a reader gets ``profile``'s records of a chapter (``<chapter>`` stands for its file stem)."""
    if profile == "paper":
        return ("`BOOK_PROFILE=paper REPALIGN_STORE_ONLY=1 python -m pytest book/<chapter>.md` runs a chapter "
                "from its published paper-profile results, once they are published; "
                "`python -m repalign.campaign run --profile paper --chapter <chapter>` computes them")
    return f"`BOOK_PROFILE={profile} python -m pytest book/<chapter>.md` runs a chapter"


def _one(values: dict[str, str]) -> str:
    """One cell for a text the profiles' records share; ``quick: a; paper: b`` where they differ."""
    distinct = set(values.values())
    if len(distinct) == 1:
        return distinct.pop()
    return "; ".join(f"{p}: {v}" for p, v in values.items())


def comparison_markdown(rows: list[Row], *, profile_names: tuple[str, ...] = PROFILES,
                        incomplete: dict[str, dict[str, str]] | None = None) -> str:
    """The side-by-side scorecard: per claim the paper's value, the tolerance, and under each profile
    the measured value, the verdict (:data:`NOT_RUN` where that profile has no record) and the
    revision it came from; under the table, how to run what was not run.

    ``incomplete`` maps a profile to :func:`incomplete` of that profile: a chapter whose last run under
    it did not finish is marked, and its records older than that run are marked "(previous run)".
    """
    incomplete = incomplete or {}
    if not rows:
        return "*No checks have been recorded yet: execute the chapters first.*"
    head = ["chapter", "claim", "paper's value", "tolerance"]
    for p in profile_names:
        head += [f"{p} profile", f"{p}-profile verdict"]
    head.append(f"revision ({' / '.join(profile_names)})")
    table, missing = [], {p: {} for p in profile_names}
    for row in rows:
        chapter = row.chapter + "".join(f" (**incomplete {p} run**)" for p in profile_names
                                        if row.chapter in incomplete.get(p, {}))
        cells = [chapter, row.claim, _one({p: r.paper for p, r in row.records.items()}),
                 _one({p: r.tolerance_text() for p, r in row.records.items()})]
        for p in profile_names:
            r = row.records.get(p)
            if r is None:
                missing[p][row.chapter] = missing[p].get(row.chapter, 0) + 1
                cells += [NOT_RUN, NOT_RUN]
                continue
            started = incomplete.get(p, {}).get(row.chapter)
            cells += [f"{r.measured:.4g}" + (" (previous run)" if started and r.time < started else ""),
                      "pass" if r.verdict == "pass" else "**FAIL**"]
        cells.append(" / ".join(row.records[p].short_revision() if p in row.records else "-" for p in profile_names))
        table.append(cells)
    notes = []
    for p in profile_names:
        if missing[p]:
            listed = ", ".join(f"{c} ({n} check{'s' * (n != 1)})" for c, n in missing[p].items())
            notes.append(f"Not run under the {p} profile: {listed}. {_how_to_run(p)}.")
    return markdown_table(head, table, note="\n\n".join(notes) or None)


def _count(n: int, what: str = "check") -> str:
    return f"{n} {what}{'s' * (n != 1)}"


def totals_markdown(rows: list[Row], *, profile_names: tuple[str, ...] = PROFILES,
                    current: str | None = None) -> str:
    """The scorecard's totals in sentences generated from the counts: per profile passed, failed and
    not run, where that profile's records come from (``current``, default
    :func:`repalign.profiles.current`, is the profile this build ran), and every claim on which the
    profiles disagree."""
    current = profiles.current() if current is None else current
    if not rows:
        return "*No checks have been recorded yet: execute the chapters first.*"
    t = totals(rows, profile_names=profile_names)
    lines = [f"The scorecard lists {_count(len(rows))}.\n"]
    for p in profile_names:
        c = t.counts[p]
        recorded = c["pass"] + c["fail"]
        source = ("run by this build" if p == current
                  else "recorded when the chapters last ran under it, not by this build")
        revs = sorted({r.records[p].short_revision() for r in rows if p in r.records})
        if recorded == 0:
            lines.append(f"- **{p} profile** ({source}): no check has been recorded yet.")
            continue
        lines.append(f"- **{p} profile** ({source}; revision{'s' * (len(revs) != 1)} {', '.join(revs)}): "
                     f"{c['pass']} pass, {c['fail']} fail, {c[NOT_RUN]} not run.")
    both = sum(all(p in r.records for p in profile_names) for r in rows)
    if len(profile_names) > 1:
        if not t.disagreements:
            lines.append(f"\nOf the {_count(both)} recorded under every profile, none passes under one and "
                         "fails under another." if both else "\nNo check has been recorded under every profile.")
        else:
            n = len(t.disagreements)
            lines.append(f"\nOf the {_count(both)} recorded under every profile, {n} pass{'es' * (n == 1)} "
                         f"under one and fail{'s' * (n == 1)} under another:")
            for r in t.disagreements:
                verdicts = ", ".join(f"{p} {r.records[p].measured:.4g} ({r.verdict(p)})" for p in profile_names)
                lines.append(f"- {r.chapter}: {r.claim}: {verdicts}")
    return "\n".join(lines)

