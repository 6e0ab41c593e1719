"""Static evaluation of a story (publish time, ``baton policy test``) and request checks."""

from __future__ import annotations

import pytest

from baton_common.policy import ActionLimits, StepGrant, parse_policy
from baton_common.policy_requests import allowed_tools, request_decision, url_target
from baton_common.policy_rules import denials, evaluate_story, review_needed

from .policies import STRICT, TRIAGE, only, story


def rules(decisions: list, outcome: str) -> set[str]:  # type: ignore[type-arg]
    return {d.rule for d in decisions if d.outcome == outcome}


def test_a_compliant_story_is_allowed_rule_by_rule() -> None:
    decisions = evaluate_story(only(STRICT), TRIAGE)
    assert denials(decisions) == []
    assert {
        "workflow.publish",
        "workflow.run",
        "workflow.triggers",
        "workflow.change_control",
        "workflow.destructive_needs_approval",
        "actions.max_fan_out",
        "actions.http",
    } <= rules(decisions, "allow")
    assert all(d.policy_id == "strict" and d.policy_version == 2 for d in decisions)
    assert review_needed(only(STRICT), TRIAGE) == 1


def test_another_team_may_not_publish() -> None:
    (refused,) = denials(evaluate_story(only(STRICT), TRIAGE, publisher_team="interns"))
    assert refused.rule == "workflow.publish"
    assert refused.reason == "team interns may not publish triage"


def test_an_ungated_destructive_step_is_denied() -> None:
    ungated = story(
        """
id: rash
version: 1
owner: secops
trigger: {webhook: {path: rash}}
steps:
  verdict: {action: transform, with: {data: 1}}
  contain:
    needs: [verdict]
    action: http
    destructive: true
    with: {method: POST, url: "https://api.good.example/contain"}
"""
    )
    (refused,) = denials(evaluate_story(only(STRICT), ungated))
    assert refused.rule == "workflow.destructive_needs_approval"
    assert refused.subject == "contain"
    assert "needs an approval step" in refused.reason


def test_a_confidence_gate_does_not_count_as_an_approval() -> None:
    gated_by_confidence = story(
        """
id: soft
version: 1
owner: secops
trigger: {webhook: {path: soft}}
steps:
  maybe:
    approval: {approvers: [bob]}
    gate: {when: "event.score < 5"}
  contain:
    needs: [maybe]
    action: http
    destructive: true
    with: {method: POST, url: "https://api.good.example/contain"}
"""
    )
    refused = denials(evaluate_story(only(STRICT), gated_by_confidence))
    assert [d.rule for d in refused] == ["workflow.destructive_needs_approval"]


def test_literal_hosts_models_triggers_fan_out_and_for_each_are_judged_statically() -> None:
    wide = story(
        """
id: wide
version: 1
owner: secops
trigger: {schedule: {every: 1h}}
steps:
  a: {action: http, with: {url: "https://evil.example/x"}}
  b: {action: http, with: {method: DELETE, url: "https://api.good.example/x"}}
  c: {action: ai.classify, with: {prompt: p, labels: [x], provider: anthropic}}
  d: {action: ai.extract, with: {prompt: p, schema: {}, model: gpt-3.5}}
  e: {action: http, for_each: "event.items", max_items: 50, with: {url: "https://api.good.example/"}}
"""
    )
    refused = {(d.rule, d.subject): d.reason for d in denials(evaluate_story(only(STRICT), wide))}
    assert set(refused) == {
        ("workflow.triggers", None),
        ("actions.max_fan_out", None),
        ("actions.http.hosts", "a"),
        ("actions.http.methods", "b"),
        ("actions.ai.providers", "c"),
        ("actions.ai.models", "d"),
        ("actions.max_for_each", "e"),
    }
    assert refused["workflow.triggers", None] == (
        "trigger schedule is not allowed (allowed: webhook, story)"
    )
    assert (
        "host evil.example:443 is not allowed by policy strict v2"
        in refused["actions.http.hosts", "a"]
    )


def test_an_owner_team_outside_the_run_rule_may_not_run() -> None:
    other = TRIAGE.model_copy(update={"owner": "it-ops"})
    refused = denials(evaluate_story(only(STRICT), other, publisher_team="secops"))
    assert [d.rule for d in refused] == ["workflow.run"]


def test_a_policy_judges_only_the_stories_it_applies_to() -> None:
    scoped = parse_policy("id: s\nversion: 1\napplies_to: {stories: [gov-*]}\nactions: {http: []}")
    assert evaluate_story(only(scoped), TRIAGE) == []
    gov = TRIAGE.model_copy(update={"id": "gov-triage"})
    assert {d.rule for d in denials(evaluate_story(only(scoped), gov))} == {"actions.http.hosts"}


def test_agent_tools_outside_the_policy_are_reported_as_withheld() -> None:
    agent = story(
        """
id: agent
version: 1
owner: secops
trigger: {webhook: {path: agent}}
steps:
  investigate:
    action: ai.agent
    with:
      goal: g
      provider: openai
      model: gpt-4o-mini
      tools: [{name: ip_reputation, action: http}, {name: wipe_disk, action: http}]
"""
    )
    decisions = evaluate_story(only(STRICT), agent)
    (tools,) = [d for d in decisions if d.rule == "actions.agent_tools"]
    assert tools.reason == "tools withheld from the agent: wipe_disk"


@pytest.mark.parametrize(
    ("url", "target"),
    [
        (
            "https://api.good.example/ip/{{ event.ip }}",
            ("api.good.example", "api.good.example:443"),
        ),
        ("http://127.0.0.1:8085/healthz", ("127.0.0.1", "127.0.0.1:8085")),
        ("{{ event.url }}", None),
        ("https://{{ secrets.HOST }}/x", None),
        ("https://api.{{ event.zone }}/x", None),
        ("not a url", None),
    ],
)
def test_url_targets(url: str, target: tuple[str, str] | None) -> None:
    assert url_target(url) == target


def test_a_request_with_a_port_pattern_matches_host_and_port() -> None:
    limits = ActionLimits(
        policy_id="p", policy_version=1, hosts=["127.0.0.1:8085"], methods=["GET"]
    )
    ok = request_decision(limits, "http", {"url": "http://127.0.0.1:8085/x"})
    bad = request_decision(limits, "http", {"url": "http://127.0.0.1:9999/x"})
    assert ok is not None
    assert ok.outcome == "allow"
    assert bad is not None
    assert bad.outcome == "deny"
    assert bad.input == {"action": "http", "method": "GET", "host": "127.0.0.1:9999"}


def test_agent_tools_are_the_intersection_with_every_policy() -> None:
    grant = StepGrant(
        limits=[
            ActionLimits(policy_id="a", policy_version=1, tools=["ip_*", "isolate_host"]),
            ActionLimits(policy_id="b", policy_version=1, tools=["ip_reputation"]),
        ]
    )
    assert allowed_tools(grant, ["ip_reputation", "isolate_host", "whois"]) == (
        ["ip_reputation"],
        ["isolate_host", "whois"],
    )
    assert allowed_tools(None, ["x"]) == (["x"], [])
