"""Policies and stories the governance tests share."""

from __future__ import annotations

from baton_common.policy import Policy, parse_policy
from baton_common.story import Story, parse_story

STRICT = parse_policy(
    """
id: strict
version: 2
workflow:
  publish: [{teams: [secops], stories: ["*"]}]
  run: [{teams: [secops]}]
  triggers: [webhook, story]
  require_webhook_auth: false
  change_control: {stories: ["*"], except: ["hello-*"]}
actions:
  http:
    - hosts: ["api.good.example", "127.0.0.1:8085"]
      methods: [GET, POST]
  ai:
    - providers: [openai]
      models: ["gpt-4o*"]
  agent_tools:
    - tools: [ip_reputation, isolate_host]
  max_fan_out: 3
  max_for_each: 10
  rate_limits:
    - runs_per_minute: 2
"""
)


def story(text: str) -> Story:
    return parse_story(text)


TRIAGE = story(
    """
id: triage
version: 1
owner: secops
trigger: {webhook: {path: triage}}
steps:
  lookup:
    action: http
    with: {url: "https://api.good.example/ip/{{ event.ip }}"}
  approve:
    needs: [lookup]
    approval: {approvers: ["group:secops-oncall"]}
  contain:
    needs: [approve]
    action: http
    destructive: true
    with: {method: POST, url: "{{ event.target }}"}
"""
)


def only(policy: Policy) -> tuple[Policy, ...]:
    return (policy,)
