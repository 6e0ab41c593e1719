from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from baton_common.durations import parse_duration
from baton_common.story import StoryError, parse_story

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", sorted((ROOT / "examples/stories").glob("*.yaml")))
def test_example_stories_are_valid(path: Path) -> None:
    story = parse_story(path.read_text())
    assert story.key == f"{story.id}:{story.version}"


BASE = """
id: s
version: 1
trigger: {webhook: {path: p}}
steps:
"""


@pytest.mark.parametrize(
    ("steps", "reason"),
    [
        ("  a: {action: http, needs: [b]}", "needs unknown step 'b'"),
        ("  a: {action: http, needs: [b]}\n  b: {action: http, needs: [a]}", "cycle"),
        ("  a: {needs: []}", "exactly one of `action` or `approval`"),
        ("  a: {action: ftp}", "steps.a.action"),
        ("  A: {action: http}", "names are lowercase"),
        ("  a: {action: http, retry: {max_attempts: 0}}", "max_attempts"),
        ("  a: {approval: {approvers: []}}", "approvers"),
        ("  a: {action: http, colour: red}", "colour"),
    ],
)
def test_invalid_stories_name_the_step_and_reason(steps: str, reason: str) -> None:
    with pytest.raises(StoryError, match=reason):
        parse_story(BASE + steps)


def test_yaml_errors_name_the_line() -> None:
    with pytest.raises(StoryError, match="line 4"):
        parse_story("id: s\nversion: 1\nsteps: [\n  a: b: c\n")


def test_durations() -> None:
    assert parse_duration("90s") == timedelta(seconds=90)
    assert parse_duration("24h") == timedelta(hours=24)
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("soon")
