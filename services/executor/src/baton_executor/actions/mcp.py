"""MCP servers as tool sources: the ``mcp`` package client over stdio or streamable HTTP.

Servers are configured on the executor by name (``BATON_EXECUTOR_MCP_SERVERS``): a story
can only pick one, never name a command to launch or an arbitrary URL. ``mcp.call`` runs
one tool of a configured server (how a story performs an agent's approved proposal);
``ai.agent`` lists and calls servers' tools in its loop (``McpToolbox``).

A tool counts as destructive unless its server marks it ``readOnlyHint: true`` (the MCP
default for ``destructiveHint`` is true), or the step lists it as ``read_only``; a step can
always force ``destructive``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Annotated, Final

from mcp import Client, StdioServerParameters
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, model_validator

from baton_common.records import StepTask
from baton_executor.actions.http import describe
from baton_executor.errors import PermanentError, RetryableError

__all__ = [
    "McpCallAction",
    "McpServerSettings",
    "McpServers",
    "McpToolSource",
    "McpToolbox",
    "result_text",
]

_RESULT_CHARS: Final = 8000


class McpServerSettings(BaseModel):
    """One MCP server: a streamable HTTP ``url`` or a stdio ``command``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str | None = None
    command: list[str] | None = Field(default=None, min_length=1)
    env: dict[str, str] = Field(default_factory=dict)
    timeout_seconds: float = Field(60.0, gt=0)

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerSettings:
        if (self.url is None) == (self.command is None):
            raise ValueError("give exactly one of `url` or `command`")
        return self


class McpServers:
    """The configured servers; ``connect`` opens a client session."""

    def __init__(self, servers: Mapping[str, McpServerSettings]) -> None:
        self._servers = dict(servers)

    def settings(self, name: str) -> McpServerSettings:
        found = self._servers.get(name)
        if found is None:
            known = ", ".join(sorted(self._servers)) or "none"
            raise PermanentError(
                f"no MCP server {name!r} is configured on this executor (configured: {known})",
                error_type="UnknownMcpServer",
            )
        return found

    async def connect(self, name: str, stack: AsyncExitStack) -> Client:
        settings = self.settings(name)
        target: str | StdioServerParameters
        if settings.url is not None:
            target = settings.url
        else:
            assert settings.command is not None
            command, *args = settings.command
            target = StdioServerParameters(
                command=sys.executable if command == "python" else command,
                args=args,
                env=settings.env or None,
            )
        try:
            return await stack.enter_async_context(
                Client(target, read_timeout_seconds=settings.timeout_seconds)
            )
        except Exception as exc:
            raise RetryableError(
                f"MCP server {name!r} unavailable: {type(exc).__name__}: {exc}",
                error_type="McpUnavailable",
            ) from None


def result_text(result: object) -> tuple[str, bool]:
    """The text of a ``CallToolResult`` and whether it reports an error."""
    structured = getattr(result, "structured_content", None)
    parts = [str(getattr(c, "text", "")) for c in getattr(result, "content", None) or []]
    text = "\n".join(p for p in parts if p) or (json.dumps(structured) if structured else "")
    return text[:_RESULT_CHARS], bool(getattr(result, "is_error", False))


class McpCallInput(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    server: Annotated[str, Field(min_length=1)]
    tool: Annotated[str, Field(min_length=1)]
    arguments: dict[str, JsonValue] = Field(default_factory=dict)


class McpCallAction:
    """``mcp.call``: one tool call on a configured server. Output ``{"text", "structured"}``."""

    def __init__(self, servers: McpServers) -> None:
        self._servers = servers

    async def __call__(self, task: StepTask) -> JsonValue:
        try:
            spec = McpCallInput.model_validate(task.input)
        except ValidationError as exc:
            raise PermanentError(
                f"invalid input: {describe(exc)}", error_type="InvalidInput"
            ) from None
        async with AsyncExitStack() as stack:
            client = await self._servers.connect(spec.server, stack)
            try:
                result = await client.call_tool(spec.tool, dict(spec.arguments))
            except Exception as exc:
                raise RetryableError(
                    f"MCP {spec.server}/{spec.tool}: {type(exc).__name__}: {exc}",
                    error_type="McpError",
                ) from None
        text, is_error = result_text(result)
        if is_error:
            raise PermanentError(
                f"MCP {spec.server}/{spec.tool} failed: {text}", error_type="McpToolError"
            )
        structured = getattr(result, "structured_content", None)
        return {
            "text": text,
            "structured": json.loads(json.dumps(structured)) if structured else None,
        }


class McpToolSource(BaseModel):
    """An agent tool entry naming an MCP server: ``{mcp: edr, tools: [...], read_only: [...]}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mcp: Annotated[str, Field(min_length=1, description="a configured MCP server's name")]
    tools: list[str] | None = Field(default=None, description="offer only these (default all)")
    read_only: list[str] = Field(default_factory=list)
    destructive: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class McpTool:
    """One server tool as the agent sees it (``<server>__<tool>``)."""

    server: str
    tool: str
    description: str
    parameters: dict[str, JsonValue]
    destructive: bool
    client: Client

    @property
    def name(self) -> str:
        return f"{self.server}__{self.tool}"


class McpToolbox:
    """Opens the step's MCP servers for the loop's duration and lists their tools."""

    def __init__(self, servers: McpServers) -> None:
        self._servers = servers

    async def open(self, sources: list[McpToolSource], stack: AsyncExitStack) -> list[McpTool]:
        found: list[McpTool] = []
        for source in sources:
            client = await self._servers.connect(source.mcp, stack)
            try:
                listed = await client.list_tools()
            except Exception as exc:
                raise RetryableError(
                    f"MCP server {source.mcp!r}: listing tools failed: {type(exc).__name__}: {exc}",
                    error_type="McpError",
                ) from None
            for tool in listed.tools:
                if source.tools is not None and tool.name not in source.tools:
                    continue
                read_only = bool(tool.annotations and tool.annotations.read_only_hint)
                destructive = tool.name in source.destructive or not (
                    read_only or tool.name in source.read_only
                )
                schema: dict[str, JsonValue] = json.loads(json.dumps(tool.input_schema))
                found.append(
                    McpTool(
                        source.mcp, tool.name, tool.description or "", schema, destructive, client
                    )
                )
        return found

    @staticmethod
    async def call(tool: McpTool, arguments: dict[str, JsonValue]) -> str:
        try:
            result = await tool.client.call_tool(tool.tool, dict(arguments))
        except Exception as exc:
            return f"error: {type(exc).__name__}: {exc}"
        text, is_error = result_text(result)
        return f"error: {text}" if is_error else text
