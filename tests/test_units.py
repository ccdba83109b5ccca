"""SPEC 3.3 and 3.4: every accepted and refused CPU and memory form."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clauderon_nb.model.units import (
    MIN_MEMORY,
    docker_nano_cpus,
    human_cpu,
    human_memory,
    k8s_cpu,
    k8s_memory,
    parse_cpu,
    parse_memory,
)

KI, MI, GI, TI = 1024, 1024**2, 1024**3, 1024**4


@pytest.mark.parametrize(
    ("value", "millicores"),
    [
        ("2", 2000),
        ("2.0", 2000),
        ("0.5", 500),
        ("500m", 500),
        ("1m", 1),
        ("0.001", 1),
        ("1.5", 1500),
        (" 4 ", 4000),
        (".25", 250),
        (2, 2000),
        (0.5, 500),
        (2.0, 2000),
        ("250000m", 250000),
    ],
)
def test_cpu_accepted(value: object, millicores: int) -> None:
    assert parse_cpu(value) == millicores


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("0", "greater than zero"),
        ("0m", "greater than zero"),
        (0, "greater than zero"),
        ("-1", "expected"),
        (-1, "greater than zero"),
        (-0.5, "greater than zero"),
        (math.nan, "finite"),
        (math.inf, "finite"),
        ("nan", "expected"),
        ("inf", "expected"),
        ("1e3", "exponent"),
        ("2E0", "exponent"),
        ("1e-3", "exponent"),
        ("0.0005", "finer than 1m"),
        ("1.5m", "whole number"),
        ("2k", "unknown unit 'k'"),
        ("2 cores", "expected"),
        ("500M", "unknown unit 'M'"),
        ("", "empty"),
        ("   ", "empty"),
        (True, "expected"),
        (None, "type NoneType"),
        ("+2", "expected"),
        ("2;rm", "expected"),
    ],
)
def test_cpu_refused(value: object, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as exc:
        parse_cpu(value, "cpu_limit")
    message = str(exc.value)
    assert message.startswith("cpu_limit")
    assert "\n" not in message


@pytest.mark.parametrize(
    ("value", "num_bytes"),
    [
        (8 * MI, 8 * MI),
        (str(8 * MI), 8 * MI),
        ("512m", 512 * MI),
        ("512M", 512 * MI),
        ("512mb", 512 * MI),
        ("512MB", 512 * MI),
        ("512Mi", 512 * MI),
        ("512mi", 512 * MI),
        ("512MiB", 512 * MI),
        ("512mib", 512 * MI),
        ("2g", 2 * GI),
        ("2G", 2 * GI),
        ("2gb", 2 * GI),
        ("2Gi", 2 * GI),
        ("2gib", 2 * GI),
        ("1t", TI),
        ("1tb", TI),
        ("1Ti", TI),
        ("1tib", TI),
        ("8192k", 8 * MI),
        ("8192kb", 8 * MI),
        ("8192Ki", 8 * MI),
        ("8192kib", 8 * MI),
        (f"{8 * MI}b", 8 * MI),
        (f"{8 * MI}B", 8 * MI),
        ("1.5g", 1536 * MI),
        ("4 GiB", 4 * GI),
        (" 4g ", 4 * GI),
        (float(8 * MI), 8 * MI),
        ("6m", MIN_MEMORY),
    ],
)
def test_memory_accepted(value: object, num_bytes: int) -> None:
    assert parse_memory(value) == num_bytes


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("0", "greater than zero"),
        (0, "greater than zero"),
        ("-1g", "expected"),
        (-5, "greater than zero"),
        (math.nan, "whole number"),
        (math.inf, "whole number"),
        ("2x", "unknown unit 'x'"),
        ("2p", "unknown unit 'p'"),
        ("2pb", "unknown unit 'pb'"),
        ("2gig", "unknown unit 'gig'"),
        ("1e9", "exponent"),
        ("5m", "minimum of 6MiB"),
        ("1k", "minimum of 6MiB"),
        ("1000", "minimum of 6MiB"),
        ("1.5", "whole number"),
        ("", "empty"),
        (True, "expected"),
        (None, "type NoneType"),
        ("4g;ls", "expected"),
        ("99999999999t", "too large"),
    ],
)
def test_memory_refused(value: object, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as exc:
        parse_memory(value, "memory_limit")
    message = str(exc.value)
    assert message.startswith("memory_limit")
    assert "\n" not in message


def test_memory_error_example_from_issue() -> None:
    with pytest.raises(ValueError) as exc:
        parse_memory("2x", "memory_limit")
    assert str(exc.value).startswith(
        "memory_limit '2x': unknown unit 'x'; expected bytes or a number with a unit such as 512m, 2g, 4Gi"
    )


@pytest.mark.parametrize(
    ("millicores", "docker", "k8s", "human"),
    [
        (500, 500_000_000, "500m", "500m"),
        (2000, 2_000_000_000, "2", "2 cores"),
        (1000, 1_000_000_000, "1", "1 core"),
        (1500, 1_500_000_000, "1500m", "1500m"),
        (1, 1_000_000, "1m", "1m"),
    ],
)
def test_cpu_renderings(millicores: int, docker: int, k8s: str, human: str) -> None:
    assert docker_nano_cpus(millicores) == docker
    assert k8s_cpu(millicores) == k8s
    assert human_cpu(millicores) == human


@pytest.mark.parametrize(
    ("num_bytes", "k8s", "human"),
    [
        (4 * GI, "4Gi", "4g"),
        (512 * MI, "512Mi", "512m"),
        (1536 * MI, "1536Mi", "1536m"),
        (2 * TI, "2Ti", "2t"),
        (6 * MI + KI, "6145Ki", "6145k"),
        (6 * MI + 1, str(6 * MI + 1), str(6 * MI + 1)),
    ],
)
def test_memory_renderings(num_bytes: int, k8s: str, human: str) -> None:
    assert k8s_memory(num_bytes) == k8s
    assert human_memory(num_bytes) == human


@given(st.text(max_size=30))
def test_cpu_arbitrary_text_raises_only_value_error(text: str) -> None:
    try:
        result = parse_cpu(text)
    except ValueError:
        return
    assert isinstance(result, int)
    assert result > 0


@given(st.text(max_size=30))
def test_memory_arbitrary_text_raises_only_value_error(text: str) -> None:
    try:
        result = parse_memory(text)
    except ValueError:
        return
    assert isinstance(result, int)
    assert result >= MIN_MEMORY


@given(st.one_of(st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none()))
def test_non_text_inputs_raise_only_value_error(value: object) -> None:
    for parse in (parse_cpu, parse_memory):
        try:
            result = parse(value)
        except ValueError as exc:
            assert "\n" not in str(exc)  # noqa: PT017 - a property test: no raises() to wrap
            continue
        # accepted: a positive whole number, and only for a finite, positive, non-bool number
        assert isinstance(result, int) and result > 0
        assert isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


@given(st.integers(min_value=1, max_value=10**9))
def test_cpu_render_reparse_roundtrip(millicores: int) -> None:
    assert parse_cpu(k8s_cpu(millicores)) == millicores
    assert parse_cpu(human_cpu(millicores).replace(" cores", "").replace(" core", "")) == millicores
    assert docker_nano_cpus(millicores) == millicores * 1_000_000


@given(st.integers(min_value=MIN_MEMORY, max_value=2**62))
def test_memory_render_reparse_roundtrip(num_bytes: int) -> None:
    assert parse_memory(k8s_memory(num_bytes)) == num_bytes
    assert parse_memory(human_memory(num_bytes)) == num_bytes
