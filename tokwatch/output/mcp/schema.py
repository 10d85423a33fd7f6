"""The MCP tools' arguments: pydantic models whose JSON schemas are what `tools/list` shows.

Unknown arguments are refused (a misspelt `sessionId` must not be silently ignored), and the
descriptions are written for the model that calls the tools.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tokwatch.agents import all_agents

AgentName = Literal[tuple(a.name for a in all_agents())]  # type: ignore[valid-type]
GroupBy = Literal["day", "week", "month", "project", "model", "agent", "session"]


class ToolArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SessionStatusArgs(ToolArgs):
    session_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="A session id, or a unique prefix of one (list_sessions shows them). Leave it out "
        "to get the session that is calling: the most recently active session of this agent in "
        "this project.",
    )


class UsageReportArgs(ToolArgs):
    group_by: GroupBy = Field(
        default="day", description="One row per day, ISO week, month, project, model, agent or session."
    )
    since: date | None = Field(default=None, description="First day, inclusive: YYYY-MM-DD.")
    until: date | None = Field(default=None, description="Last day, inclusive: YYYY-MM-DD.")
    agent: AgentName | None = Field(default=None, description="Only this agent's sessions.")
    project: str | None = Field(
        default=None, max_length=1000, description="Only projects whose path contains this text."
    )
    top_n: int = Field(
        default=10,
        ge=1,
        le=100,
        description="At most this many rows: the latest periods, or the projects, models, agents or "
        "sessions that cost most. The totals cover all rows.",
    )

    @field_validator("since", "until", mode="before")
    @classmethod
    def _day(cls, v: Any) -> Any:
        if v is None or isinstance(v, date):
            return v
        if not isinstance(v, str):
            raise ValueError("a day as text, YYYY-MM-DD")
        try:
            return date.fromisoformat(v.strip())
        except ValueError:
            raise ValueError(f"not a day (YYYY-MM-DD): {v!r}") from None


class ListSessionsArgs(ToolArgs):
    limit: int = Field(default=10, ge=1, le=100, description="At most this many sessions, newest first.")
    agent: AgentName | None = Field(default=None, description="Only this agent's sessions.")
    project: str | None = Field(
        default=None, max_length=1000, description="Only projects whose path contains this text."
    )
    active_only: bool = Field(
        default=False, description="Only sessions with a turn in the last 30 minutes (configurable)."
    )


def input_schema(model: type[ToolArgs]) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    return schema


def argument_errors(e: ValidationError, model: type[ToolArgs]) -> str:
    """One line per bad argument, naming what the tool takes instead of pydantic's wording."""
    takes = ", ".join(model.model_fields)
    out = []
    for err in e.errors(include_url=False):
        name = ".".join(str(p) for p in err["loc"]) or "arguments"
        if err["type"] == "extra_forbidden":
            out.append(f"unknown argument {name!r} (the arguments are: {takes})")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            out.append(f"{name}: {msg}")
    return "bad arguments: " + "; ".join(out)
