"""The book's Sphinx extension (book/_ext/paper_numbers.py): paper equation numbers and alt text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

EXT = Path(__file__).resolve().parents[1] / "book" / "_ext"


def _build(tmp_path: Path, pages: dict[str, str]) -> tuple[Path, str]:
    sphinx = pytest.importorskip("sphinx.application")
    src = tmp_path / "src"
    src.mkdir()
    (src / "conf.py").write_text(
        f"import sys; sys.path.insert(0, {str(EXT)!r})\n"
        "extensions = ['myst_parser', 'paper_numbers']\n"
        "myst_enable_extensions = ['dollarmath', 'amsmath', 'substitution']\n"
        "math_numfig = False\n")
    toc = "\n".join(pages)
    (src / "index.md").write_text(f"# Index\n\n```{{toctree}}\n{toc}\n```\n")
    for name, text in pages.items():
        (src / f"{name}.md").write_text(text)
    out = tmp_path / "out"
    warnings = tmp_path / "warnings.txt"
    with warnings.open("w") as stream:
        app = sphinx.Sphinx(str(src), str(src), str(out), str(tmp_path / "doctrees"), "html",
                            status=None, warning=stream, freshenv=True)
        app.build()
    return out, warnings.read_text()


def test_equations_carry_the_paper_number_on_every_page(tmp_path):
    out, warnings = _build(tmp_path, {
        "a": "# A\n\n```{math}\n:label: eq-3d-system\n\\dot z = f(z) \\tag{7}\n```\n\n"
             "$$ x = 1 \\tag{50} $$ (eq-weighting)\n\nSee {eq}`eq-3d-system`.\n",
        "b": "# B\n\nThe paper's eq. {eq}`eq-3d-system` and {eq}`eq-weighting`.\n"})
    a = (out / "a.html").read_text()
    b = (out / "b.html").read_text()
    assert re.findall(r'class="eqno">\((\d+)\)', a) == ["7", "50"]
    assert "\\tag" not in a  # shown once, by Sphinx, not again by MathJax
    assert re.search(r'href="a.html#equation-eq-3d-system">\(7\)</a>', b)
    assert re.search(r'href="a.html#equation-eq-weighting">\(50\)</a>', b)
    assert "paper_numbers" not in warnings, warnings


def test_labelled_equation_without_tag_is_a_warning(tmp_path):
    _, warnings = _build(tmp_path, {"a": "# A\n\n```{math}\n:label: eq-mine\nx = 1\n```\n"})
    assert "eq-mine" in warnings and "\\tag" in warnings


def test_build_facts_are_substitutions(tmp_path, monkeypatch):
    monkeypatch.setenv("BOOK_PROFILE", "paper")
    out, _ = _build(tmp_path, {"a": "# A\n\nProfile {{ build_profile }}.\n"})
    assert "Profile paper." in (out / "a.html").read_text()


def test_figures_link_to_full_size_and_take_alt_text_from_caption(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img_dir = tmp_path / "src"
    img_dir.mkdir()
    for name, inches in (("wide", 10.0), ("small", 3.0)):
        fig = plt.figure(figsize=(inches, 2.0), dpi=100)
        fig.savefig(img_dir / f"{name}.png", dpi=100)
        plt.close(fig)
    import shutil

    pages = {"a": "# A\n\n```{figure} wide.png\n:name: fig-wide\n\nA wide figure.\n```\n\n"
                  "```{figure} small.png\n\nA small one.\n```\n"}
    # _build makes src itself: move the images aside and back in
    shutil.move(str(img_dir), str(tmp_path / "imgs"))
    sphinx = pytest.importorskip("sphinx.application")
    src = tmp_path / "src"
    src.mkdir()
    for f in (tmp_path / "imgs").iterdir():
        shutil.copy(f, src / f.name)
    (src / "conf.py").write_text(f"import sys; sys.path.insert(0, {str(EXT)!r})\n"
                                 "extensions = ['myst_parser', 'paper_numbers']\nmath_numfig = False\n")
    (src / "index.md").write_text("# Index\n\n```{toctree}\na\n```\n")
    (src / "a.md").write_text(pages["a"])
    app = sphinx.Sphinx(str(src), str(src), str(tmp_path / "out"), str(tmp_path / "dt"), "html",
                        status=None, warning=None, freshenv=True)
    app.build()
    html = (tmp_path / "out" / "a.html").read_text()
    imgs = re.findall(r"<a[^>]*href=\"(_images/\w+\.png)\"[^>]*><img[^>]*>", html)
    assert sorted(imgs) == ["_images/small.png", "_images/wide.png"], html
    assert re.search(r'<img alt="A wide figure\."[^>]*width: 100%', html)
    assert re.search(r'<img alt="A small one\."[^>]*width: 300px', html)
