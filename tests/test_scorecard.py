"""The side-by-side scorecard of both profiles: rows, totals, disagreements, and the line a check prints
for the other profile's stored record."""

import json

import pytest
from markdown_it import MarkdownIt

from repalign import claims


@pytest.fixture(autouse=True)
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("REPALIGN_CLAIMS_DIR", str(tmp_path))
    monkeypatch.setenv("BOOK_PROFILE", "quick")
    return tmp_path


def record(claim, measured, profile, chapter="02_x", tolerance=1.0, **kwargs):
    return claims.check(chapter, claim, measured, tolerance=tolerance, profile=profile, strict=False, quiet=True,
                        **kwargs)


def body_rows(table: str) -> dict[str, list[str]]:
    """``{claim: cells}`` of a rendered table (via a Markdown parser, so escaping is tested too)."""
    html = MarkdownIt("commonmark").enable("table").render(table)
    out = {}
    for tr in html.split("<tbody>")[1].split("</tbody>")[0].split("<tr>")[1:]:
        cells = [c.split("</td>")[0] for c in tr.split("<td>")[1:]]
        out[cells[1]] = cells
    return out


def test_rows_for_both_one_and_neither_profile(store):
    record("both", 0.5, "quick")
    record("both", 0.7, "paper")
    record("quick only", 0.2, "quick")
    record("paper only", 3.0, "paper")  # fails
    rows = claims.side_by_side(claims.load())
    assert [(r.chapter, r.claim) for r in rows] == [("02_x", "both"), ("02_x", "quick only"), ("02_x", "paper only")]
    by = {r.claim: r for r in rows}
    assert by["both"].verdict("quick") == "pass" and by["both"].verdict("paper") == "pass"
    assert by["quick only"].verdict("paper") == claims.NOT_RUN
    assert by["paper only"].verdict("quick") == claims.NOT_RUN and by["paper only"].verdict("paper") == "fail"
    table = claims.comparison_markdown(rows)
    head = table.splitlines()[0]
    assert head == ("| chapter | claim | paper's value | tolerance | quick profile | quick-profile verdict | "
                    "paper profile | paper-profile verdict | revision (quick / paper) |")
    cells = body_rows(table)
    assert cells["both"][4:8] == ["0.5", "pass", "0.7", "pass"]
    assert cells["quick only"][6:8] == ["not run", "not run"]
    assert cells["paper only"][4:8] == ["not run", "not run", "3", "<strong>FAIL</strong>"]
    assert cells["quick only"][8].endswith(" / -") and cells["paper only"][8].startswith("- / ")
    assert all(len(c) == 9 for c in cells.values())
    # how to get what was not run, named per profile and chapter
    assert "Not run under the paper profile: 02_x (1 check)." in table
    assert "BOOK_PROFILE=paper REPALIGN_STORE_ONLY=1 python -m pytest book/<chapter>.md" in table
    assert "--profile paper --chapter" in table
    assert "Not run under the quick profile: 02_x (1 check)." in table
    assert "No checks" in claims.comparison_markdown([])


def test_profiles_that_differ_in_paper_value_or_tolerance_show_both(store):
    record("r", 0.70, "quick", relation="close", expected=0.70, tolerance=0.05)
    record("r", 0.70, "paper", relation="close", expected=0.703, tolerance=0.01)
    cells = body_rows(claims.comparison_markdown(claims.side_by_side(claims.load())))["r"]
    assert cells[2] == "quick: 0.7; paper: 0.703"
    assert cells[3] == "quick: 0.7 ± 0.05; paper: 0.703 ± 0.01"


def test_totals_count_each_profile_and_list_disagreements(store):
    record("agree", 0.5, "quick")
    record("agree", 0.6, "paper")
    record("flips", 0.5, "quick")          # pass under quick ...
    record("flips", 2.5, "paper")          # ... fail under paper
    record("both fail", 5.0, "quick")
    record("both fail", 6.0, "paper")
    record("quick only", 9.0, "quick")     # a failure under quick alone is no disagreement
    record("other ch", 0.1, "paper", chapter="03_y")
    rows = claims.side_by_side(claims.load())
    t = claims.totals(rows)
    assert t.counts["quick"] == {"pass": 2, "fail": 2, "not run": 1}
    assert t.counts["paper"] == {"pass": 2, "fail": 2, "not run": 1}
    assert [(r.chapter, r.claim) for r in t.disagreements] == [("02_x", "flips")]
    text = claims.totals_markdown(rows, current="quick")
    assert "The scorecard lists 5 checks." in text
    assert "**quick profile** (run by this build;" in text and "): 2 pass, 2 fail, 1 not run." in text
    assert "**paper profile** (recorded when the chapters last ran under it, not by this build;" in text
    assert "Of the 3 checks recorded under every profile, 1 passes under one and fails under another:" in text
    assert "- 02_x: flips: quick 0.5 (pass), paper 2.5 (fail)" in text
    assert "run by this build" in claims.totals_markdown(rows, current="paper").split("**paper profile**")[1]


def test_totals_say_when_a_profile_has_nothing_and_nothing_disagrees(store):
    record("a", 0.5, "quick")
    rows = claims.side_by_side(claims.load())
    text = claims.totals_markdown(rows, current="quick")
    assert "**paper profile** (recorded when the chapters last ran under it, not by this build): " \
           "no check has been recorded yet." in text
    assert "No check has been recorded under every profile." in text and "disagree" not in text
    record("a", 0.6, "paper")
    text = claims.totals_markdown(claims.side_by_side(claims.load()), current="quick")
    assert "Of the 1 check recorded under every profile, none passes under one and fails under another." in text


def test_incomplete_runs_are_flagged_per_profile(store):
    first = claims.for_chapter("05_x", profile="paper")
    for name in ("a", "b"):
        first(name, 0.1, tolerance=1.0, quiet=True)
    claims.finish_chapter("05_x", started=first.run_started, profile="paper")
    second = claims.for_chapter("05_x", profile="paper")
    second("a", 0.2, tolerance=1.0, quiet=True)  # interrupted here
    record("a", 0.3, "quick", chapter="05_x")
    record("b", 0.4, "quick", chapter="05_x")
    unfinished = {p: claims.incomplete(p) for p in claims.PROFILES}
    assert unfinished == {"quick": {}, "paper": {"05_x": second.run_started}}
    cells = body_rows(claims.comparison_markdown(claims.side_by_side(claims.load()), incomplete=unfinished))
    assert cells["a"][0] == "05_x (<strong>incomplete paper run</strong>)"
    assert cells["a"][6] == "0.2" and cells["b"][6] == "0.1 (previous run)"
    assert cells["b"][4] == "0.4"  # the quick profile's run finished: nothing marked
    assert "incomplete" not in claims.comparison_markdown(claims.side_by_side(claims.load()))


def test_check_prints_the_other_profiles_record(store, capsys):
    record("shown", 0.504, "paper")
    record("not shown", 0.1, "paper", chapter="other")  # another chapter's record of another claim
    capsys.readouterr()
    claims.check("02_x", "shown", 0.3, tolerance=1.0)
    out = capsys.readouterr().out.splitlines()
    (paper,) = claims.load(store)[:1]
    assert out[0] == "[PASS] shown"
    assert out[2] == f"       paper profile (rev {paper.short_revision()}, {paper.time[:10]}): 0.504 — pass"
    assert len(out) == 3
    claims.check("02_x", "new claim", 0.3, tolerance=1.0)  # no paper record of it: no extra line
    assert len(capsys.readouterr().out.splitlines()) == 2
    claims.check("other", "fresh", 0.3, tolerance=1.0)
    assert len(capsys.readouterr().out.splitlines()) == 2
    claims.check("02_x", "shown", 0.3, tolerance=1.0, quiet=True)
    assert capsys.readouterr().out == ""


def test_check_skips_a_malformed_other_profile_record_silently(store, capsys, recwarn):
    rows = [{"claim": "c", "profile": "paper", "measured": "abc"},      # not a record
            {"claim": "c", "profile": "paper", "chapter": "02_x", "paper": "-", "measured": "nan?",
             "expected": None, "tolerance": 1.0, "relation": "<=", "verdict": "pass", "revision": "x",
             "time": "2026"}]                                            # a record whose value is not a number
    (store / "02_x.json").write_text(json.dumps(rows))
    claims.check("02_x", "c", 0.3, tolerance=1.0)
    assert capsys.readouterr().out.splitlines() == ["[PASS] c", "       0.3 <= 1   (paper: -; profile: quick)"]
    assert not recwarn.list


def test_check_with_a_missing_or_corrupt_other_profile_file(store, capsys):
    claims.check("02_x", "c", 0.3, tolerance=1.0)  # no file yet
    assert len(capsys.readouterr().out.splitlines()) == 2
    (store / "03_y.json").write_text('[{"claim": "c", "profile": "paper", "meas')
    with pytest.warns(claims.CorruptClaimsWarning, match="03_y.json") as caught:
        claims.check("03_y", "c", 0.3, tolerance=1.0)
        claims.check("03_y", "d", 0.3, tolerance=1.0)
    assert len(caught) == 1  # warned once, when the file was moved aside, not per check
    assert len(capsys.readouterr().out.splitlines()) == 4


def test_short_revision():
    make = lambda rev: claims.Claim("c", "x", "-", 0.0, None, 1.0, "<=", "pass", "quick", rev, "t")  # noqa: E731
    assert make("6ef4ebc").short_revision() == "6ef4ebc"
    assert make("6ef4ebc-dirty").short_revision() == "6ef4ebc-dirty"
    assert make("v1.0-12-g6ef4ebc-dirty").short_revision() == "6ef4ebc-dirty"
    assert make("unknown").short_revision() == "unknown"
