"""What an agent step declares: its tools (actions or MCP servers), budgets, and how a
tool's ``with`` takes the model's arguments (``${arg}``). See ``agent.py``."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Annotated, Final
from urllib.parse import quote

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from baton_executor.actions.mcp import McpToolSource

__all__ = ["NOT_TOOLS", "AgentInput", "AgentTool", "fill_arguments"]

NOT_TOOLS: Final = frozenset({"ai.agent", "ai.classify", "ai.extract"})
_ARG: Final = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)\}")
_TOOL_NAME = r"^[a-zA-Z][a-zA-Z0-9_-]{0,63}$"


def _no_parameters() -> dict[str, JsonValue]:
    return {"type": "object", "properties": {}}


class AgentTool(BaseModel):
    """A tool backed by one of the executor's actions."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    name: Annotated[str, Field(pattern=_TOOL_NAME)]
    description: str = ""
    action: str
    parameters: dict[str, JsonValue] = Field(default_factory=_no_parameters)
    with_: dict[str, JsonValue] = Field(default_factory=dict, alias="with")
    destructive: bool | None = Field(
        default=None, description="default: http other than GET/HEAD, and notify.*"
    )

    @model_validator(mode="after")
    def _usable(self) -> AgentTool:
        if self.action in NOT_TOOLS:
            raise ValueError(f"{self.action} cannot be an agent's tool")
        try:
            jsonschema.Draft202012Validator.check_schema(self.parameters)
        except jsonschema.SchemaError as exc:
            raise ValueError(f"parameters: not a valid JSON Schema: {exc.message}") from exc
        return self

    @property
    def is_destructive(self) -> bool:
        if self.destructive is not None:
            return self.destructive
        if self.action.startswith("notify."):
            return True
        if self.action == "http":
            return str(self.with_.get("method", "GET")).upper() not in {"GET", "HEAD"}
        return False


class AgentInput(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    goal: Annotated[str, Field(min_length=1)]
    input: JsonValue = None
    tools: Annotated[list[AgentTool | McpToolSource], Field(max_length=64)] = Field(
        default_factory=list
    )
    max_iterations: Annotated[int, Field(ge=1, le=50)] = 6
    max_tokens: Annotated[int, Field(ge=256, le=1_000_000)] = 20_000
    max_tool_calls: Annotated[int, Field(ge=1, le=500)] = 20
    time_budget_seconds: Annotated[float, Field(gt=0, le=900)] = 120.0
    provider: str | None = None
    model: str | None = None

    @model_validator(mode="after")
    def _unique_names(self) -> AgentInput:
        names = [t.name for t in self.tools if isinstance(t, AgentTool)]
        if len(names) != len(set(names)):
            raise ValueError("tool names must be unique")
        return self


def fill_arguments(
    template: JsonValue, arguments: Mapping[str, JsonValue], *, key: str = ""
) -> JsonValue:
    """Put the model's arguments into a tool's ``with``: ``"${ip}"`` keeps the argument's
    JSON type; inside longer text it is inserted as text (URL-quoted in ``url``)."""
    if isinstance(template, str):
        whole = _ARG.fullmatch(template)
        if whole is not None:
            return arguments.get(whole.group("name"))

        def text(match: re.Match[str]) -> str:
            value = arguments.get(match.group("name"))
            rendered = value if isinstance(value, str) else json.dumps(value)
            return quote(rendered, safe="") if key == "url" else rendered

        return _ARG.sub(text, template)
    if isinstance(template, list):
        return [fill_arguments(item, arguments, key=key) for item in template]
    if isinstance(template, dict):
        return {k: fill_arguments(v, arguments, key=k) for k, v in template.items()}
    return template
