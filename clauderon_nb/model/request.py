"""The one request model behind the magic, the form, the CLI and the API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from .fields import BackendName, Build, Cpu, Gpus, Identifier, Image, Memory, Policy, PresetOptions, SessionName
from .hints import CONTAINER_FIELDS, HINTS, local_backend_refusal
from .limits import MAX_ARG_BYTES, MAX_PROMPT_BYTES
from .settings_table import RESOURCE_FIELDS
from .units import human_cpu, human_memory


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


__all__ = [
    "CONTAINER_FIELDS",
    "MAX_ARG_BYTES",
    "MAX_PROMPT_BYTES",
    "RESOURCE_FIELDS",
    "CreateSessionRequest",
    "check_request_within_limit",
]


class CreateSessionRequest(BaseModel):
    """What a user asks for; ``None`` means "use the configured value".

    Values are validated and stored canonically: CPU as millicores, memory as
    bytes, the image as a full reference, the pull policy as ``PullPolicy``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=False)
    _validated: bool = PrivateAttr(default=False)  # False for model_construct(): as_request validates it

    repo: str = Field(".", description=HINTS["repo"].help)
    prompt: str = Field(..., description=HINTS["prompt"].help)
    backend: BackendName | None = Field(None, description=HINTS["backend"].help)
    agent: Identifier | None = Field(None, description=HINTS["agent"].help)
    name: SessionName | None = Field(None, description=HINTS["name"].help)
    image: Image | None = Field(None, description=HINTS["image"].help)
    build: Build | None = Field(None, description=HINTS["build"].help)
    pull_policy: Policy | None = Field(None, description=HINTS["pull_policy"].help)
    cpu_limit: Cpu | None = Field(None, description=HINTS["cpu_limit"].help)
    memory_limit: Memory | None = Field(None, description=HINTS["memory_limit"].help)
    cpu_request: Cpu | None = Field(None, description=HINTS["cpu_request"].help)
    memory_request: Memory | None = Field(None, description=HINTS["memory_request"].help)
    gpus: Gpus | None = Field(None, description=HINTS["gpus"].help)
    preset: Identifier | None = Field(None, description=HINTS["preset"].help)
    preset_options: PresetOptions | None = Field(None, description=HINTS["preset_options"].help)

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
        if not isinstance(value, str):
            raise ValueError(f"prompt of type {type(value).__name__}: expected text")
        if not value.strip():
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
        self._validated = True
        check_request_within_limit(self.explicit())
        if self.image is not None and self.build is not None:
            raise ValueError(
                f"image {self.image} and build {self.build.dockerfile_path}: give one; "
                "a build makes the session's image"
            )
        if self.backend is not None and self.backend.value == "local":
            given = [f for f in CONTAINER_FIELDS if getattr(self, f) is not None]
            if given:
                raise ValueError(local_backend_refusal(given[0]))
        return self

    def explicit(self) -> dict[str, Any]:
        """The values the caller set (not ``None``)."""
        return {k: getattr(self, k) for k in type(self).model_fields if getattr(self, k) is not None}


def as_request(request: CreateSessionRequest | None, fields: dict[str, Any]) -> CreateSessionRequest:
    """A request given as a model or as its fields by keyword (the managers' ``plan``/``create``)."""
    if request is None:
        return CreateSessionRequest(**fields)
    if fields:
        raise TypeError("pass a CreateSessionRequest or keyword fields, not both")
    if not isinstance(request, CreateSessionRequest):
        raise TypeError(f"expected a CreateSessionRequest, not {type(request).__name__}")
    if not request._validated:  # made with model_construct(): nothing of it was checked yet
        given = {k: v for k, v in request.__dict__.items() if k in CreateSessionRequest.model_fields}
        return CreateSessionRequest(**given)
    return request
