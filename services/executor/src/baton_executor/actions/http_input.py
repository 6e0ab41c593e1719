"""The input of an ``http`` step: its model, and a shorter road to it for the usual shape.

:func:`parse_input` is ``HttpInput.model_validate`` with the same result (a test checks
them against each other on generated inputs): inputs holding only ``url``, ``method``,
``headers``, ``query`` and ``json``, with plain values, are checked here and built
without pydantic's validation, about a fifth of the cost (ADR 0320); every other input,
and every input with a problem, goes through the model, whose errors say what is wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, Final, Literal, cast

import yarl
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    field_validator,
    model_validator,
)

from baton_common.trusted import assembled
from baton_executor.actions.outbound import DEFAULT_RETRYABLE

__all__ = [
    "METHODS",
    "Cursor",
    "HttpInput",
    "Paginate",
    "Scalar",
    "as_text",
    "describe",
    "parse_input",
]

METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
MAX_PAGES: Final = 100

Scalar = str | int | float | bool
Status = Annotated[int, Field(ge=100, le=599)]


def as_text(value: Scalar) -> str:
    """A header, query or form value as text (booleans as ``true``/``false``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Cursor(BaseModel):
    """Cursor pagination: read ``path`` of each page's body, send it as query ``param``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: Annotated[str, Field(min_length=1, description="dotted path, e.g. meta.next_cursor")]
    param: Annotated[str, Field(min_length=1)]


class Paginate(BaseModel):
    """How to find the next page; exactly one of ``next: link`` or ``cursor``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    next: Literal["link"] | None = None
    cursor: Cursor | None = None
    items: str | None = Field(default=None, description="dotted path of each page's list")
    max_pages: Annotated[int, Field(ge=1, le=MAX_PAGES)] = 10

    @model_validator(mode="after")
    def _one_way(self) -> Paginate:
        if (self.next is None) == (self.cursor is None):
            raise ValueError("give exactly one of `next: link` or `cursor`")
        return self


class HttpInput(BaseModel):
    """The validated input of an ``http`` step."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    url: str
    method: str = "GET"
    headers: dict[str, Scalar] = Field(default_factory=dict)
    query: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict)
    json_body: JsonValue = Field(default=None, alias="json")
    form: dict[str, Scalar | list[Scalar]] | None = None
    body: str | None = None
    content_type: str | None = None
    timeout: Annotated[float, Field(gt=0)] = 30.0
    expect_status: list[Status] | None = None
    retry_on_status: list[Status] | None = None
    paginate: Paginate | None = None

    @field_validator("url")
    @classmethod
    def _absolute_http_url(cls, value: str) -> str:
        try:
            absolute = _absolute_http(value)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"not a valid URL: {exc}") from exc
        if not absolute:
            raise ValueError("must be an absolute http:// or https:// URL")
        return value

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        method = value.upper()
        if method not in METHODS:
            raise ValueError(f"must be one of {', '.join(sorted(METHODS))}")
        return method

    @model_validator(mode="after")
    def _one_body(self) -> HttpInput:
        given = [
            n
            for n, present in (
                ("json", self.has_json),
                ("form", self.form is not None),
                ("body", self.body is not None),
            )
            if present
        ]
        if len(given) > 1:
            raise ValueError(f"give one body, not {' and '.join(f'`{n}`' for n in given)}")
        if self.content_type is not None and self.body is None:
            raise ValueError("`content_type` goes with a raw `body`")
        return self

    @property
    def has_json(self) -> bool:
        return "json_body" in self.model_fields_set

    def retryable(self) -> frozenset[int]:
        if self.retry_on_status is None and not self.expect_status:
            return DEFAULT_RETRYABLE  # the usual step: no sets built per request
        chosen = DEFAULT_RETRYABLE if self.retry_on_status is None else self.retry_on_status
        return frozenset(chosen) - frozenset(self.expect_status or ())


def describe(exc: ValidationError) -> str:
    """A validation error as ``field: problem; …``."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "input"
        parts.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def _absolute_http(url: str) -> bool:
    """Whether ``url`` is absolute http(s) with a host; yarl parses ~100 times faster than
    httpx.URL (ADR 0320). Raises ValueError for what yarl cannot parse."""
    parsed = yarl.URL(url)
    return parsed.scheme in ("http", "https") and bool(parsed.host)


_QUICK_KEYS: Final = frozenset({"url", "method", "headers", "query", "json"})
_SCALARS: Final = frozenset({str, int, float, bool})


def parse_input(value: Mapping[str, JsonValue]) -> HttpInput:
    """``HttpInput.model_validate(value)``, by the shorter road where it applies.

    Raises:
        ValidationError: as ``HttpInput.model_validate`` does.
    """
    quick = _quick(value)
    return quick if quick is not None else HttpInput.model_validate(value)


def _quick(value: Mapping[str, JsonValue]) -> HttpInput | None:
    """The model for an input of the usual shape whose values validation would keep as
    they are (``json`` is JSON already: the task's input was validated as such); None
    for anything else."""
    if type(value) is not dict or not value.keys() <= _QUICK_KEYS:
        return None
    url, method = value.get("url"), value.get("method", "GET")
    if type(url) is not str or type(method) is not str or method.upper() not in METHODS:
        return None
    try:
        if not _absolute_http(url):
            return None
    except (ValueError, TypeError):
        return None
    fields: dict[str, Any] = {"url": url, "method": method.upper()}
    for name in ("headers", "query"):
        if name in value:
            given = value[name]
            if not _plain_scalars(given, lists=name == "query"):
                return None
            assert isinstance(given, dict)
            fields[name] = {k: list(v) if type(v) is list else v for k, v in given.items()}
    if "json" in value:
        fields["json_body"] = value["json"]
    given_names = {"json_body" if name == "json" else name for name in value}
    state: dict[str, Any] = {}
    for name in _FIELD_ORDER:
        if name in fields:
            state[name] = fields[name]
        else:
            factory, default = _DEFAULTS[name]
            state[name] = factory() if factory is not None else default
    # What model_construct does with every field given, without its per-field work
    # (it looked up a missing field's default through inspect.signature, each time).
    return assembled(HttpInput, state, given_names)


def _defaults() -> dict[str, tuple[Callable[[], Any] | None, Any]]:
    """Each optional field's default factory, or its (immutable) default."""
    defaults: dict[str, tuple[Callable[[], Any] | None, Any]] = {}
    for name, field in HttpInput.model_fields.items():
        if field.is_required():
            continue
        if field.default_factory_takes_validated_data:
            raise TypeError(f"HttpInput.{name}: a default from validated data is not supported")
        factory = cast("Callable[[], Any] | None", field.default_factory)
        if factory is None and type(field.default) not in (type(None), str, int, float, bool):
            raise TypeError(f"HttpInput.{name}: a mutable default needs a factory here")
        defaults[name] = (factory, field.default)
    return defaults


_DEFAULTS: Final = _defaults()
_FIELD_ORDER: Final = tuple(HttpInput.model_fields)


def _plain_scalars(value: JsonValue, *, lists: bool) -> bool:
    """A dict of str → str/int/float/bool (or, with ``lists``, lists of them)."""
    if type(value) is not dict:
        return False
    for item in value.values():
        if type(item) is list and lists:
            if not all(type(i) in _SCALARS for i in item):
                return False
        elif type(item) not in _SCALARS:
            return False
    return True
