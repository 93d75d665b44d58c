"""Markdown tables, the one way the book and the package print a table.

Chapters show tables with ``IPython.display.Markdown(markdown_table(...))``; ``claims`` and
``experiments`` build theirs with the same function, so escaping and layout are written once.

>>> print(markdown_table(["a", "b"], [[1, "x | y"]]))
| a | b |
|---|---|
| 1 | x \\| y |
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["cell", "markdown_table"]


def cell(value: object) -> str:
    """One table cell: ``str(value)`` with ``|`` escaped and line breaks joined, so it cannot split a row."""
    text = str(value).replace("\r", " ").replace("\n", " ")
    return text.replace("\\|", "|").replace("|", "\\|")


def markdown_table(header: Sequence[object], rows: Iterable[Sequence[object]], *, note: str | None = None) -> str:
    """A GitHub/MyST Markdown table.

    Parameters
    ----------
    header : sequence
        The column names.
    rows : iterable of sequences
        One sequence of cell values per row (already formatted, or anything ``str`` formats), each
        as long as `header`.
    note : str, optional
        A paragraph printed under the table (for example what the medians are over).

    Returns
    -------
    str
        The table; every cell escaped with :func:`cell`.

    Raises
    ------
    ValueError
        If `header` is empty or a row's length differs from the header's.
    """
    header = list(header)
    if not header:
        raise ValueError("`header` must name at least one column")
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    for i, row in enumerate(rows):
        row = list(row)
        if len(row) != len(header):
            raise ValueError(f"row {i} of `rows` has {len(row)} cells; the header has {len(header)} columns")
        lines.append("| " + " | ".join(cell(c) for c in row) + " |")
    table = "\n".join(lines)
    return table if note is None else f"{table}\n\n{note}"
