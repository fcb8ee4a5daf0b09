"""Attacks on bench/report.py's rewrite of docs/benchmarks.md (bench/report_page.py's OldPage).

What a user expects of a rewrite: nothing written by hand is lost, nothing is duplicated, the page
is stable when written again and again, and the figures of a bench run are its fresh ones only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench import report
from bench.report import BENCHES, Run, render
from bench.report_page import OldPage

HOST = {"CPU": "test", "Cores": "2"}
BY_NAME = {b.name: b for b in BENCHES}
EMU = BY_NAME["emulator_throughput"]
MAPPER_KEY = "mixed_unary_32_in_flight_per_second"


def run_of(
    name: str, figure: float = 1.0, key: str = "figure", printed: str = "it printed this", quick: bool = False
) -> Run:
    bench = BY_NAME[name]
    command = ["python", f"bench/{name}.py", *(["--quick"] if quick else []), "--json"]
    output = f'{printed}\n{{"{key}": {figure}}}'
    return Run(bench, command, 0, 12.0, output, {key: figure}, (1.0, 1.0, 1.0), (1.5, 1.0, 1.0))


def page(*runs: Run, old: str | None = None, quick: bool = False) -> str:
    parsed = OldPage.parse(old) if old is not None else None
    return render(list(runs), HOST, quick, "python bench/report.py", parsed)


def rewrite(text: str, *runs: Run, times: int = 1) -> str:
    for _ in range(times):
        text = page(*runs, old=text)
    return text


def section_text(text: str, title: str) -> str:
    """From `## title` to the next `## ` heading outside a fence (or the end)."""
    start = text.index(f"## {title}\n")
    rest = text[start + len(title) + 4 :]
    fenced = False
    out = []
    for line in rest.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("## "):
            break
        out.append(line)
    return "\n".join(out)


def with_note(text: str, note: str) -> str:
    """The page with `note` appended (the emulator section is the last bench section)."""
    return text.rstrip("\n") + "\n\n" + note.strip("\n") + "\n"


# --- headings inside fenced code blocks -------------------------------------------------------


def test_a_printed_triple_hash_line_does_not_make_the_page_grow_on_each_rewrite() -> None:
    printed = "### results\nfast: 10\nslow: 20"
    first = page(run_of("emulator_throughput", 1.0, printed=printed))
    noted = with_note(first, "### Tried by hand\n\nhalf the time")

    texts = [noted]
    for _ in range(3):
        texts.append(page(run_of("emulator_throughput", 1.0, printed=printed), old=texts[-1]))

    assert texts[-1].count("fast: 10") == 1
    assert texts[-1].count("### Tried by hand") == 1
    assert texts[2] == texts[3]


def test_a_printed_double_hash_line_of_a_bench_not_run_keeps_its_whole_section() -> None:
    printed = "before\n## Results by size\nsize 1: 10\nsize 2: 20"
    first = page(run_of("emulator_throughput", 1.0, printed=printed), run_of("poster_memory", 5.0))

    again = page(run_of("poster_memory", 6.0), old=first)

    emu = section_text(again, EMU.title)
    assert "size 2: 20" in emu
    assert emu.count("```") % 2 == 0, "a code fence left open"


def test_a_note_stays_under_its_section_when_the_printed_output_has_a_double_hash_line() -> None:
    printed = "## Results\nsize 1: 10"
    first = page(run_of("emulator_throughput", 1.0, printed=printed))
    noted = with_note(first, "### Tried by hand\n\nhalf the time")

    again = rewrite(noted, run_of("emulator_throughput", 2.0, printed=printed))

    assert "### Tried by hand" in section_text(again, EMU.title)
    assert "No bench writes this section any more" not in again


def test_a_fenced_markdown_example_inside_a_note_is_kept_whole() -> None:
    first = page(run_of("emulator_throughput", 1.0))
    note = "### How to read it\n\n```markdown\n## Example heading\nexample body\n```\n\nthe last words of the note"
    noted = with_note(first, note)

    again = rewrite(noted, run_of("emulator_throughput", 2.0))

    assert "example body" in again
    assert "the last words of the note" in again


# --- notes placed where the generator does not expect them -------------------------------------


def test_a_note_placed_before_the_generated_table_does_not_keep_the_stale_figures() -> None:
    first = page(run_of("emulator_throughput", 111.0))
    noted = first.replace(
        "Command: `python bench/emulator", "### Context\n\nwritten first\n\nCommand: `python bench/emulator", 1
    )
    assert "### Context" in noted

    again = rewrite(noted, run_of("emulator_throughput", 222.0))

    assert "### Context" in again and "written first" in again
    assert "111.00" not in again, "the old run's figures are kept as part of the note"
    assert again.count("Command: `python bench/emulator_throughput.py") == 1


@pytest.mark.parametrize("generated", ["Machine", "Headline figures"])
def test_a_note_under_a_generated_section_is_kept(generated: str) -> None:
    first = page(run_of("emulator_throughput", 1.0))
    noted = first.replace(
        "## Headline figures" if generated == "Machine" else f"## {EMU.title}",
        f"### Note on {generated}\n\nkeep me\n\n"
        + ("## Headline figures" if generated == "Machine" else f"## {EMU.title}"),
        1,
    )
    assert f"### Note on {generated}" in noted

    again = rewrite(noted, run_of("emulator_throughput", 2.0))

    assert f"### Note on {generated}" in again
    assert "keep me" in again


def test_text_directly_under_a_section_after_the_printed_block_is_kept() -> None:
    first = page(run_of("emulator_throughput", 1.0))
    noted = with_note(first, "Measured again by hand: about half as fast under load.")

    again = rewrite(noted, run_of("emulator_throughput", 2.0))

    assert "Measured again by hand" in again


def test_a_level_four_heading_under_a_section_is_kept() -> None:
    first = page(run_of("emulator_throughput", 1.0))
    noted = with_note(first, "#### Aside\n\na small aside")

    again = rewrite(noted, run_of("emulator_throughput", 2.0))

    assert "#### Aside" in again and "a small aside" in again


def test_a_hand_written_section_without_subsections_is_kept() -> None:
    first = page(run_of("emulator_throughput", 1.0))
    noted = with_note(first, "## Methodology\n\nEvery bench was run three times; the median is shown.")

    again = rewrite(noted, run_of("emulator_throughput", 2.0))

    assert "Every bench was run three times" in again


def test_the_intro_of_a_hand_written_section_with_subsections_is_kept() -> None:
    first = page(run_of("emulator_throughput", 1.0))
    noted = with_note(first, "## Methodology\n\nWhy we measure this way.\n\n### Runs\n\nthree times each")

    again = rewrite(noted, run_of("emulator_throughput", 2.0))

    assert "three times each" in again
    assert "Why we measure this way." in again


def test_hand_written_text_under_the_page_title_is_kept() -> None:
    first = page(run_of("emulator_throughput", 1.0))
    noted = first.replace("## Machine", "See also docs/scaling.md for the fleet's figures.\n\n## Machine", 1)

    again = rewrite(noted, run_of("emulator_throughput", 2.0))

    assert "See also docs/scaling.md" in again


def test_two_sections_with_the_same_title_lose_neither_notes() -> None:
    first = page(run_of("emulator_throughput", 1.0))
    noted = with_note(first, "### First note\n\none")
    noted = with_note(noted, f"## {EMU.title}\n\nagain\n\n### Second note\n\ntwo")

    again = rewrite(noted, run_of("emulator_throughput", 2.0))

    assert "### First note" in again
    assert "### Second note" in again


def test_a_hard_line_break_in_a_note_is_kept_verbatim() -> None:
    first = page(run_of("emulator_throughput", 1.0))
    note = "### Side by side\n\nbefore: 10 ms  \nafter: 5 ms"
    noted = with_note(first, note)

    again = rewrite(noted, run_of("emulator_throughput", 2.0))

    assert note in again


def test_blank_lines_inside_a_fenced_block_of_a_note_are_kept_verbatim() -> None:
    first = page(run_of("emulator_throughput", 1.0))
    note = "### Raw output, by hand\n\n```\nround 1: 10 ms\n\n\nround 2: 12 ms\n```"
    noted = with_note(first, note)

    again = rewrite(noted, run_of("emulator_throughput", 2.0))

    assert note in again


# --- odd but harmless shapes: these should hold ----------------------------------------------


def test_titles_with_trailing_spaces_still_match_their_bench() -> None:
    first = page(run_of("emulator_throughput", 1.0))
    noted = with_note(first, "### Note\n\nkept").replace(f"## {EMU.title}\n", f"## {EMU.title}   \n")

    again = rewrite(noted, run_of("emulator_throughput", 2.0), times=3)

    assert again.count("### Note") == 1
    assert f"## {EMU.title}\n" in again
    assert "No bench writes" not in again


def test_windows_line_endings_through_main(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = page(run_of("emulator_throughput", 1.0), run_of("poster_memory", 5.0))
    noted = with_note(first, "### Note\n\nkept")
    out = tmp_path / "b.md"
    out.write_bytes(noted.replace("\n", "\r\n").encode())
    monkeypatch.setattr(report, "run_bench", lambda bench, quick: run_of(bench.name, 2.0))
    monkeypatch.setattr(report, "machine", lambda: HOST)

    assert report.main(["--only", "emulator_throughput", "--output", str(out)]) == 0

    text = out.read_text()
    assert text.count("### Note") == 1
    assert "| figure | 5.00 |" in text  # poster_memory's kept
    assert "\r" not in out.read_bytes().decode()


@pytest.mark.parametrize("old", ["", "\n", "# Benchmarks\n"])
def test_an_empty_page_gives_a_fresh_one(old: str) -> None:
    assert page(run_of("emulator_throughput", 1.0), old=old) == page(run_of("emulator_throughput", 1.0))


def test_a_missing_page_through_main(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "sub" / "b.md"
    monkeypatch.setattr(report, "run_bench", lambda bench, quick: run_of(bench.name, 2.0))
    monkeypatch.setattr(report, "machine", lambda: HOST)

    assert report.main(["--only", "emulator_throughput", "--output", str(out)]) == 0
    assert f"## {EMU.title}" in out.read_text()


def test_a_page_of_the_old_report_keeps_every_section_and_row() -> None:
    committed_old = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"
    old = re.sub(r"\n### .*?(?=\n## |\Z)", "", committed_old.read_text(), flags=re.DOTALL)
    assert "### " not in old

    again = page(run_of("emulator_throughput", 1.0), old=old)

    for title in re.findall(r"^## (.+)$", old, flags=re.MULTILINE):
        assert f"## {title}" in again
    for name, row in OldPage.parse(old).headline_rows:
        if name != "emulator_throughput":
            assert row in again
    assert rewrite(again, run_of("emulator_throughput", 1.0)) == page(run_of("emulator_throughput", 1.0), old=again)


def test_the_headline_rows_of_a_bench_not_run_are_not_duplicated_by_another_benchs_name() -> None:
    first = page(run_of("mapper_throughput", 333.0, MAPPER_KEY), run_of("emulator_throughput", 1.0))
    # A hand-added row whose text mentions another bench's command.
    row = "| Drift against posting | see `python bench/poster_throughput.py` | `python bench/drift_watch.py --json` |"
    noted = first.replace("\n\n## Mapper throughput", f"\n{row}\n\n## Mapper throughput", 1)
    assert row in noted

    again = rewrite(noted, run_of("emulator_throughput", 2.0), times=3)

    assert again.count(row) == 1


def test_a_hand_written_headline_row_is_kept() -> None:
    first = page(run_of("emulator_throughput", 1.0))
    row = "| Post p99 measured by hand on the staging box | 40 ms | by hand, see notes |"
    noted = first.replace(f"\n\n## {EMU.title}", f"\n{row}\n\n## {EMU.title}", 1)

    again = rewrite(noted, run_of("emulator_throughput", 2.0))

    assert row in again


def test_only_with_a_bench_repeated_runs_it_once_and_writes_it_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def fake(bench: report.Bench, quick: bool) -> Run:
        calls.append(bench.name)
        return run_of(bench.name, 2.0)

    monkeypatch.setattr(report, "run_bench", fake)
    monkeypatch.setattr(report, "machine", lambda: HOST)
    out = tmp_path / "b.md"

    report.main(["--only", "emulator_throughput,emulator_throughput", "--output", str(out)])
    report.main(["--only", "emulator_throughput,emulator_throughput", "--output", str(out)])

    assert out.read_text().count(f"## {EMU.title}") == 1
    assert calls == ["emulator_throughput", "emulator_throughput"], "one run per report; a repeated name runs it twice"


def test_many_rewrites_with_notes_everywhere_are_stable_and_do_not_grow() -> None:
    runs = [
        run_of("emulator_throughput", 1.0),
        run_of("mapper_throughput", 3.0, MAPPER_KEY),
        run_of("poster_memory", 5.0),
    ]
    first = page(*runs)
    noted = with_note(first, "### Emu note\n\nkeep")
    noted = noted.replace(
        f"\n## {BY_NAME['poster_memory'].title}",
        f"\n### Mapper note\n\nkeep too\n\n## {BY_NAME['poster_memory'].title}",
        1,
    )
    noted = with_note(noted, "## Retired bench\n\nold\n\n### Retired note\n\nkeep as well")

    texts = [noted]
    for subset in ([runs[0]], [runs[1]], [runs[2]], runs, [runs[0]], [runs[0]]):
        texts.append(page(*subset, old=texts[-1]))

    last = texts[-1]
    for heading in ("### Emu note", "### Mapper note", "### Retired note"):
        assert last.count(heading) == 1, heading
    assert "### Mapper note" in section_text(last, BY_NAME["mapper_throughput"].title)
    assert texts[-1] == texts[-2]
    assert "\n\n\n" not in last


def test_a_quick_page_rewritten_in_part_at_full_size_still_says_which_figures_are_quick() -> None:
    quick = page(run_of("emulator_throughput", 1.0, quick=True), run_of("poster_memory", 5.0, quick=True), quick=True)
    assert "Quick mode" in quick

    again = page(run_of("emulator_throughput", 2.0), old=quick, quick=False)

    # poster_memory's figures are still the quick ones: the page should still warn of them.
    assert "--quick" in section_text(again, BY_NAME["poster_memory"].title)
    assert "Quick mode" in again or "quick" in section_text(again, BY_NAME["poster_memory"].title).lower()
