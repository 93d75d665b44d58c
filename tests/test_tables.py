"""repalign.tables: the one Markdown table builder."""

import pytest

from repalign.tables import cell, markdown_table


def test_table_layout_and_note():
    text = markdown_table(["a", "b"], [[1, 2.5], ["x", None]], note="medians over seeds")
    assert text.splitlines() == ["| a | b |", "|---|---|", "| 1 | 2.5 |", "| x | None |", "",
                                 "medians over seeds"]


def test_pipes_and_newlines_cannot_break_a_row():
    row = markdown_table(["claim"], [["|r - 0.703| and ||dy*||^2/8\nsecond line"]]).splitlines()[2]
    # the row has exactly the two delimiting pipes that are not escaped
    unescaped = [i for i, ch in enumerate(row) if ch == "|" and (i == 0 or row[i - 1] != "\\")]
    assert unescaped == [0, len(row) - 1]
    assert "\n" not in row


def test_already_escaped_pipe_is_not_escaped_twice():
    assert cell("a \\| b") == "a \\| b"


def test_bad_rows_name_the_argument():
    with pytest.raises(ValueError, match="row 1 of `rows` has 1 cells"):
        markdown_table(["a", "b"], [[1, 2], [3]])
    with pytest.raises(ValueError, match="`header`"):
        markdown_table([], [])
