"""The executor's policy check on the final request (ADR 0910).

The scheduler judges a step's rendered input before dispatching it, but only the executor
sees the final request: a URL whose host comes from a secret, or an ``ai.agent`` tool call
whose URL the model's arguments filled in. Each task carries the grant the scheduler
computed (``StepTask.policy``); :class:`PolicyEnforced` checks the request against it
right before the action runs and refuses with :class:`PolicyViolation`, whose decision
``FailStep.policy`` carries back so that the scheduler records ``PolicyDenied``.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import JsonValue

from baton_common.policy import PolicyDecision
from baton_common.policy_requests import request_decision
from baton_common.records import StepTask
from baton_executor.actions import Action
from baton_executor.errors import PermanentError

__all__ = ["PolicyEnforced", "PolicyViolation", "enforce_policies"]

_CHECKED = frozenset({"http", "ai.classify", "ai.extract", "ai.agent"})


class PolicyViolation(PermanentError):
    """A policy refuses the request; never retried."""

    def __init__(self, decision: PolicyDecision) -> None:
        policy = f"{decision.policy_id} v{decision.policy_version}"
        super().__init__(
            f"denied by policy {policy} ({decision.rule}): {decision.reason}",
            error_type="PolicyDenied",
        )
        self.decision = decision


class PolicyEnforced:
    """An action that first checks its task's request against the task's grant."""

    def __init__(self, kind: str, action: Action) -> None:
        self._kind = kind
        self._action = action

    @property
    def inner(self) -> Action:
        """The action it guards."""
        return self._action

    async def __call__(self, task: StepTask) -> JsonValue:
        if task.policy is not None:
            for limits in task.policy.limits:
                decision = request_decision(limits, self._kind, task.input, subject=task.step)
                if decision is not None and decision.outcome == "deny":
                    raise PolicyViolation(decision)
        return await self._action(task)


def enforce_policies(actions: Mapping[str, Action]) -> dict[str, Action]:
    """``actions`` with the policy-limited kinds wrapped in :class:`PolicyEnforced`."""
    return {k: PolicyEnforced(k, a) if k in _CHECKED else a for k, a in actions.items()}
