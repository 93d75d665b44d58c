"""profiles: BOOK_PROFILE selects the settings; anything else is a clear error."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from repalign import profiles


def test_default_is_quick(monkeypatch):
    monkeypatch.delenv("BOOK_PROFILE", raising=False)
    assert profiles.current() == "quick"
    monkeypatch.setenv("BOOK_PROFILE", "  ")
    assert profiles.current() == "quick"


@pytest.mark.parametrize("name", profiles.PROFILES)
def test_env_selects_profile(monkeypatch, name):
    monkeypatch.setenv("BOOK_PROFILE", name)
    assert profiles.current() == name
    assert profiles.settings("derivation")["profile"] == name


@pytest.mark.parametrize("bad", ["fast", "Paper", "full", "ci"])
def test_unknown_profile_is_an_error(monkeypatch, bad):
    monkeypatch.setenv("BOOK_PROFILE", bad)
    with pytest.raises(ValueError, match="BOOK_PROFILE must be one of quick, paper"):
        profiles.current()
    with pytest.raises(ValueError, match="`profile` must be one of"):
        profiles.settings("derivation", bad)


def test_unknown_section_is_an_error():
    with pytest.raises(ValueError, match="`section` must be one of"):
        profiles.settings("no-such-chapter", "quick")


def test_settings_are_read_only_and_profiles_share_keys():
    quick, paper = profiles.settings("derivation", "quick"), profiles.settings("derivation", "paper")
    with pytest.raises(TypeError):
        quick["seed"] = 1  # type: ignore[index]
    assert set(quick) == set(paper)
    # the paper profile checks at least as many cases as the quick one
    assert paper["n_fixed_point_cases"] >= quick["n_fixed_point_cases"]
    assert paper["n_monte_carlo"] >= quick["n_monte_carlo"]


def test_two_point_distances_are_consistent():
    tp = profiles.TWO_POINT
    assert tp["dx_sq"] == pytest.approx((tp["x2"] - tp["x1"]) ** 2)
    assert tp["dy_target_sq"] == pytest.approx((tp["y2"] - tp["y1"]) ** 2)


def test_table1_has_every_row_of_the_paper():
    t = profiles.TABLE1
    assert len(t) == 15
    assert (t["default"].gain, t["default"].lr, t["default"].width, t["default"].hidden_layers) == (1.0, 0.005, 500, 20)
    assert t["elu"].lr == 0.00045 and t["swish"].gain == 1.7 and t["narrow"].width == 50
    assert {r.variant for r in t.values()} == {"mlp", "conv", "skip", "dropout"}
    assert all(r.epochs == 6000 for r in t.values())


def test_table2_has_every_row_of_the_paper():
    t = profiles.TABLE2
    assert len(t) == 8
    assert (t["xor_high"].gain, t["xor_high"].lr, t["xor_high"].epochs) == (2.0, 3e-9, 1000)
    assert (t["xor_2_layers"].hidden_layers, t["xor_2_layers"].epochs, t["xor_2_layers"].gain) == (1, 40000, 0.0015)
    assert (t["mnist"].activation, t["mnist"].width, t["mnist"].hidden_layers, t["mnist"].lr) == ("leaky_relu", 100, 4, 0.002)
    assert {r.activation for r in t.values() if r.name.startswith("blobs")} == {"tanh"}


ROOT = Path(__file__).resolve().parents[1]


def _pytest_header(env_profile: str | None, *options: str) -> subprocess.CompletedProcess:
    """`python -m pytest --collect-only` of this file with `BOOK_PROFILE` set (or unset): its header."""
    env = {k: v for k, v in os.environ.items() if k != "BOOK_PROFILE"}
    if env_profile is not None:
        env["BOOK_PROFILE"] = env_profile
    return subprocess.run([sys.executable, "-m", "pytest", "--collect-only", *options, "tests/test_profiles.py"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(("env_profile", "options", "header"), [
    ("paper", (), "book profile: paper (from $BOOK_PROFILE)"),  # was silently replaced by quick
    (None, (), "book profile: quick (from default)"),
    (None, ("--book-profile", "paper"), "book profile: paper (from --book-profile)"),
    ("paper", ("--book-profile", "paper"), "book profile: paper (from --book-profile)"),
])
def test_pytest_honours_an_explicit_book_profile(env_profile, options, header):
    run = _pytest_header(env_profile, *options)
    assert run.returncode == 0, run.stdout + run.stderr
    assert header in run.stdout


@pytest.mark.parametrize(("env_profile", "options", "message"), [
    ("paper", ("--book-profile", "quick"), "--book-profile quick contradicts BOOK_PROFILE=paper"),
    ("PAPER", (), "BOOK_PROFILE must be one of quick, paper; got 'PAPER'"),
])
def test_pytest_stops_on_a_contradicting_or_unknown_profile(env_profile, options, message):
    run = _pytest_header(env_profile, *options)
    assert run.returncode == pytest.ExitCode.USAGE_ERROR
    assert message in run.stderr
