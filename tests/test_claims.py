"""claims: verdicts, persistence for the scorecard, and errors on bad input."""

import json
import math

import pytest

from repalign import claims


@pytest.fixture(autouse=True)
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("REPALIGN_CLAIMS_DIR", str(tmp_path))
    monkeypatch.setenv("BOOK_PROFILE", "quick")
    return tmp_path


@pytest.mark.parametrize(
    "measured, kwargs, verdict",
    [
        (1e-9, dict(tolerance=1e-8), "pass"),
        (1e-7, dict(tolerance=1e-8), "fail"),
        (0.5, dict(tolerance=0.1, relation=">="), "pass"),
        (0.05, dict(tolerance=0.1, relation=">="), "fail"),
        (0.70, dict(tolerance=0.01, relation="close", expected=0.703), "pass"),
        (0.60, dict(tolerance=0.01, relation="close", expected=0.703), "fail"),
        (104.0, dict(tolerance=0.05, relation="rel", expected=100.0), "pass"),
        (106.0, dict(tolerance=0.05, relation="rel", expected=100.0), "fail"),
    ],
)
def test_verdicts(measured, kwargs, verdict):
    c = claims.check("ch", f"claim {measured} {kwargs}", measured, strict=False, quiet=True, **kwargs)
    assert c.verdict == verdict


def test_strict_failure_raises_after_recording(store):
    with pytest.raises(claims.ClaimFailed, match=r"\[FAIL\] identity\n.*1 > 1e-06"):
        claims.check("ch", "identity", 1.0, tolerance=1e-6, quiet=True)
    (record,) = claims.load(store)
    assert record.verdict == "fail" and record.measured == 1.0


def test_records_persist_and_rerun_replaces(store):
    claims.check("01_x", "a", 1e-9, tolerance=1e-8, paper="eq. (7)", quiet=True)
    claims.check("01_x", "b", 2.0, tolerance=1.0, relation=">=", quiet=True)
    claims.check("01_x", "a", 5e-9, tolerance=1e-8, quiet=True)  # re-run of claim a
    rows = json.loads((store / "01_x.json").read_text())
    assert [r["claim"] for r in rows] == ["b", "a"]
    assert rows[1]["measured"] == 5e-9
    assert {"chapter", "claim", "paper", "measured", "tolerance", "verdict", "profile"} <= set(rows[0])


def test_profiles_are_kept_apart(store, monkeypatch):
    claims.check("ch", "a", 1e-9, tolerance=1e-8, quiet=True)
    monkeypatch.setenv("BOOK_PROFILE", "paper")
    claims.check("ch", "a", 2e-9, tolerance=1e-8, quiet=True)
    assert sorted(r.profile for r in claims.load(store)) == ["paper", "quick"]


def test_scorecard_lists_every_record(store):
    claims.check("ch", "pipe | in name", 1e-9, tolerance=1e-8, quiet=True)
    claims.check("ch", "fails", 3.0, tolerance=1.0, strict=False, quiet=True)
    table = claims.scorecard_markdown(claims.load(store))
    lines = table.splitlines()
    assert len(lines) == 4
    assert "pipe \\| in name" in table and "**FAIL**" in lines[3]
    claims.check("ch", "near", 0.70, tolerance=0.01, relation="close", expected=0.703, quiet=True)
    assert "| 0.703 ± 0.01 |" in claims.scorecard_markdown(claims.load(store))
    compact = claims.scorecard_markdown(claims.load(store), compact=True)
    assert compact.splitlines()[0] == "| claim | paper | measured | tolerance | verdict |"
    assert "No checks" in claims.scorecard_markdown([])


def test_verdict_line_is_printed(capsys):
    claims.check("ch", "printed", 0.5, tolerance=1.0)
    out = capsys.readouterr().out
    assert out.startswith("[PASS] printed\n") and "0.5 <= 1" in out


@pytest.mark.parametrize(
    "args, kwargs, exc, match",
    [
        (("ch", "c", math.nan), dict(tolerance=1.0), ValueError, "`measured` is NaN"),
        (("ch", "c", "abc"), dict(tolerance=1.0), TypeError, "`measured` must be a real number"),
        (("ch", "c", 1.0), dict(tolerance=1.0, relation="=="), ValueError, "`relation` must be one of"),
        (("ch", "c", 1.0), dict(tolerance=1.0, relation="close"), ValueError, "needs `expected`"),
        (("ch", "c", 1.0), dict(tolerance=-1.0), ValueError, "`tolerance` must be >= 0"),
        (("", "c", 1.0), dict(tolerance=1.0), ValueError, "`chapter` must be a non-empty string"),
        (("ch", " ", 1.0), dict(tolerance=1.0), ValueError, "`claim` must be a non-empty string"),
    ],
)
def test_bad_input(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        claims.check(*args, quiet=True, **kwargs)


def test_for_chapter_forgets_stale_records_of_its_profile(store, monkeypatch):
    claims.check("ch", "renamed since", 0.1, tolerance=1.0, quiet=True)
    claims.check("other", "kept", 0.1, tolerance=1.0, quiet=True)
    monkeypatch.setenv("BOOK_PROFILE", "paper")
    claims.check("ch", "paper run", 0.1, tolerance=1.0, quiet=True)
    monkeypatch.setenv("BOOK_PROFILE", "quick")
    check = claims.for_chapter("ch")
    check("current", 0.1, tolerance=1.0, quiet=True)
    names = sorted((r.chapter, r.claim) for r in claims.load(store))
    assert ("ch", "renamed since") in names  # kept until the run finishes
    assert claims.incomplete() == {"ch": check.run_started}
    claims.finish_chapter("ch", started=check.run_started)
    names = sorted((r.chapter, r.claim) for r in claims.load(store))
    assert names == [("ch", "current"), ("ch", "paper run"), ("other", "kept")]
    assert claims.incomplete() == {}


def test_interrupted_run_keeps_the_previous_records_and_is_marked_incomplete(store):
    first = claims.for_chapter("05_x")
    for name in ("a", "b", "c"):
        first(name, 0.1, tolerance=1.0, quiet=True)
    claims.finish_chapter("05_x", started=first.run_started)
    second = claims.for_chapter("05_x")
    second("a", 0.5, tolerance=1.0, quiet=True)  # ... and the kernel dies here
    records = {r.claim: r for r in claims.load()}
    assert sorted(records) == ["a", "b", "c"] and records["a"].measured == 0.5 and records["b"].measured == 0.1
    unfinished = claims.incomplete()
    assert unfinished == {"05_x": second.run_started}
    table = claims.scorecard_markdown(list(records.values()), incomplete=unfinished)
    rows = {line.split("|")[2].strip(): line for line in table.splitlines()[2:]}
    assert "incomplete run" in rows["a"] and "previous run" not in rows["a"]
    assert "(previous run)" in rows["b"] and "(previous run)" in rows["c"]
    assert "incomplete" not in claims.scorecard_markdown(list(records.values()))
    assert claims.incomplete("paper") == {}  # per profile


def test_for_chapter_records_under_its_profile(store):
    check = claims.for_chapter("06_x", profile="paper")  # BOOK_PROFILE is quick
    assert check("c", 0.1, tolerance=1.0, quiet=True).profile == "paper"


@pytest.mark.parametrize("name", ["../escape", "a/b", "/abs", "..", ".hidden", "a\0b", "a b", "x" * 101, "a\nb",
                                  "", "  "])
def test_chapter_names_cannot_leave_the_claims_directory(store, name):
    with pytest.raises(ValueError, match="`chapter` must be"):
        claims.for_chapter(name)
    with pytest.raises(ValueError, match="`chapter` must be"):
        claims.check(name, "c", 0.1, tolerance=1.0, quiet=True)
    assert sorted(p.name for p in store.parent.iterdir() if p.name.startswith("escape")) == []
    assert list(store.iterdir()) == []


@pytest.mark.parametrize("claim", ["two\nlines", "nul\0byte", "tab\there"])
def test_claim_names_with_control_characters_are_rejected(store, claim):
    with pytest.raises(ValueError, match="`claim` must be one line without control characters"):
        claims.check("07_x", claim, 0.1, tolerance=1.0, quiet=True)


def test_corrupt_run_log_is_named_and_skipped(store):
    good = claims.for_chapter("08_good")
    (store / "09_bad.runs").write_text("{not json")
    with pytest.warns(claims.CorruptClaimsWarning, match="09_bad.runs"):
        assert claims.incomplete() == {"08_good": good.run_started}


def test_for_chapter_binds_the_chapter(store):
    check = claims.for_chapter("03_x")
    c = check("bound", 0.1, tolerance=1.0, quiet=True)
    assert c.chapter == "03_x" and (store / "03_x.json").exists()
    with pytest.raises(ValueError, match="`chapter` must be a non-empty string"):
        claims.for_chapter("")


def _write_records(directory, writer, n, barrier):
    import os

    os.environ["REPALIGN_CLAIMS_DIR"] = str(directory)
    barrier.wait()
    for k in range(n):
        claims.check("concurrent", f"writer {writer} record {k}", k, tolerance=1e9, quiet=True, profile="quick")


def test_concurrent_writers_lose_no_record(store):
    # Four real processes write 50 records each into the same chapter file at the same time.
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    writers, n = 4, 50
    barrier = ctx.Barrier(writers)
    procs = [ctx.Process(target=_write_records, args=(store, w, n, barrier)) for w in range(writers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    rows = json.loads((store / "concurrent.json").read_text())
    expected = [f"writer {w} record {k}" for w in range(writers) for k in range(n)]
    assert sorted(r["claim"] for r in rows) == sorted(expected)
    assert not list(store.glob("*.tmp")) and not list(store.glob(".*.tmp"))


def test_corrupt_chapter_file_is_named_and_skipped(store):
    claims.check("good", "kept", 0.0, tolerance=1.0, quiet=True)
    (store / "bad.json").write_text('[{"chapter": "bad", "claim": "trunc')
    with pytest.warns(claims.CorruptClaimsWarning, match="bad.json"):
        records = claims.load()
    assert [r.claim for r in records] == ["kept"]
    with pytest.warns(claims.CorruptClaimsWarning, match="bad.json"):
        claims.check("bad", "new", 0.0, tolerance=1.0, quiet=True)
    assert (store / "bad.json.corrupt").exists()
    assert sorted(r.claim for r in claims.load()) == ["kept", "new"]


def test_scorecard_cells_with_pipes_stay_one_row(store):
    """`|` in any text column (claim or paper) must not split the Markdown row into extra cells."""
    from markdown_it import MarkdownIt

    claims.check("ch", "|r - 0.703|", 0.01, tolerance=0.1, paper="Fig. 9, ||dy*||^2/8", quiet=True)
    html = MarkdownIt("commonmark").enable("table").render(claims.scorecard_markdown(claims.load(store)))
    row = html.split("<tbody>")[1].split("</tr>")[0]
    assert row.count("<td>") == 7
    assert "<td>|r - 0.703|</td>" in row and "<td>Fig. 9, ||dy*||^2/8</td>" in row
