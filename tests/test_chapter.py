"""repalign.chapter: the opening and closing cell of every chapter."""

import pytest
import torch

from repalign import chapter, claims


@pytest.fixture(autouse=True)
def _claims_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("REPALIGN_CLAIMS_DIR", str(tmp_path))


def test_start_loads_settings_and_records_checks(capsys):
    before = torch.get_num_threads()
    page = chapter.start("99_test", "universal", threads=1)
    try:
        out = capsys.readouterr().out
        assert page.settings["profile"] in out and "torch threads: 1" in out
        assert torch.get_num_threads() == 1 and page.threads == 1
        page.check("a claim", measured=0.05, tolerance=0.1, relation="<=")
        assert [c.claim for c in claims.load() if c.chapter == "99_test"] == ["a claim"]
        assert "a claim" in page.scorecard()
        assert page.elapsed() >= 0
        page.finish()
        assert "chapter run time" in capsys.readouterr().out
    finally:
        torch.set_num_threads(before)


def test_threads_none_leaves_torch_alone_and_quiet_prints_nothing(capsys):
    before = torch.get_num_threads()
    page = chapter.start("99_test", "derivation", threads=None, quiet=True)
    assert capsys.readouterr().out == ""
    assert page.threads is None and torch.get_num_threads() == before


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(threads=0), ValueError, "`threads` must be >= 1"),
    (dict(threads=1.5), TypeError, "`threads`"),
    (dict(threads=True), TypeError, "`threads`"),
    (dict(quiet="no"), TypeError, "`quiet`"),
    (dict(flush_denormal=1), TypeError, "`flush_denormal`"),
    (dict(threads=None, flush_denormal=True), ValueError, "needs torch"),
])
def test_bad_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        chapter.start("99_test", "universal", **kwargs)


def test_flush_denormal_holds_from_start_to_finish(capsys):
    from repalign import numerics

    before = torch.get_num_threads()
    assert not numerics.denormals_flushed()
    page = chapter.start("99_test", "universal", threads=2, flush_denormal=True)
    try:
        assert "subnormals flushed to zero" in capsys.readouterr().out
        assert numerics.denormals_flushed()
        page.finish()
        assert not numerics.denormals_flushed()  # restored on every thread
    finally:
        torch.set_num_threads(before)


def test_finish_closes_the_run_of_checks(capsys):
    page = chapter.start("99_test", "derivation", threads=None, quiet=True)
    profile = page.settings["profile"]
    page.check("a claim", measured=0.05, tolerance=0.1, relation="<=", quiet=True)
    assert claims.incomplete(profile) == {"99_test": page.check.run_started}  # interrupted here: marked
    page.finish()
    assert claims.incomplete(profile) == {}


@pytest.mark.parametrize("bad", ["", None, "../x"])
def test_bad_name_is_named_as_the_callers_argument(bad):
    with pytest.raises(ValueError, match="`name` \\(the chapter's file stem\\)"):
        chapter.start(bad, "derivation", threads=None, quiet=True)
