"""Block Kit messages of a gate: pure functions of the gate."""

from __future__ import annotations

import json
from typing import Final

from pydantic import JsonValue

from baton_approvals.gates import Gate, GateState

__all__ = [
    "APPROVE",
    "COMMENT_BLOCK",
    "COMMENT_INPUT",
    "DENY",
    "DENY_MODAL",
    "deny_modal",
    "gate_message",
    "parse_action",
]

APPROVE: Final = "baton_approve"
DENY: Final = "baton_deny"
_VERB: Final = {
    GateState.APPROVED: ":white_check_mark: Approved",
    GateState.DENIED: ":x: Denied",
    GateState.CANCELLED: ":no_entry_sign: Cancelled",
    GateState.EXPIRED: ":hourglass: Expired (denied at its deadline)",
    GateState.ESCALATED: ":arrow_double_up: Escalated",
}

Block = dict[str, object]


def _escape(text: str) -> str:
    """Slack mrkdwn escaping of ``&``, ``<`` and ``>``."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _summary(gate: Gate) -> str:
    return f"Approval needed: {gate.story_id} / {gate.step}"


def _rules(gate: Gate) -> str:
    rules = []
    if gate.required > 1:
        rules.append(f"{gate.required} approvals needed")
    if gate.excluded:
        rules.append("cannot approve: " + _escape(", ".join(gate.excluded)))
    if gate.deadline is not None:
        rules.append(f"due {gate.deadline.strftime('%Y-%m-%d %H:%M:%S UTC')}")
    if gate.round > 1:
        rules.append("escalated")
    return "".join(f" · {r}" for r in rules)


def _context_block(context: dict[str, JsonValue]) -> Block:
    """The gate's rendered ``context`` (e.g. an AI verdict, confidence and reasoning)."""
    lines = []
    for key, value in context.items():
        shown = value if isinstance(value, str) else json.dumps(value)
        lines.append(f"*{_escape(key)}*: {_escape(shown)}")
    return {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:3000]}}


def gate_message(gate: Gate) -> tuple[str, list[Block]]:
    """The fallback text and blocks showing ``gate``: buttons while pending, else the outcome."""
    header: list[Block] = [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"*{_escape(_summary(gate))}*"
                + (f"\n{_escape(gate.message)}" if gate.message else ""),
            },
        },
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"run `{gate.run_id}` · gate `{gate.gate_id}` · approvers "
                    + _escape(", ".join(gate.approvers))
                    + _rules(gate),
                }
            ],
        },
    ]
    if gate.context:
        header.insert(1, _context_block(gate.context))
    if gate.state is GateState.PENDING:
        buttons: Block = {
            "type": "actions",
            "block_id": f"gate:{gate.gate_id}",
            "elements": [
                {
                    "type": "button",
                    "action_id": APPROVE,
                    "style": "primary",
                    "text": {"type": "plain_text", "text": "Approve"},
                    "value": gate.gate_id,
                },
                {
                    "type": "button",
                    "action_id": DENY,
                    "style": "danger",
                    "text": {"type": "plain_text", "text": "Deny"},
                    "value": gate.gate_id,
                },
            ],
        }
        return _summary(gate), [*header, buttons]
    who = f" by {_escape(gate.decided_by)}" if gate.decided_by else ""
    when = f" at {gate.closed_at.strftime('%Y-%m-%d %H:%M:%S UTC')}" if gate.closed_at else ""
    outcome = f"{_VERB[gate.state]}{who}{when}"
    if gate.comment:
        outcome += f"\n> {_escape(gate.comment)}"
    closed: Block = {"type": "section", "text": {"type": "mrkdwn", "text": outcome}}
    return f"{_summary(gate)}: {outcome}", [*header, closed]


def parse_action(action_id: str) -> str | None:
    """The decision a button stands for, or None for a button that is not ours."""
    return {APPROVE: "approve", DENY: "deny"}.get(action_id)


DENY_MODAL: Final = "baton_deny"
COMMENT_BLOCK: Final = "baton_comment"
COMMENT_INPUT: Final = "comment"


def deny_modal(gate: Gate, *, channel: str | None, comment_required: bool) -> Block:
    """The modal a Deny press opens: a comment, then Deny (``view_submission``)."""
    return {
        "type": "modal",
        "callback_id": DENY_MODAL,
        "private_metadata": json.dumps({"gate_id": gate.gate_id, "channel": channel}),
        "title": {"type": "plain_text", "text": "Deny approval"},
        "submit": {"type": "plain_text", "text": "Deny"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"*{_escape(_summary(gate))}*"},
            },
            {
                "type": "input",
                "block_id": COMMENT_BLOCK,
                "optional": not comment_required,
                "label": {"type": "plain_text", "text": "Why deny?"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": COMMENT_INPUT,
                    "multiline": True,
                    "max_length": 3000,
                },
            },
        ],
    }
