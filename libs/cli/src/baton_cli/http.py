"""Calls to the services' HTTP APIs, with errors turned into readable CLI messages."""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["ApiError", "request"]


class ApiError(Exception):
    """An API call failed; the message is what the user should read."""


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
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.request(method, url, headers=headers, json=json, params=params, timeout=30)
    except httpx.HTTPError as exc:
        raise ApiError(f"cannot reach {url}: {exc}") from exc
    if response.is_error:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise ApiError(f"{method} {url}: HTTP {response.status_code}: {detail}")
    return response.json()
