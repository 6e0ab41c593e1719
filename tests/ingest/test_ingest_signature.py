"""Webhook signatures and the secret resolver."""

from __future__ import annotations

import pytest

from baton_ingest.secrets import EnvironmentSecrets, secret_env_var
from baton_ingest.signature import SignatureCheck, sign, verify_signature

BODY = b'{"alert_id":"a-1"}'
KEY = b"s3cret"


def test_a_signature_made_with_the_key_verifies() -> None:
    assert (
        verify_signature(BODY, sign(BODY, KEY), key=KEY, prefix="sha256=") is SignatureCheck.VALID
    )


def test_uppercase_hex_is_accepted() -> None:
    provided = "sha256=" + sign(BODY, KEY, prefix="").upper()
    assert verify_signature(BODY, provided, key=KEY, prefix="sha256=") is SignatureCheck.VALID


@pytest.mark.parametrize(
    ("provided", "expected"),
    [
        (None, SignatureCheck.MISSING),
        ("  ", SignatureCheck.MISSING),
        (sign(BODY, KEY, prefix=""), SignatureCheck.WRONG_PREFIX),
        (sign(BODY, KEY, prefix="sha1="), SignatureCheck.WRONG_PREFIX),
        (sign(BODY, b"other key"), SignatureCheck.MISMATCH),
        (sign(BODY + b" ", KEY), SignatureCheck.MISMATCH),
        ("sha256=zz\u00e9", SignatureCheck.MISMATCH),
    ],
)
def test_bad_signatures_are_told_apart(provided: str | None, expected: SignatureCheck) -> None:
    assert verify_signature(BODY, provided, key=KEY, prefix="sha256=") is expected


def test_a_custom_prefix_is_part_of_the_value() -> None:
    provided = sign(BODY, KEY, prefix="v1,")
    assert verify_signature(BODY, provided, key=KEY, prefix="v1,") is SignatureCheck.VALID
    assert verify_signature(BODY, provided, key=KEY, prefix="sha256=") is (
        SignatureCheck.WRONG_PREFIX
    )


@pytest.mark.parametrize(
    ("name", "variable"),
    [
        ("EDR_WEBHOOK_SECRET", "BATON_SECRET_EDR_WEBHOOK_SECRET"),
        ("edr-webhook.key", "BATON_SECRET_EDR_WEBHOOK_KEY"),
    ],
)
def test_secret_names_map_to_environment_variables(name: str, variable: str) -> None:
    assert secret_env_var(name) == variable


def test_secrets_resolve_from_the_given_environment_only() -> None:
    secrets = EnvironmentSecrets({"BATON_SECRET_EDR_KEY": "k", "BATON_SECRET_EMPTY": ""})

    assert secrets("edr-key") == "k"
    assert secrets("missing") is None
    assert secrets("empty") is None
