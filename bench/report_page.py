"""What bench/report.py keeps of the page it rewrites: the notes written under a bench's section
(every `###` subsection: side-by-side comparisons, what was tried and dropped), and, for the benches
not run this time, their whole section and headline rows. A rewrite then never loses a measurement
made by hand, nor the figures of a bench left out with --only."""

from __future__ import annotations

from dataclasses import dataclass, field

# The page's own sections, always written afresh.
GENERATED = ("Machine", "Headline figures")


@dataclass
class OldPage:
    # The body of each `## ` section by its title, the heading line excluded, up to its notes.
    sections: dict[str, str] = field(default_factory=dict)
    # Each section's `###` subsections, verbatim (from the first `###` line to the section's end).
    notes: dict[str, str] = field(default_factory=dict)
    # The headline table's rows, verbatim.
    headline_rows: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> OldPage:
        page = cls()
        title: str | None = None
        body: list[str] = []
        for line in [*text.splitlines(), "## "]:  # the sentinel closes the last section
            if line.startswith("## "):
                if title is not None:
                    page._close(title, body)
                title, body = line[3:].strip(), []
            elif title is not None:
                body.append(line)
        return page

    def _close(self, title: str, body: list[str]) -> None:
        if title == "Headline figures":
            self.headline_rows = [line for line in body if line.startswith("| ") and not line.startswith("| Figure ")]
            return
        first_note = next((i for i, line in enumerate(body) if line.startswith("### ")), len(body))
        self.sections[title] = "\n".join(body[:first_note]).strip("\n")
        notes = "\n".join(body[first_note:]).strip("\n")
        if notes:
            self.notes[title] = notes

    def rows_of(self, script: str) -> list[str]:
        """The headline rows whose command runs `script` (bench/<name>.py)."""
        return [row for row in self.headline_rows if f"`python {script}" in row]

    def orphaned_notes(self, titles: set[str]) -> dict[str, str]:
        """Notes whose section is not on the new page (a bench renamed or removed)."""
        return {title: text for title, text in self.notes.items() if title not in titles and title not in GENERATED}
