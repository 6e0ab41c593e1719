"""``notify.slack`` against a fake Slack Web API; ``notify.email`` against a real SMTP server
(aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from outside_fakes import FakeSlack
from platform_kit import free_port
from pydantic import JsonValue

from baton_executor.actions.email import EmailAction, SmtpSettings
from baton_executor.actions.slack import SlackAction
from baton_executor.errors import PermanentError, RetryableError
from baton_executor.guard import CircuitBreaker, NetworkPolicy, OutboundGuard
from baton_executor.secrets import SecretStore

from .tasks import step_task

SLACK_TOKEN = "xoxb-test-slack-token"
SECRETS = SecretStore(
    {"BATON_SECRET_SLACK_BOT_TOKEN": SLACK_TOKEN, "BATON_SECRET_SMTP_PASSWORD": "mail-pass-123"}
)


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(SLACK_TOKEN) as server:
        yield server


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as c:
        yield c


def slack_action(
    client: httpx.AsyncClient, slack: FakeSlack, token_secret: str = "SLACK_BOT_TOKEN"
) -> SlackAction:
    guard = OutboundGuard(NetworkPolicy(["127.0.0.1/32"]), CircuitBreaker())
    return SlackAction(
        client, api_url=f"{slack.url}/api", token_secret=token_secret, secrets=SECRETS, guard=guard
    )


async def test_a_message_is_posted_with_block_kit(
    client: httpx.AsyncClient, slack: FakeSlack
) -> None:
    output = await slack_action(client, slack)(
        step_task(
            {
                "channel": "C0SECOPS",
                "text": "Contained host *ws-17*",
                "fields": {"Run": "r-1", "Score": 9},
            },
            action="notify.slack",
        )
    )

    assert output == {"ok": True, "channel": "C0SECOPS", "ts": "1700000001.000100"}
    [posted] = slack.posted
    assert posted["text"] == "Contained host *ws-17*"
    assert posted["blocks"] == [
        {"type": "section", "text": {"type": "mrkdwn", "text": "Contained host *ws-17*"}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": "*Run*\nr-1"},
                {"type": "mrkdwn", "text": "*Score*\n9"},
            ],
        },
    ]


async def test_given_blocks_are_sent_as_they_are(
    client: httpx.AsyncClient, slack: FakeSlack
) -> None:
    blocks: list[JsonValue] = [{"type": "divider"}]
    await slack_action(client, slack)(
        step_task(
            {"channel": "C1", "text": "t", "blocks": blocks, "thread_ts": "1.2"},
            action="notify.slack",
        )
    )

    assert slack.posted[0]["blocks"] == blocks
    assert slack.posted[0]["thread_ts"] == "1.2"


async def test_slack_error_codes_are_classified(
    client: httpx.AsyncClient, slack: FakeSlack
) -> None:
    with pytest.raises(PermanentError) as raised:
        await slack_action(client, slack)(
            step_task({"channel": "", "text": "t"}, action="notify.slack")
        )
    assert raised.value.error_type == "InvalidInput"

    slack.token = "xoxb-rotated"
    with pytest.raises(PermanentError) as raised:
        await slack_action(client, slack)(
            step_task({"channel": "C1", "text": "t"}, action="notify.slack")
        )
    assert raised.value.error_type == "slack_invalid_auth"
    assert SLACK_TOKEN not in raised.value.message


async def test_slack_rate_limits_are_retryable(client: httpx.AsyncClient, slack: FakeSlack) -> None:
    async def limited(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            429, headers={"Retry-After": "30"}, json={"ok": False, "error": "ratelimited"}
        )

    async with httpx.AsyncClient(transport=httpx.MockTransport(limited)) as mocked:
        action = SlackAction(
            mocked,
            api_url="https://slack.example/api",
            token_secret="SLACK_BOT_TOKEN",
            secrets=SECRETS,
        )
        with pytest.raises(RetryableError) as raised:
            await action(step_task({"channel": "C1", "text": "t"}, action="notify.slack"))

    assert raised.value.retry_after_seconds == 30


async def test_a_missing_token_fails_permanently(
    client: httpx.AsyncClient, slack: FakeSlack
) -> None:
    with pytest.raises(PermanentError) as raised:
        await slack_action(client, slack, token_secret="NOPE")(
            step_task({"channel": "C1", "text": "t"}, action="notify.slack")
        )
    assert raised.value.error_type == "SecretNotFound"


@dataclass
class Mailbox:
    """An aiosmtpd handler that keeps every message and can refuse recipients."""

    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    busy: bool = False

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.busy:
            return "451 4.3.0 try again later"
        assert envelope.mail_from is not None
        assert envelope.content is not None
        content = (
            envelope.content if isinstance(envelope.content, bytes) else envelope.content.encode()
        )
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), content))
        return "250 Message accepted for delivery"


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


def email_action(port: int) -> EmailAction:
    settings = SmtpSettings(
        host="127.0.0.1", port=port, starttls=False, sender="baton@corp.example"
    )
    return EmailAction(settings, SECRETS)


async def test_an_email_is_delivered_over_smtp(mailbox: tuple[Mailbox, int]) -> None:
    box, port = mailbox
    task = step_task(
        {
            "to": "oncall@corp.example",
            "cc": ["lead@corp.example"],
            "subject": "Host contained",
            "text": "ws-17 was isolated.",
            "html": "<p>ws-17 was <b>isolated</b>.</p>",
        },
        action="notify.email",
    )

    output = await email_action(port)(task)

    assert output == {
        "message_id": f"<{task.attempt_id}@baton>",
        "accepted": ["oncall@corp.example", "lead@corp.example"],
    }
    [(sender, recipients, raw)] = box.messages
    assert sender == "baton@corp.example"
    assert recipients == ["oncall@corp.example", "lead@corp.example"]
    message: Any = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["Subject"] == "Host contained"
    assert message["Message-ID"] == f"<{task.attempt_id}@baton>"
    assert message.get_body(("plain",)).get_content().strip() == "ws-17 was isolated."
    assert "<b>isolated</b>" in message.get_body(("html",)).get_content()


async def test_refused_recipients_are_permanent(mailbox: tuple[Mailbox, int]) -> None:
    box, port = mailbox
    box.refuse = {"ghost@corp.example"}

    with pytest.raises(PermanentError) as raised:
        await email_action(port)(
            step_task(
                {"to": "ghost@corp.example", "subject": "s", "text": "t"}, action="notify.email"
            )
        )
    assert raised.value.error_type == "SmtpRecipientsRefused"


async def test_a_temporary_smtp_failure_is_retryable(mailbox: tuple[Mailbox, int]) -> None:
    box, port = mailbox
    box.busy = True

    with pytest.raises(RetryableError) as raised:
        await email_action(port)(
            step_task({"to": "a@corp.example", "subject": "s", "text": "t"}, action="notify.email")
        )
    assert raised.value.error_type == "smtp_451"


async def test_an_unreachable_server_is_retryable() -> None:
    with pytest.raises(RetryableError):
        await email_action(free_port())(
            step_task({"to": "a@corp.example", "subject": "s", "text": "t"}, action="notify.email")
        )


@pytest.mark.parametrize(
    "input",
    [
        {"to": [], "subject": "s", "text": "t"},
        {"to": "not-an-address", "subject": "s", "text": "t"},
        {"to": "a@corp.example\r\nBcc: x@evil.example", "subject": "s", "text": "t"},
        {"to": "a@corp.example", "subject": "s\r\nBcc: x@evil.example", "text": "t"},
    ],
)
async def test_bad_addresses_and_header_injection_are_refused(input: dict[str, JsonValue]) -> None:
    with pytest.raises(PermanentError) as raised:
        await email_action(free_port())(step_task(input, action="notify.email"))
    assert raised.value.error_type == "InvalidInput"
