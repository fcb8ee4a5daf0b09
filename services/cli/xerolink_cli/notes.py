"""Long sentences of a table, printed below it: every row stays one line in an 80-column terminal
(unless a column kept whole leaves too little room), and a refusal's sentence is read whole rather
than cut into a cell many lines tall. `--wide` keeps them in their cells, for wide terminals and for
scripts that read the table."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

# Columns that give up their width first in a narrow terminal, and how narrow they may get.
SHRINKABLE = frozenset({"Xero", "Xero objects left in Xero", "group", "profiles", "step"})
SHRUNK_WIDTH = 9


class Notes:
    def __init__(self, wide: bool = False) -> None:
        self.wide = wide
        self.sentences: list[str] = []

    def cell(self, code: str, sentence: str) -> str:
        """What the table shows: the reason code and the note's number (or, wide, the sentence)."""
        if not sentence:
            return escape(code)
        if self.wide:
            return escape(f"{code}: {sentence}" if code else sentence)
        text = f"{code}: {sentence}" if code else sentence
        # The same sentence (twenty refusals for one reason) is one note.
        if text not in self.sentences:
            self.sentences.append(text)
        number = f"[{self.sentences.index(text) + 1}]"
        # The number first: a narrow terminal may cut the code, never the way to the sentence.
        return escape(f"{number} {code}" if code else number)

    def labelled(self, label: str, sentence: str) -> str:
        """A cell that names its row briefly (a correction step's action): the note's number and
        `label`, the sentence below at that number; wide, the sentence itself."""
        if self.wide or not sentence:
            return escape(sentence or label)
        return f"{self.cell('', sentence)} {escape(label)}"

    def print(self, console: Console, table: Table) -> None:
        console.print(table if self.wide else one_line_rows(table, console.width))
        for number, sentence in enumerate(self.sentences, start=1):
            console.print(escape(f"[{number}] {sentence}"))


def one_line_columns(table: Table, *names: str) -> None:
    """Columns that are shortened with an ellipsis rather than wrapped (Xero ids, object lists)."""
    for column in table.columns:
        if column.header in names:
            column.no_wrap = True
            column.overflow = "ellipsis"


def keep_whole(table: Table, name: str) -> None:
    """Column `name` is never cut nor wrapped (the record a user copies into `xerolink unlink`):
    the other columns give up their width, and wrap if they must. Call it once the rows are added."""
    for column in table.columns:
        if column.header == name:
            column.no_wrap = True
            column.min_width = max(
                (Text.from_markup(str(c)).cell_len for c in [column.header, *column.cells]), default=1
            )


def one_line_rows(table: Table, width: int) -> Table:
    """Every row on one line in `width` columns: cells too long end in an ellipsis rather than wrap.
    Short columns (the record, the state) are kept whole; the long ones (Xero objects, groups, the
    note column, whose number comes first) share what is left. Call it once the rows are added."""
    last = len(table.columns) - 1
    widest = [max((Text.from_markup(str(c)).cell_len for c in col.cells), default=0) for col in table.columns]
    for index, column in enumerate(table.columns):
        widest[index] = max(widest[index], Text.from_markup(str(column.header)).cell_len)
    shrinkable = [i for i, col in enumerate(table.columns) if i == last or col.header in SHRINKABLE]
    fixed = sum(w for i, w in enumerate(widest) if i not in shrinkable)
    # Each column has a space either side and a bar after it, plus the first bar.
    spare = width - fixed - 3 * len(widest) - 1
    allowed: dict[int, int] = {}
    # Narrowest first, so what a short column does not need goes to the longer ones.
    for position, index in enumerate(sorted(shrinkable, key=lambda i: widest[i])):
        share = max(SHRUNK_WIDTH, spare // (len(shrinkable) - position))
        allowed[index] = min(widest[index], share)
        spare -= allowed[index]
    kept = {i for i, col in enumerate(table.columns) if col.min_width is not None}
    fits = sum(allowed.get(i, w) for i, w in enumerate(widest)) + 3 * len(widest) + 1 <= width
    for index, column in enumerate(table.columns):
        # Too narrow for one line a row: the other columns wrap at spaces (a long word still ends
        # in an ellipsis), so that a kept column stays whole.
        column.no_wrap = fits or not kept or index in kept
        column.overflow = "ellipsis"
        if index in allowed:
            column.max_width = allowed[index]
    return table
