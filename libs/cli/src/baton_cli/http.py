"""Calls to the services' HTTP APIs, with errors turned into readable CLI messages.

Every call carries ``BATON_TOKEN`` as a bearer token (ADR 0900); a 401 or 403 is told
as what the user can do about it.
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["ApiError", "auth_headers", "explain", "request"]


class ApiError(Exception):
    """An API call failed; the message is what the user should read."""


def auth_headers(token: str | None) -> dict[str, str]:
    """The ``Authorization`` header for ``token``, or none without a token."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text
    return str(body.get("detail", response.text)) if isinstance(body, dict) else response.text


def explain(method: str, url: str, response: httpx.Response) -> str:
    """The message for a failed answer; 401 and 403 say what to do about them."""
    detail = _detail(response)
    if response.status_code == 401:
        return (
            f"{method} {url}: not authenticated (HTTP 401): {detail}. "
            "Set BATON_TOKEN to your token (with `make up`: export BATON_TOKEN=dev-admin)"
        )
    if response.status_code == 403:
        return f"{method} {url}: not allowed (HTTP 403): {detail}"
    return f"{method} {url}: HTTP {response.status_code}: {detail}"


def request(
    method: str,
    url: str,
    *,
    token: str | None = None,
    json: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
) -> Any:
    """Call an API and return its JSON body.

    Raises:
        ApiError: for connection failures and non-2xx answers, with the server's reason.
    """
    try:
        response = httpx.request(
            method, url, headers=auth_headers(token), json=json, params=params, timeout=30
        )
    except httpx.HTTPError as exc:
        raise ApiError(f"cannot reach {url}: {exc}") from exc
    if response.is_error:
        raise ApiError(explain(method, url, response))
    return response.json()
