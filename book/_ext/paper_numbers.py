"""Sphinx extension of the book: the paper's equation numbers, and figure alt text from captions.

Equations
    A displayed equation with a ``:label:`` (``{math}`` directive or ``$$ ... $$ (label)``) carries
    the paper's number as ``\\tag{7}`` in its TeX. This extension makes that tag the equation's
    number: the number printed beside the equation and the text of every ``{eq}`` reference to it,
    on every page, so "eq. (7)" means the paper's eq. (7) throughout the book (Sphinx would
    otherwise number the labelled equations of each page 1, 2, 3, ...). The tag is removed from the
    TeX that MathJax sees, so the number is shown once. A labelled equation without a tag is a
    build warning (the strict build fails): the book's own numbers must never look like the paper's.
    Unlabelled equations get no number unless they carry a tag, which MathJax then shows.

Figures
    An output figure is shown at the width of the text and links to its full-size image. An image
    inside a figure whose alt text is missing or only a file name (myst-nb names cell
    outputs by a hash) gets the figure's caption as alt text.

Scripts
    Repeated script entries (sphinx-thebe adds its configuration twice) are dropped.

Build facts
    The profile, code revision and date of the build, as MyST substitutions and a banner on
    every page.

Requires ``math_numfig: false`` (with ``math_numfig`` Sphinx replaces the numbers by section-based
ones).
"""

from __future__ import annotations

import re
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging

LOGGER = logging.getLogger(__name__)
TAG = re.compile(r"\\tag\*?\{([^{}]+)\}")
TEXT_WIDTH_PX = 700  # about the text column of sphinx-book-theme
FILE_NAME = re.compile(r"^(?:.*/)?[0-9a-f]{16,}(?:\.\w+)?$|\.(?:png|jpe?g|svg)$")


def _paper_equation_numbers(app: Sphinx, doctree: nodes.document) -> None:
    domain = app.env.get_domain("math")
    for node in doctree.findall(nodes.math_block):
        latex = node.astext()
        tags = TAG.findall(latex)
        label = node.get("label")
        if not label or label.startswith(f"{app.env.docname}:"):  # unlabelled (or auto-numbered)
            continue
        if len(tags) != 1:
            LOGGER.warning(
                "equation %r needs exactly one \\tag{N}: the paper's number, or 0.N for the background "
                "chapter's own equations (found %d)",
                label, len(tags), location=node, type="paper_numbers", subtype="tag")
            continue
        number = tags[0].strip()
        node["number"] = number
        domain.data.setdefault("objects", {})[label] = (app.env.docname, number)
        node.children = [nodes.Text(TAG.sub("", latex))]


def _alt_from_captions(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    for figure in doctree.findall(nodes.figure):
        captions = [c for c in figure.findall(nodes.caption)]
        if not captions:
            continue
        text = " ".join(captions[0].astext().split())
        for image in figure.findall(nodes.image):
            alt = image.get("alt", "")
            if not alt or FILE_NAME.search(alt) or alt == image.get("uri"):
                image["alt"] = text


def _pixel_width(app: Sphinx, uri: str) -> int | None:
    """Width in pixels of the image file ``uri`` (absolute, source-relative or document-relative)."""
    from PIL import Image

    candidates = [Path(uri), Path(app.srcdir) / uri.lstrip("/"),
                  Path(app.env.relfn2path(uri, app.env.docname)[1])]
    for path in candidates:
        try:
            with Image.open(path) as im:
                return int(im.size[0])
        except (OSError, ValueError):
            continue
    return None


def _full_width_figures(app: Sphinx, doctree: nodes.document) -> None:
    """Show each output figure at the text width and link it to its full-size file.

    A ``width`` makes Sphinx wrap the image in a link to the original (``html_scaled_image_link``).
    Figures wider than the text column get ``100%``; narrower ones their own pixel width, so they
    are not blown up.
    """
    for figure in doctree.findall(nodes.figure):
        for image in figure.findall(nodes.image):
            if any(key in image for key in ("width", "height", "scale")):
                continue
            width = _pixel_width(app, image["uri"])
            if width is None:
                continue
            image["width"] = "100%" if width >= TEXT_WIDTH_PX else f"{width}px"


def _build_facts(app: Sphinx, config) -> None:
    """The profile, revision and date of this build: substitutions for the pages and a banner.

    ``{{ build_profile }}``, ``{{ build_revision }}`` and ``{{ build_date }}`` in any page; the
    banner at the top of every page says the same, so no reader mistakes a quick-profile figure for
    the paper's run.
    """
    import datetime
    import subprocess

    from repalign import profiles

    try:
        revision = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                  cwd=app.srcdir, check=True).stdout.strip() or "unknown"
    except (OSError, subprocess.CalledProcessError):
        revision = "unknown"
    facts = {"build_profile": profiles.current(), "build_revision": revision,
             "build_date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")}
    config.myst_substitutions = {**(config.myst_substitutions or {}), **facts}
    what = ("the reduced <b>quick</b> profile, not the paper's settings" if facts["build_profile"] == "quick"
            else f"the <b>{facts['build_profile']}</b> profile")
    config.html_theme_options = {**(config.html_theme_options or {}), "announcement": (
        f"This build ran every chapter with {what}: revision {revision}, {facts['build_date']}.")}
    # light pages (the figures are drawn on white); the theme logs a console error for an empty mode
    config.html_context = {"default_mode": "light", **(config.html_context or {})}


def _unique_scripts(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    """Drop repeated ``<script>`` entries: sphinx-thebe registers its configuration script once per
    read phase, and a second ``const THEBE_JS_URL`` is a SyntaxError on every page."""
    seen, unique = set(), []
    for script in context.get("script_files", []):
        key = (str(getattr(script, "filename", script) or ""),  # None and "" both mean an inline script
               tuple(sorted((k, str(v)) for k, v in getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    if "script_files" in context:
        context["script_files"][:] = unique


def setup(app: Sphinx) -> dict:
    app.connect("html-page-context", _unique_scripts)
    app.connect("config-inited", _build_facts)
    app.connect("doctree-read", _paper_equation_numbers)
    app.connect("doctree-read", _full_width_figures)
    app.connect("doctree-resolved", _alt_from_captions)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
