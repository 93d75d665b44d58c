"""Test harness: every chapter of the book runs as a test, through nbval.

Before collection, each MyST notebook ``book/*.md`` (a file whose front matter has a ``kernelspec``)
is converted with jupytext to ``book/*.ipynb`` next to its source; nbval (``--nbval-lax``, configured
in pyproject.toml) then executes it in the current environment. The chapters (and any unit test
that reads :func:`repalign.profiles.current`) run under the profile given by ``--book-profile``, else
by an explicit ``BOOK_PROFILE`` in the environment, else ``quick``; the pytest header says which and
where it came from. An option that contradicts ``BOOK_PROFILE``, or a ``BOOK_PROFILE`` that names no
profile, stops the run before collection. A run that asks for the book but collects no chapter, or
misses one, fails. The generated notebooks are removed afterwards.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
BOOK = ROOT / "book"
_GENERATED: list[Path] = []


def is_chapter(path: Path) -> bool:
    """A MyST notebook: YAML front matter that declares a kernelspec."""
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---"):
        return False
    front = text.split("---", 2)[1]
    return "kernelspec:" in front


def chapters() -> list[Path]:
    return sorted(p for p in BOOK.glob("*.md") if is_chapter(p))


def pytest_addoption(parser):
    parser.addoption("--book-profile", default=None, choices=("quick", "paper"),
                     help="BOOK_PROFILE under which the chapters run (default: $BOOK_PROFILE, else quick)")


def book_profile(option: str | None, environ: str | None) -> tuple[str, str]:
    """The profile this run uses and where it came from, from ``--book-profile`` and ``$BOOK_PROFILE``.

    An explicit ``BOOK_PROFILE`` is honoured (it used to be overwritten with ``quick``); an option that
    contradicts it is a usage error rather than a silent choice of one of the two.
    """
    from repalign import profiles

    environ = (environ or "").strip() or None
    if environ is not None:
        try:
            profiles._check(environ, f"environment variable {profiles.ENV_VAR}")
        except ValueError as err:
            raise pytest.UsageError(str(err)) from None
    if option is not None and environ is not None and option != environ:
        raise pytest.UsageError(f"--book-profile {option} contradicts {profiles.ENV_VAR}={environ}; "
                                f"give one of them, or the same profile to both")
    if option is not None:
        return option, "--book-profile"
    if environ is not None:
        return environ, f"${profiles.ENV_VAR}"
    return "quick", "default"


#: Per-cell time limit under the paper profile, whose training cells run for tens of minutes on a
#: laptop (chapter 2 trains eleven Table 1 architectures with five seeds in one cell).
PAPER_CELL_TIMEOUT = 4 * 3600


def pytest_configure(config):
    profile, source = book_profile(config.getoption("--book-profile"), os.environ.get("BOOK_PROFILE"))
    os.environ["BOOK_PROFILE"] = profile
    config._book_profile = (profile, source)
    if os.environ["BOOK_PROFILE"] == "paper" and hasattr(config.option, "nbval_cell_timeout"):
        config.option.nbval_cell_timeout = max(float(config.option.nbval_cell_timeout), PAPER_CELL_TIMEOUT)
    import jupytext

    found = chapters()
    if not found:
        raise pytest.UsageError(f"no chapter found in {BOOK}: expected MyST notebooks (*.md with a kernelspec)")
    for md in found:
        target = md.with_suffix(".ipynb")
        jupytext.write(jupytext.read(md), target)
        _GENERATED.append(target)
    # `pytest book/02_universal_dynamics.md` means the notebook made from it
    config.args[:] = [_as_notebook(arg) for arg in config.args]


def pytest_report_header(config):
    profile, source = config._book_profile
    return f"book profile: {profile} (from {source})"


def _as_notebook(arg: str) -> str:
    path, sep, rest = arg.partition("::")
    if path.endswith(".md") and Path(path).is_file() and is_chapter(Path(path)):
        return path[:-3] + ".ipynb" + sep + rest
    return arg


def pytest_unconfigure(config):
    for path in _GENERATED:
        path.unlink(missing_ok=True)


def _book_requested(config) -> list[Path]:
    """The chapters this run must execute: all of them if the book (or an ancestor) was asked for."""
    wanted: list[Path] = []
    for arg in config.args:
        path = Path(arg.split("::")[0])
        path = (Path(config.invocation_params.dir) / path).resolve()
        if path == BOOK or path in BOOK.parents:
            return [md.with_suffix(".ipynb") for md in chapters()]
        if path.parent == BOOK and path.suffix in (".ipynb", ".md"):
            wanted.append(path.with_suffix(".ipynb"))
    return wanted


#: Seconds nbval waits for each kernel message after a cell's reply. Its hard-coded 5 s failed once on
#: a loaded 2-core CI machine after chapter 2's long training cell (whose progress bars send many
#: messages), with all of the cell's work done; the wait bounds nothing about results.
NBVAL_OUTPUT_TIMEOUT = 120


def pytest_collection_modifyitems(session, config, items):
    for item in items:
        if hasattr(item, "output_timeout"):  # an nbval notebook cell
            item.output_timeout = NBVAL_OUTPUT_TIMEOUT
    wanted = _book_requested(config)
    if not wanted:
        return
    collected = {Path(str(item.path)).resolve() for item in items}
    missing = [p.name for p in wanted if p.resolve() not in collected]
    if missing:
        raise pytest.UsageError(
            f"chapters not collected: {', '.join(missing)}. Is nbval installed and `--nbval-lax` in addopts?"
        )
