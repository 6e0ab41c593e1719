"""One way to decide a gate, whatever the channel (REST, Slack, web inbox).

The service checks what it can know (the gate exists and is pending, the caller is one
of its approvers, a deny has its comment, the caller is not excluded by four-eyes, one
decision per person) and appends a ``DecideApproval`` command; the scheduler remains the
judge of quorum, four-eyes and expiry, and closes the gate through ``baton.tasks.approvals``.
A decision refused here (403, 409) is still appended, marked ``refused`` with the reason,
so the scheduler records it as ``CommandRejected`` and it is in the audit timeline
(ADR 0420); a malformed one (404, 422) is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal, NoReturn
from uuid import uuid4

import structlog

from baton_approvals.gates import Decision, DecisionRecord, Gate, GateState, decision_envelope
from baton_approvals.identity import may_decide
from baton_approvals.metrics import DECISION_SECONDS, DECISIONS
from baton_approvals.store import GateStore, reserve_decision
from baton_common.auth import Identity
from baton_common.kafka import outbound
from baton_common.publishing import Publisher, PublishError
from baton_common.telemetry import record_span

__all__ = ["Decider", "DecisionRefused", "RefusalKind", "told"]

log = structlog.get_logger(__name__)

RefusalKind = Literal["not_found", "forbidden", "conflict", "invalid", "unavailable"]
HTTP_STATUS: Final[dict[RefusalKind, int]] = {
    "not_found": 404,
    "forbidden": 403,
    "conflict": 409,
    "invalid": 422,
    "unavailable": 503,
}


class DecisionRefused(Exception):
    """A decision this service will not pass on; ``kind`` maps to an HTTP status."""

    def __init__(self, kind: RefusalKind, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.recorded = False  # appended to the log as a refused decision (ADR 0420)

    @property
    def status(self) -> int:
        return HTTP_STATUS[self.kind]


def told(refusal: Exception) -> str:
    """What a channel tells the person whose decision was refused."""
    if isinstance(refusal, DecisionRefused) and refusal.recorded:
        return f"Refused (kept in the run's history): {refusal}"
    return f"Not recorded: {refusal}"


@dataclass(frozen=True, slots=True)
class Decider:
    """Turns a person's decision into a durable ``DecideApproval`` command."""

    store: GateStore
    publisher: Publisher
    commands_topic: str
    deny_requires_comment: bool = False

    async def decide(
        self,
        gate_id: str,
        identity: Identity,
        decision: Decision,
        comment: str | None,
        *,
        channel: str,
    ) -> DecisionRecord:
        """Check, then publish the command; returns the recorded decision.

        Raises:
            DecisionRefused: with the reason, when the decision is not passed on.
        """
        try:
            record = await self._decide(gate_id, identity, decision, comment, channel)
        except DecisionRefused as refused:
            DECISIONS.labels(refused.kind, channel).inc()
            log.info(
                "decision refused",
                gate_id=gate_id,
                approver=identity.user,
                channel=channel,
                reason=refused.reason,
            )
            raise
        DECISIONS.labels("accepted", channel).inc()
        log.info(
            "decision requested",
            gate_id=gate_id,
            decision=decision,
            approver=identity.user,
            channel=channel,
            command_id=record.command_id,
        )
        return record

    async def _decide(
        self,
        gate_id: str,
        identity: Identity,
        decision: Decision,
        comment: str | None,
        channel: str,
    ) -> DecisionRecord:
        gate = await self.store.get(gate_id)
        if gate is None:
            raise DecisionRefused("not_found", f"no approval gate {gate_id}")
        comment = comment.strip() if comment and comment.strip() else None
        attempt = (gate, identity, decision, comment, channel)
        if not may_decide(identity, gate.approvers):
            await self._refuse(
                *attempt,
                DecisionRefused(
                    "forbidden",
                    f"{identity.user} is not an approver of gate {gate_id}"
                    f" (approvers: {', '.join(gate.approvers)})",
                ),
            )
        if gate.state is not GateState.PENDING:
            await self._refuse(
                *attempt, DecisionRefused("conflict", f"gate {gate_id} is {gate.state.value}")
            )
        needs_comment = self.deny_requires_comment or gate.require_comment_on_deny
        if decision == "deny" and needs_comment and comment is None:
            raise DecisionRefused("invalid", "a comment is required to deny a gate")
        if decision == "approve" and identity.user in gate.excluded:
            await self._refuse(
                *attempt,
                DecisionRefused(
                    "conflict",
                    f"four-eyes: {identity.user} cannot approve gate {gate_id} (the run's"
                    " initiator or the author of a destructive step it guards; a deny is"
                    " allowed)",
                ),
            )
        now = datetime.now(UTC)
        record = DecisionRecord(
            approver=identity.user,
            decision=decision,
            comment=comment,
            channel=channel,
            command_id=str(uuid4()),
            requested_at=now,
        )
        envelope = decision_envelope(
            gate,
            identity,
            decision,
            comment,
            command_id=record.command_id,
            time=now,
            channel=channel,
        )
        waited = record_span(  # the decision's command continues the run's trace from here
            "baton.approvals.wait",
            parent=gate.traceparent,
            start=gate.opened_at,
            end=now,
            attributes={"baton.run_id": gate.run_id, "baton.gate_id": gate_id},
        )
        envelope = envelope.model_copy(update={"traceparent": waited})
        # The reservation's transaction stays open until Kafka has the command: a failed
        # publish rolls it back (the person may retry), and a concurrent second decision
        # by the same person waits on the row, then is refused.
        async with self.store.pool.acquire() as conn, conn.transaction():
            if not await reserve_decision(conn, gate_id, record):
                earlier = await self.store.decision_of(gate_id, identity.user)
                what = (
                    f" ({earlier.decision} via {earlier.channel} at"
                    f" {earlier.requested_at.isoformat()})"
                    if earlier is not None
                    else ""
                )
                await self._refuse(
                    *attempt,
                    DecisionRefused(
                        "conflict", f"{identity.user} already decided gate {gate_id}{what}"
                    ),
                )
            try:
                await self.publisher.publish(outbound(self.commands_topic, gate.run_id, envelope))
            except PublishError as exc:
                log.warning("decision not published", gate_id=gate_id, error=str(exc))
                raise DecisionRefused(
                    "unavailable", f"the decision could not be recorded, retry later: {exc}"
                ) from exc
            await conn.execute(
                "update gates set decision_requested = $2, decision_requested_by = $3,"
                " decision_requested_at = $4, decision_command_id = $5 where gate_id = $1",
                gate_id,
                decision,
                identity.user,
                now,
                record.command_id,
            )
        DECISION_SECONDS.observe(max(0.0, (now - gate.opened_at).total_seconds()))
        return record

    async def _refuse(
        self,
        gate: Gate,
        identity: Identity,
        decision: Decision,
        comment: str | None,
        channel: str,
        refusal: DecisionRefused,
    ) -> NoReturn:
        """Record a refused decision in the log (the scheduler rejects it with the reason),
        then raise the refusal; 503 when it cannot be recorded."""
        envelope = decision_envelope(
            gate,
            identity,
            decision,
            comment,
            command_id=str(uuid4()),
            time=datetime.now(UTC),
            channel=channel,
            refused=refusal.reason,
        )
        try:
            await self.publisher.publish(outbound(self.commands_topic, gate.run_id, envelope))
        except PublishError as exc:
            log.warning("refused decision not recorded", gate_id=gate.gate_id, error=str(exc))
            raise DecisionRefused(
                "unavailable", f"the decision could not be recorded, retry later: {exc}"
            ) from exc
        refusal.recorded = True
        raise refusal
