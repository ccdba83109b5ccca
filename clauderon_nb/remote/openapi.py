"""The service's API as an OpenAPI 3.1 document, made from the models its requests and answers follow.

The create and plan bodies come from ``CreateSessionRequest`` itself (with the spellings the wire takes,
such as ``"1500m"`` for a CPU), the answers from the models below, which say what ``session_json``,
``error_body`` and the handlers send. Served at ``/api/v1/openapi.json``; the property-based test of
the API (schemathesis) checks the service against it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, create_model

#: The kinds of ``wire.ERRORS`` and the values of ``Status`` (``tests/test_openapi.py`` keeps them equal).
ErrorKind = Literal[
    "ValidationError",
    "ConfigError",
    "UsageError",
    "Unauthorized",
    "PolicyError",
    "Forbidden",
    "NotFound",
    "Conflict",
    "TooLarge",
    "TooManyRequests",
    "BackendError",
    "EngineUnavailable",
    "ClauderonError",
]


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorAnswer(_Answer):
    """Every failure: its kind (the client raises the same class), one line, the field it is about."""

    error: ErrorKind
    message: str
    field: str | None = None
    request_id: str | None = None


def _session_answer() -> type[_Answer]:
    """A session as the API sends it: the fields of the ``Session`` record, read from the record itself."""
    from typing import get_type_hints

    from ..model.session import Session

    fields: dict[str, Any] = {name: (hint, ...) for name, hint in get_type_hints(Session).items()}
    return create_model("SessionAnswer", __base__=_Answer, **fields)


SessionAnswer = _session_answer()


SessionsAnswer = create_model("SessionsAnswer", __base__=_Answer, sessions=(list[SessionAnswer], ...))  # type: ignore[valid-type]


class RootAnswer(_Answer):
    version: str
    api: str
    user: str
    admin: bool


class OptionsAnswer(_Answer):
    agents: list[str]
    presets: dict[str, str]
    backends: list[str]
    pull_policies: list[str]
    allowed_images: list[str]
    images: list[str]
    max_cpu: int | None
    max_memory: int | None
    bounds: list[list[str]]
    max_upload_size: int
    preset_options: dict[str, dict[str, Any]] = {}


class PlanViewAnswer(_Answer):
    name: str
    backend: str
    branch: str
    command: list[str]
    rows: list[list[str]]
    notes: list[str]
    needs_trust: bool
    image_check: str | None
    settings: dict[str, Any]
    sources: dict[str, str]
    spec: Any


class PlanAnswer(_Answer):
    plan: PlanViewAnswer
    credentials: list[str]
    has_commit: bool
    have: list[str]
    max_upload_size: int


class ImageRowAnswer(_Answer):
    name: str
    kind: str
    digest: str | None
    size: int | None
    created: str | None
    allowed: bool | None


class ImagesAnswer(_Answer):
    title: str
    rows: list[ImageRowAnswer]
    rule: str | None
    notes: list[str]


class SuggestionsAnswer(_Answer):
    images: list[str]


class DeleteAnswer(_Answer):
    message: str
    note: str | None


class CullActionAnswer(_Answer):
    id: str
    owner: str
    name: str
    action: str
    reason: str
    message: str


class CullAnswer(_Answer):
    actions: list[CullActionAnswer]
    dry_run: bool


#: Request fields the wire also takes as text ("1500m", "4294967296") or as numbers.
_NUMBERS = ("cpu_limit", "cpu_request", "memory_limit", "memory_request", "gpus")


def _request_schema(defs: dict[str, Any]) -> dict[str, Any]:
    """A create's (or plan's) JSON: the request model's fields, plus the workspace, credentials and wait."""
    from ..model.request import CreateSessionRequest

    schema = CreateSessionRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    defs.update(schema.pop("$defs", {}))
    props = dict(schema["properties"])
    for key in _NUMBERS:
        if key in props:
            props[key] = {**{k: v for k, v in props[key].items() if k != "anyOf"}, "type": ["string", "number", "null"]}
    props["workspace"] = {
        "type": "object",
        "description": "the repository as sent: the service's copy is found by key, the session starts at commit",
        "properties": {
            "key": {"type": "string"},
            "commit": {"type": "string"},
            "branch": {"type": "string"},
            "path": {"type": "string"},
            "remote": {"type": "string"},
        },
        "required": ["key", "commit"],
    }
    props["env"] = {"type": "object", "additionalProperties": {"type": "string"}, "description": "credentials"}
    props["wait"] = {"type": "boolean"}
    props["check_image"] = {"type": "boolean", "description": "/plan: also check the image"}
    props["intent"] = {"type": "string", "description": "/plan: 'create' when a create follows"}
    props["container_image"] = {"type": "string", "description": "Clauderon's name for image"}
    return {**schema, "properties": props, "additionalProperties": False}


def _ref(model: type[BaseModel], defs: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    defs.update(schema.pop("$defs", {}))
    defs[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def openapi_document(server: str) -> dict[str, Any]:
    """The API under ``server`` (the service's URL prefix plus ``api/v1``)."""
    from .._version import __version__

    defs: dict[str, Any] = {}
    error = {"description": "one line of JSON", "content": {"application/json": {"schema": _ref(ErrorAnswer, defs)}}}

    def answer(model: type[BaseModel], description: str = "the answer") -> dict[str, Any]:
        return {"description": description, "content": {"application/json": {"schema": _ref(model, defs)}}}

    def op(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {"summary": summary, "responses": {**responses, "default": error}, **extra}

    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    request = {"$ref": "#/components/schemas/CreateBody"}
    text = {"description": "text", "content": {"text/plain": {"schema": {"type": "string"}}}}
    paths: dict[str, Any] = {
        "/": {"get": op("who the service knows you as", {"200": answer(RootAnswer)})},
        "/options": {"get": op("choices and bounds for a form", {"200": answer(OptionsAnswer)})},
        "/plan": {
            "post": op(
                "a dry run of a create",
                {"200": answer(PlanAnswer)},
                requestBody={"required": True, "content": {"application/json": {"schema": request}}},
            )
        },
        "/images": {
            "get": op(
                "the image browser, or suggestions for an image field",
                {
                    "200": {
                        "description": "a listing, or suggestions",
                        "content": {
                            "application/json": {
                                "schema": {"oneOf": [_ref(ImagesAnswer, defs), _ref(SuggestionsAnswer, defs)]}
                            }
                        },
                    }
                },
                parameters=[
                    {"name": "target", "in": "query", "schema": {"type": "string"}},
                    {"name": "suggest", "in": "query", "schema": {"type": "string"}},
                    {"name": "typed", "in": "query", "schema": {"type": "string"}},
                ],
            )
        },
        "/sessions": {
            "get": op(
                "your sessions (all=1: everyone's, for admins)",
                {"200": answer(SessionsAnswer)},
                parameters=[{"name": "all", "in": "query", "schema": {"type": "string"}}],
            ),
            "post": op(
                "create a session (progress as server-sent events with Accept: text/event-stream)",
                {"201": answer(SessionAnswer, "the session")},
                requestBody={
                    "required": True,
                    "content": {
                        "application/json": {"schema": request},
                        "application/x-clauderon-create": {
                            "schema": {"type": "string", "format": "binary"},
                        },
                    },
                },
            ),
        },
        "/sessions/{name}": {
            "get": op("one session", {"200": answer(SessionAnswer)}, parameters=[name]),
            "delete": op("delete a session", {"200": answer(DeleteAnswer)}, parameters=[name]),
        },
        "/sessions/{name}/stop": {"post": op("stop a session", {"200": answer(SessionAnswer)}, parameters=[name])},
        "/sessions/{name}/start": {"post": op("start a session", {"200": answer(SessionAnswer)}, parameters=[name])},
        "/sessions/{name}/logs": {
            "get": op(
                "the agent's output (follow=1: a stream until the session ends)",
                {"200": text},
                parameters=[
                    name,
                    {"name": "tail", "in": "query", "schema": {"type": "string"}},
                    {"name": "follow", "in": "query", "schema": {"type": "string"}},
                ],
            )
        },
        "/sessions/{name}/bundle": {
            "get": op(
                "the session branch's commits beyond its base, as a git bundle",
                {
                    "200": {
                        "description": "a git bundle",
                        "content": {"application/x-git-bundle": {"schema": {"type": "string", "format": "binary"}}},
                    },
                    "204": {"description": "no commits yet"},
                },
                parameters=[name],
            )
        },
        "/cull": {
            "post": op(
                "a pass of the policy's lifetimes now (admins)",
                {"200": answer(CullAnswer)},
                parameters=[
                    {"name": "dry_run", "in": "query", "schema": {"type": "string"}},
                    {"name": "now", "in": "query", "schema": {"type": "string"}},
                ],
            )
        },
    }
    defs["CreateBody"] = _request_schema(defs)
    return {
        "openapi": "3.1.0",
        "info": {"title": "clauderon service", "version": __version__},
        "servers": [{"url": server}],
        "paths": paths,
        "components": {
            "schemas": defs,
            "securitySchemes": {"hubToken": {"type": "apiKey", "in": "header", "name": "Authorization"}},
        },
        "security": [{"hubToken": []}],
    }
