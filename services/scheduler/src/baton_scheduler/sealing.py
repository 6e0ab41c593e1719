"""One command's event and task records, written from the attributes they share.

A command's events and tasks share most envelope attributes: source, time, subject,
story id and version, causation (the command, or for a task its event), correlation,
actor and traceparent. :class:`Sealer` turns those into header bytes and canonical-JSON
content once per command and run; each event then costs its data's JSON, the hash and
its own few attributes (id, type, seq, prevhash, hash). An event's or task's data is its
model's values as they are when every value is JSON already (:func:`model_data`), not a
pydantic dump.

Everything is what the general path gives, byte for byte and field for field: the
envelope, hash and data JSON of ``hashing.sealed``, the headers of
``outbound_records.encoded`` (``encode_record``'s), and ``model_dump(mode="json")``'s
data (``tests/support/scheduler_log.py`` checks every event and task of the decider
tests against them). Data the fast path cannot vouch for (a float orjson spells
otherwise, NaN, a huge integer, a nested model) takes the general path (ADR 0170).
"""

from __future__ import annotations

import hashlib
import types
import typing
from datetime import datetime
from typing import Any, Final

import orjson
from pydantic import BaseModel

from baton_common.envelope import CONTENT_TYPE, Envelope, Header, time_text
from baton_common.hashing import plain_json, sealed
from baton_common.outbound_records import encoded
from baton_common.trusted import assembled

__all__ = ["Encoded", "Sealer", "model_data"]

Encoded = tuple[bytes, list[Header]]  # a record's value and headers

_CONTENT_TYPE: Final = ("content-type", CONTENT_TYPE.encode())
_DEFAULTS: Final = {n: f.default for n, f in Envelope.model_fields.items() if n != "data"}
_EVENT_SET: Final = frozenset(set(_DEFAULTS) - {"specversion", "datacontenttype"} | {"data"})
_TASK_SET: Final = _EVENT_SET - {"seq", "prevhash", "hash"}
_SORTED: Final = orjson.OPT_SORT_KEYS


def _plain_annotation(annotation: object) -> bool:
    """Whether a field so annotated holds, once validated, only ``str``, ``int``,
    ``bool`` or None (and lists of ``str``): values a JSON dump keeps as they are."""
    if annotation in (str, int, bool, type(None)):
        return True
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return all(type(a) in (str, int, bool) for a in args)
    if origin in (typing.Union, types.UnionType):
        return all(_plain_annotation(a) for a in args)
    return origin is list and args == (str,)


# Per model class: the fields whose values must be checked, or None when the class
# must always be dumped (aliases, serializers, computed fields).
_CHECKED: dict[type[BaseModel], tuple[str, ...] | None] = {}


def _checked_fields(cls: type[BaseModel]) -> tuple[str, ...] | None:
    if cls in _CHECKED:
        return _CHECKED[cls]
    decorators = cls.__pydantic_decorators__
    fields = cls.model_fields
    custom = (
        cls.model_computed_fields
        or decorators.field_serializers
        or decorators.model_serializers
        or any(f.alias or f.serialization_alias for f in fields.values())
    )
    found = (
        None
        if custom
        else tuple(n for n, f in fields.items() if not _plain_annotation(f.annotation))
    )
    _CHECKED[cls] = found
    return found


def model_data(model: BaseModel) -> tuple[dict[str, Any], bool]:
    """``model.model_dump(mode="json")``, and whether it is ``plain_json``.

    For a model whose fields are text, integers, booleans and JSON values, validated (or
    ``trusted`` with values validation keeps), the dump is its values as they are when the
    JSON values are plain: a shallow copy of them, without pydantic's serializer walking
    each JSON value with a Python discriminator.
    """
    cls = type(model)
    checked = _CHECKED[cls] if cls in _CHECKED else _checked_fields(cls)
    if checked is not None:
        values = model.__dict__
        for name in checked:
            value = values[name]
            if value is not None and not plain_json(value):
                break
        else:
            return dict(values), True
    data = model.model_dump(mode="json")
    return data, plain_json(data)


_TYPE_HEADERS: dict[str, Header] = {}


def _type_header(kind: str) -> Header:
    """The ``ce_type`` header of a record type (a few dozen, each encoded once)."""
    found = _TYPE_HEADERS.get(kind)
    if found is None:
        found = ("ce_type", kind.encode())
        if len(_TYPE_HEADERS) < 256:
            _TYPE_HEADERS[kind] = found
    return found


class _Shared:
    """What a command's records for one run share: envelope values, canonical content
    (all but ``id``, ``type``, ``seq``, ``prevhash``, ``hash`` and ``data``) and header
    blocks (before and after the causation id, and the traceparent)."""

    __slots__ = ("after_cause", "before_cause", "content", "traceparent", "values")

    def __init__(self, values: dict[str, Any], time_text: str, time_header: bytes) -> None:
        self.values = values
        subject, storyid, version = values["subject"], values["storyid"], values["storyversion"]
        correlationid, actor, traceparent = (
            values["correlationid"],
            values["actor"],
            values["traceparent"],
        )
        self.content = {
            "source": values["source"],
            "subject": subject,
            "time": time_text,
            "specversion": values["specversion"],
            "datacontenttype": values["datacontenttype"],
            "storyid": storyid,
            "storyversion": version,
            "causationid": values["causationid"],
            "correlationid": correlationid,
            "actor": actor,
            "traceparent": traceparent,
        }
        before: list[Header] = [
            ("ce_source", str(values["source"]).encode()),
            ("ce_subject", str(subject).encode()),
            ("ce_time", time_header),
            ("ce_specversion", str(values["specversion"]).encode()),
        ]
        if storyid is not None:
            before.append(("ce_storyid", str(storyid).encode()))
        if version is not None:
            before.append(("ce_storyversion", str(version).encode()))
        self.before_cause = before
        after: list[Header] = []
        if correlationid is not None:
            after.append(("ce_correlationid", str(correlationid).encode()))
        if actor is not None:
            after.append(("ce_actor", str(actor).encode()))
        self.after_cause = after
        self.traceparent = (
            [] if traceparent is None else [("ce_traceparent", str(traceparent).encode())]
        )


class Sealer:
    """Seals one command's events and drafts its tasks (see the module's docstring).

    ``source``, ``now`` and the command envelope's ``id``, ``actor`` and ``traceparent``
    are the attributes every record of the command shares.
    """

    def __init__(self, command: Envelope, now: datetime, source: str) -> None:
        self._command = command
        self._causation: Header = ("ce_causationid", command.id.encode())
        self._now = now
        self._source = source
        self._time_text = time_text(now)
        self._time_header = self._time_text.encode()
        self._shared: dict[tuple[object, ...], _Shared] = {}
        self._last: tuple[Envelope, _Shared] | None = None  # the last event sealed

    def _for(
        self, subject: str, storyid: str | None, storyversion: int | None, correlationid: str | None
    ) -> _Shared:
        key = (subject, storyid, storyversion, correlationid)
        found = self._shared.get(key)
        if found is None:
            command = self._command
            values = dict(_DEFAULTS)
            values.update(
                source=self._source,
                subject=subject,
                time=self._now,
                storyid=storyid,
                storyversion=storyversion,
                causationid=command.id,
                correlationid=correlationid,
                actor=command.actor,
                traceparent=command.traceparent,
            )
            found = self._shared[key] = _Shared(values, self._time_text, self._time_header)
        return found

    def event(
        self,
        event: BaseModel,
        *,
        id: str,
        subject: str,
        storyid: str | None,
        storyversion: int | None,
        correlationid: str | None,
        seq: int | None,
        prevhash: str | None,
    ) -> tuple[Envelope, Encoded]:
        """The event's envelope, hashed (``hashing.sealed``), and its record."""
        data, plain = model_data(event)
        shared = self._for(subject, storyid, storyversion, correlationid)
        kind = data["type"]
        if plain:
            try:
                data_json = orjson.dumps(data, option=_SORTED)
            except (orjson.JSONEncodeError, TypeError):  # an integer beyond 64 bits
                plain = False
        if not plain:
            return self._general(shared, data, id=id, type=kind, seq=seq, prevhash=prevhash)
        content = shared.content.copy()
        content["id"] = id
        content["type"] = kind
        content["seq"] = seq
        content["prevhash"] = prevhash
        content["data"] = orjson.Fragment(data_json)
        hash_ = hashlib.sha256(orjson.dumps(content, option=_SORTED)).hexdigest()
        values = shared.values.copy()
        values["id"] = id
        values["type"] = kind
        values["seq"] = seq
        values["prevhash"] = prevhash
        values["hash"] = hash_
        values["data"] = data
        envelope = assembled(Envelope, values, set(_EVENT_SET))
        self._last = (envelope, shared)
        headers = [_CONTENT_TYPE, ("ce_id", id.encode()), _type_header(kind)]
        headers += shared.before_cause
        headers.append(self._causation)
        headers += shared.after_cause
        if seq is not None:
            headers.append(("ce_seq", str(seq).encode()))
        headers += shared.traceparent
        if prevhash is not None:
            headers.append(("ce_prevhash", prevhash.encode()))
        headers.append(("ce_hash", hash_.encode()))
        return envelope, (data_json, headers)

    def _general(
        self, shared: _Shared, data: dict[str, Any], **own: Any
    ) -> tuple[Envelope, Encoded]:
        attributes = {
            n: v
            for n, v in shared.values.items()
            if n not in ("specversion", "datacontenttype", "hash")
        }
        attributes.update(own)
        envelope, value = sealed(attributes, data)
        return envelope, encoded(envelope, value)

    def task(self, payload: BaseModel, *, id: str, cause: Envelope) -> tuple[Envelope, Encoded]:
        """A task record caused by the event ``cause``: ``journal._draft``'s envelope
        (``cause``'s subject, story, correlation, actor and traceparent) and its record."""
        data, plain = model_data(payload)
        return self.task_data(data, plain, id=id, cause=cause)

    def task_data(
        self, data: dict[str, Any], plain: bool, *, id: str, cause: Envelope
    ) -> tuple[Envelope, Encoded]:
        """:meth:`task` for a payload's ``model_dump(mode="json")`` and whether it is
        ``plain_json``."""
        last = self._last
        if last is not None and last[0] is cause:  # tasks follow the event causing them
            shared = last[1]
        else:
            shared = self._for(
                cause.subject or "", cause.storyid, cause.storyversion, cause.correlationid
            )
        kind = data["type"]
        values = shared.values.copy()
        values["id"] = id
        values["type"] = kind
        values["causationid"] = cause.id
        values["data"] = data
        envelope = assembled(Envelope, values, set(_TASK_SET))
        if plain:
            try:
                value = orjson.dumps(data, option=_SORTED)
            except (orjson.JSONEncodeError, TypeError):
                plain = False
        if not plain:
            return envelope, encoded(envelope)
        headers = [_CONTENT_TYPE, ("ce_id", id.encode()), _type_header(kind)]
        headers += shared.before_cause
        headers.append(("ce_causationid", cause.id.encode()))
        headers += shared.after_cause
        headers += shared.traceparent
        return envelope, (value, headers)
