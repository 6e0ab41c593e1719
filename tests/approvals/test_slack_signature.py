"""Slack request signing, checked against Slack's documented example."""

from __future__ import annotations

import pytest

from baton_approvals.slack_signature import SignatureError, sign, verify

# The example of Slack's "Verifying requests from Slack" guide.
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TIMESTAMP = "1531420618"
BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
    b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
    b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2F"
    b"T1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121."
    b"803a0bc887a14d10d2c447fce8b6703c"
)
EXPECTED = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


def test_sign_matches_slacks_example() -> None:
    assert sign(SECRET, TIMESTAMP, BODY) == EXPECTED


def test_verify_accepts_within_the_window() -> None:
    verify(
        SECRET,
        timestamp=TIMESTAMP,
        signature=EXPECTED,
        body=BODY,
        now=1531420618 + 299,
        window_seconds=300,
    )


@pytest.mark.parametrize(
    ("timestamp", "signature", "now", "reason"),
    [
        (None, EXPECTED, 1531420618, "missing"),
        (TIMESTAMP, None, 1531420618, "missing"),
        ("soon", EXPECTED, 1531420618, "not a number"),
        (TIMESTAMP, EXPECTED, 1531420618 + 301, "stale request"),
        (TIMESTAMP, EXPECTED, 1531420618 - 301, "stale request"),  # from the future
        (TIMESTAMP, EXPECTED.replace("a2", "b2"), 1531420618, "signature mismatch"),
        ("1531420619", EXPECTED, 1531420618, "signature mismatch"),
    ],
)
def test_verify_refuses(
    timestamp: str | None, signature: str | None, now: float, reason: str
) -> None:
    with pytest.raises(SignatureError, match=reason):
        verify(
            SECRET, timestamp=timestamp, signature=signature, body=BODY, now=now, window_seconds=300
        )
