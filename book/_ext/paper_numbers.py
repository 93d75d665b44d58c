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
    An image inside a figure whose alt text is missing or only a file name (myst-nb names cell
    outputs by a hash) gets the figure's caption as alt text.

Requires ``math_numfig: false`` (with ``math_numfig`` Sphinx replaces the numbers by section-based
ones).
"""

from __future__ import annotations

import re

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging

LOGGER = logging.getLogger(__name__)
TAG = re.compile(r"\\tag\*?\{([^{}]+)\}")
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
                "equation %r needs exactly one \\tag{N} with the paper's number (found %d)",
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


def setup(app: Sphinx) -> dict:
    app.connect("doctree-read", _paper_equation_numbers)
    app.connect("doctree-resolved", _alt_from_captions)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
