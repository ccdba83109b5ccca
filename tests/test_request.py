"""The one request model: fields, canonical values, one-line errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from clauderon_nb import CreateSessionRequest, PullPolicy
from clauderon_nb.errors import describe_validation_error
from clauderon_nb.model.fields import Backend

FIELDS = list(CreateSessionRequest.model_fields)


def error_line(**kwargs: object) -> str:
    with pytest.raises(ValidationError) as exc:
        CreateSessionRequest(**kwargs)  # type: ignore[arg-type]
    assert isinstance(exc.value, ValueError)
    line = describe_validation_error(exc.value, fields=FIELDS)
    assert "\n" not in line
    return line


def test_preset_options_take_pairs_a_table_or_repeated_flags() -> None:
    for given in ("image=r, size=large", ["image=r", "size=large"], {"image": "r", "size": "large"}):
        assert CreateSessionRequest(prompt="x", preset_options=given).preset_options == {"image": "r", "size": "large"}
    for bad, said in (
        ("image", "expected NAME=VALUE pairs"),
        (["image=r", "image=s"], "image is given twice"),
        ({"my option": "x"}, "option name 'my option'"),
        ({"image": "a\nb"}, "expected a value on one line"),
    ):
        with pytest.raises(ValidationError, match=said):
            CreateSessionRequest(prompt="x", preset_options=bad)


def test_every_create_flag_is_a_field() -> None:
    assert FIELDS == [
        "repo",
        "prompt",
        "backend",
        "agent",
        "name",
        "image",
        "build",
        "pull_policy",
        "cpu_limit",
        "memory_limit",
        "cpu_request",
        "memory_request",
        "gpus",
        "preset",
        "preset_options",
    ]


def test_canonical_values() -> None:
    req = CreateSessionRequest(
        repo=".",
        prompt="Add tests",
        backend="Docker",
        image="ghcr.io/me/dev:1",
        pull_policy="Always",
        cpu_limit="2",
        memory_limit="4g",
        cpu_request="500m",
        memory_request="1Gi",
        name="my-feature",
    )
    assert req.backend is Backend.DOCKER
    assert req.image == "ghcr.io/me/dev:1"
    assert req.pull_policy is PullPolicy.ALWAYS
    assert (req.cpu_limit, req.memory_limit) == (2000, 4 * 1024**3)
    assert (req.cpu_request, req.memory_request) == (500, 1024**3)
    assert req.name == "my-feature"
    assert req.explicit()["backend"] is Backend.DOCKER


def test_unset_means_configured() -> None:
    req = CreateSessionRequest(prompt="x")
    assert req.explicit() == {"repo": ".", "prompt": "x"}


def test_k8s_alias_and_frozen() -> None:
    req = CreateSessionRequest(prompt="x", backend="k8s")
    assert req.backend is Backend.KUBERNETES
    with pytest.raises(ValidationError):
        req.image = "ubuntu"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"prompt": "x", "memory_limit": "2x"}, "memory_limit '2x': unknown unit 'x'"),
        ({"prompt": "x", "cpu_limit": "0"}, "cpu_limit '0': must be greater than zero"),
        ({"prompt": "x", "image": "MyOrg/app"}, "image 'MyOrg/app': repository path must be lowercase: 'MyOrg/app'"),
        ({"prompt": "x", "cpu_lmit": "2"}, "unknown field 'cpu_lmit' (did you mean 'cpu_limit'?)"),
        (
            {"prompt": "x", "backend": "dockr"},
            "backend 'dockr': expected one of docker, kubernetes, local (did you mean 'docker'?)",
        ),
        (
            {"prompt": "x", "pull_policy": "sometimes"},
            "pull_policy 'sometimes': expected one of always, if-not-present, never",
        ),
        ({"prompt": "  "}, "prompt: must not be empty"),
        ({}, "prompt: required"),
        ({"prompt": "x", "repo": ""}, "repo '': expected the path of a git repository"),
        (
            {"prompt": "x", "name": "!!!"},
            "name '!!!': expected lowercase letters, digits and '-' (a DNS label of at most 40 characters)",
        ),
        ({"prompt": "x", "name": "a" * 41}, "at most 40 characters"),
        ({"prompt": "x", "agent": "my agent"}, "agent 'my agent': expected a name"),
        ({"prompt": "x", "cpu_request": "3", "cpu_limit": "2"}, "cpu_request 3 cores is above cpu_limit 2 cores"),
        ({"prompt": "x", "memory_request": "8g", "memory_limit": "4g"}, "memory_request 8g is above memory_limit 4g"),
        ({"prompt": "x", "backend": "local", "image": "ubuntu"}, "image does not apply to the local backend"),
        ({"prompt": "x", "backend": "local", "cpu_limit": "1"}, "cpu_limit does not apply to the local backend"),
    ],
)
def test_one_line_errors(kwargs: dict[str, object], expected: str) -> None:
    assert expected in error_line(**kwargs)


def test_several_errors_join_on_one_line() -> None:
    line = error_line(prompt="x", cpu_limit="-1", memory_limit="2x")
    assert line.startswith("cpu_limit '-1'")
    assert "; memory_limit '2x'" in line


def test_gpus_parse() -> None:
    from clauderon_nb.model.display import show_value

    assert CreateSessionRequest(prompt="x", gpus="2").gpus == 2
    assert CreateSessionRequest(prompt="x", gpus=0).gpus == 0
    assert show_value("gpus", CreateSessionRequest(prompt="x", gpus="ALL").gpus) == "all"
    for bad in ("-1", "two", "1.5", True, 5000):
        with pytest.raises(ValidationError, match=r"gpus .*: expected a number of GPUs \(0, 1, 2, …\) or all"):
            CreateSessionRequest(prompt="x", gpus=bad)
    with pytest.raises(ValidationError, match="gpus"):
        CreateSessionRequest(prompt="x", backend="local", gpus="1")
