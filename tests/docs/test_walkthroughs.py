"""The walk-throughs of docs/ run as written (issue 15, item 7): each against a fresh sandbox database with the
demo, its commands in one bash session, its documented answers compared (tests/docs/walkthrough.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.walkthrough import WalkThroughFailed, run_walk_through, segments, sh_blocks
from tests.e2e.conftest import REPO

DOCS = REPO / "docs"


@pytest.mark.parametrize(
    ("doc", "sections"),
    [
        ("trading.md", ["Walk-through"]),
        # finance.md's penalties continue in the shell of the settled period: its fine becomes a payable notice.
        ("compliance.md", ["A whole carbon period through the API", (DOCS / "finance.md", "Penalties")]),
        ("finance.md", ["Walk-through with curl", "Bank green-credit queries"]),
    ],
)
def test_the_walk_through_runs_as_written(doc: str, sections: list[str | tuple[Path, str]], tmp_path: Path) -> None:
    first = sections[0]
    assert isinstance(first, str)
    try:
        results = run_walk_through(DOCS / doc, first, tmp_path, *sections[1:])
    except WalkThroughFailed as failed:
        # The walk-throughs run at today's date: from about three weeks before the end of the last year whose
        # State Council holiday notice is published (core/holidays.yaml), a deadline counted in working days
        # lands in a year nobody can count yet, and the app refuses it (409 calendar-not-published), as it
        # would for a newcomer. That is a calendar to publish, not a doc to fix; anything else fails.
        if "/problems/calendar-not-published" in str(failed):
            pytest.skip(f"{doc}: a working day of a year whose holiday notice is not published yet:\n{failed}")
        raise
    checked = [seg for seg, _ in results if seg.expected]
    assert len(checked) >= 5, f"{doc}: only {len(checked)} documented answers were compared"


def test_a_documented_answer_that_differs_fails(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(
        "## Walk-through\n```sh\nX=41\necho $((X + 1))\n# -> 42\necho nothing-documented\n```\n"
        '```sh\necho "answer $X"\n# -> answer 43\n```\n',
        encoding="utf-8",
    )
    with pytest.raises(WalkThroughFailed, match="printed another answer") as failed:
        run_walk_through(doc, "Walk-through", tmp_path / "run")
    assert "answer 41" in str(failed.value)  # the first block's variable carried into the second (one session)


def test_a_failing_command_fails(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("## Walk-through\n```sh\necho one\nfalse\necho never\n```\n", encoding="utf-8")
    with pytest.raises(WalkThroughFailed, match="exited with 1"):
        run_walk_through(doc, "Walk-through", tmp_path / "run")


def test_answers_attach_to_the_commands_before_them() -> None:
    found = segments(sh_blocks("```sh\na\nb\n# -> 1\n# -> 2\nc\n```\n```sh\nd\n```\n"))
    assert [(s.block, s.commands, s.expected) for s in found] == [
        (0, ["a", "b"], ["1", "2"]),
        (0, ["c"], []),
        (1, ["d"], []),
    ]
