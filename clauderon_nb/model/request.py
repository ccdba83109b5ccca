"""The one request model behind the magic, the form, the CLI and the API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .fields import BackendName, Cpu, Identifier, Image, Memory, Policy, SessionName
from .units import CPU_HELP, MEMORY_HELP, human_cpu, human_memory

#: Fields that only make sense for a container (refused on the local backend).
CONTAINER_FIELDS = ("image", "pull_policy", "cpu_limit", "memory_limit", "cpu_request", "memory_request", "preset")
#: Linux passes one argument or environment string of at most 128 KiB (MAX_ARG_STRLEN, with its NUL); the
#: prompt is both an argument and ``CLAUDERON_PROMPT=…``, so this is the most a prompt can be (measured).
MAX_ARG_BYTES = 131072
MAX_PROMPT_BYTES = MAX_ARG_BYTES - 1 - len("CLAUDERON_PROMPT=")
#: Resource fields, in display order.
RESOURCE_FIELDS = ("cpu_limit", "memory_limit", "cpu_request", "memory_request")


def check_request_within_limit(values: dict[str, Any], origins: dict[str, str] | None = None) -> None:
    """Raise ``ValueError`` if a request exceeds its limit (both in canonical units).

    With ``origins`` (resolved settings), the message says where each value came from.
    """

    def where(key: str) -> str:
        return f" ({origins[key]})" if origins and key in origins else ""

    shows: tuple[tuple[str, Callable[[int], str]], ...] = (("cpu", human_cpu), ("memory", human_memory))
    for kind, show in shows:
        req, lim = values.get(f"{kind}_request"), values.get(f"{kind}_limit")
        if req is not None and lim is not None and req > lim:
            raise ValueError(
                f"{kind}_request {show(req)}{where(f'{kind}_request')} is above "
                f"{kind}_limit {show(lim)}{where(f'{kind}_limit')}: a request must not exceed its limit"
            )


class CreateSessionRequest(BaseModel):
    """What a user asks for; ``None`` means "use the configured value".

    Values are validated and stored canonically: CPU as millicores, memory as
    bytes, the image as a full reference, the pull policy as ``PullPolicy``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=False)

    repo: str = Field(
        ".", description="Git repository the session works on", json_schema_extra={"metavar": "PATH", "widget": "path"}
    )
    prompt: str = Field(
        ..., description="What the agent should do", json_schema_extra={"metavar": "TEXT", "widget": "textarea"}
    )
    backend: BackendName | None = Field(
        None,
        description="Where the session runs: docker, kubernetes or local",
        json_schema_extra={"metavar": "B", "widget": "choice"},
    )
    agent: Identifier | None = Field(
        None,
        description="Agent to run (claude, codex, gemini, echo, or one from config.toml)",
        json_schema_extra={"widget": "combo"},
    )
    name: SessionName | None = Field(
        None, description="Session name (a DNS label; default: from the prompt plus 4 random characters)"
    )
    image: Image | None = Field(
        None,
        description="Container image, [registry[:port]/]path[:tag][@sha256:…]",
        json_schema_extra={"advanced": True, "widget": "combo"},
    )
    pull_policy: Policy | None = Field(
        None,
        description="always, if-not-present or never",
        json_schema_extra={"advanced": True, "metavar": "POLICY", "widget": "choice"},
    )
    cpu_limit: Cpu | None = Field(
        None, description=f"CPU limit: {CPU_HELP}", json_schema_extra={"advanced": True, "metavar": "CPU"}
    )
    memory_limit: Memory | None = Field(
        None, description=f"Memory limit: {MEMORY_HELP}", json_schema_extra={"advanced": True, "metavar": "MEM"}
    )
    cpu_request: Cpu | None = Field(
        None,
        description="CPU request (Kubernetes requests; Docker cpu shares)",
        json_schema_extra={"advanced": True, "metavar": "CPU"},
    )
    memory_request: Memory | None = Field(
        None,
        description="Memory request (Kubernetes requests; Docker soft limit)",
        json_schema_extra={"advanced": True, "metavar": "MEM"},
    )
    preset: Identifier | None = Field(
        None,
        description="Resource preset: small, medium, large, or one from config.toml",
        json_schema_extra={"advanced": True, "widget": "choice"},
    )

    @field_validator("repo", mode="before")
    @classmethod
    def _repo(cls, value: Any) -> str:
        if hasattr(value, "__fspath__"):
            value = str(value)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"repo {value!r}: expected the path of a git repository")
        if "\x00" in value:
            raise ValueError("repo: contains a NUL character; expected the path of a git repository")
        return value.strip()

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompt(cls, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ValueError("prompt: must not be empty; say what the agent should do")
        if "\x00" in value:
            raise ValueError("prompt: contains a NUL character, which no process argument can carry; remove it")
        size = len(value.encode("utf-8", errors="surrogatepass"))
        if size > MAX_PROMPT_BYTES:
            raise ValueError(
                f"prompt: {size} bytes is more than the {MAX_PROMPT_BYTES} bytes one process argument can carry "
                "on Linux; put long instructions in a file in the repository and point the prompt at it"
            )
        return value

    @model_validator(mode="after")
    def _cross_field(self) -> CreateSessionRequest:
        check_request_within_limit(self.explicit())
        if self.backend is not None and self.backend.value == "local":
            given = [f for f in CONTAINER_FIELDS if getattr(self, f) is not None]
            if given:
                raise ValueError(
                    f"{given[0]} does not apply to the local backend (it runs the agent as a plain process); "
                    "use --backend docker or kubernetes"
                )
        return self

    def explicit(self) -> dict[str, Any]:
        """The values the caller set (not ``None``)."""
        return {k: getattr(self, k) for k in type(self).model_fields if getattr(self, k) is not None}
