"""Policy documents: validation errors name the field and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from baton_common.policy import PolicyError, load_policies, parse_policy

ROOT = Path(__file__).resolve().parents[2]


def test_the_example_policy_is_valid() -> None:
    (policy,) = load_policies(ROOT / "examples/policies")
    assert policy.id == "default"
    assert policy.workflow.change_control is not None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id: Bad\nversion: 1", "id: String should match pattern"),
        ("id: p\nversion: 0", "version: Input should be greater than or equal to 1"),
        (
            "id: p\nversion: 1\nworkflow: {triggers: [email]}",
            "workflow.triggers.0: Input should be",
        ),
        (
            "id: p\nversion: 1\nactions: {http: [{methods: [GET]}]}",
            "actions.http.0.hosts: Field required",
        ),
        (
            "id: p\nversion: 1\nactions: {http: [{hosts: [a], methods: [get]}]}",
            "actions.http.0: methods are upper case",
        ),
        ("id: p\nversion: 1\nsurprise: 1", "surprise: Extra inputs are not permitted"),
        ("id: p\nversion: 1\nactions: {max_for_each: 0}", "actions.max_for_each"),
        ("- a\n- b", "a policy is a YAML mapping"),
        ("id: p\nversion: [1", "line 2: not valid YAML"),
    ],
)
def test_invalid_policies_say_where_and_why(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, where="p.yaml")
    assert str(caught.value).startswith("p.yaml: ")
    assert message in str(caught.value)


def test_every_problem_is_listed_at_once() -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy("id: P\nversion: -1")
    assert "id:" in str(caught.value)
    assert "version:" in str(caught.value)


def test_the_newest_version_of_each_policy_is_loaded(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("id: p\nversion: 1\n")
    (tmp_path / "b.yml").write_text("id: p\nversion: 3\n")
    (tmp_path / "c.yaml").write_text("id: q\nversion: 1\n")
    loaded = {p.id: p.version for p in load_policies(tmp_path)}
    assert loaded == {"p": 3, "q": 1}


def test_a_bad_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("id: p\n")
    with pytest.raises(PolicyError, match=r"broken.yaml: version: Field required"):
        load_policies(tmp_path)
