"""SPEC 3.1: the Docker image reference grammar."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clauderon_nb.model.image import ImageRef, parse_image

SHA = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("given_ref", "canonical"),
    [
        ("ubuntu", "docker.io/library/ubuntu:latest"),
        ("ubuntu:24.04", "docker.io/library/ubuntu:24.04"),
        ("library/ubuntu", "docker.io/library/ubuntu:latest"),
        ("docker.io/ubuntu", "docker.io/library/ubuntu:latest"),
        ("index.docker.io/library/ubuntu:1", "docker.io/library/ubuntu:1"),
        ("myorg/app:v1.2.3", "docker.io/myorg/app:v1.2.3"),
        ("ghcr.io/shepherdjerred/dotfiles:latest", "ghcr.io/shepherdjerred/dotfiles:latest"),
        ("ghcr.io/me/dev:1", "ghcr.io/me/dev:1"),
        ("localhost/foo", "localhost/foo:latest"),
        ("localhost:5000/foo/bar:2", "localhost:5000/foo/bar:2"),
        ("127.0.0.1:5000/clauderon/busybox:1", "127.0.0.1:5000/clauderon/busybox:1"),
        ("Registry.Example.com:443/a/b/c", "Registry.Example.com:443/a/b/c:latest"),
        ("[::1]:5000/app:1", "[::1]:5000/app:1"),
        ("a__b/c.d/e-f/g--h:T_a.g-1", "docker.io/a__b/c.d/e-f/g--h:T_a.g-1"),
        (f"ubuntu@{SHA}", f"docker.io/library/ubuntu@{SHA}"),
        (f"ubuntu:24.04@{SHA}", f"docker.io/library/ubuntu:24.04@{SHA}"),
        (f"ghcr.io/me/dev@{SHA}", f"ghcr.io/me/dev@{SHA}"),
        ("ubuntu:" + "t" * 128, "docker.io/library/ubuntu:" + "t" * 128),
        ("  ubuntu  ", "docker.io/library/ubuntu:latest"),
    ],
)
def test_accepted(given_ref: str, canonical: str) -> None:
    ref = parse_image(given_ref)
    assert str(ref) == canonical
    assert str(parse_image(str(ref))) == canonical  # canonical form is a fixed point


def test_parts() -> None:
    ref = parse_image(f"127.0.0.1:5000/team/app:1@{SHA}")
    assert ref == ImageRef(registry="127.0.0.1:5000", repository="team/app", tag="1", digest=SHA)
    assert ref.name == "127.0.0.1:5000/team/app"
    assert ref.pull_tag == SHA
    assert parse_image("ubuntu").familiar == "ubuntu:latest"
    assert parse_image("ubuntu@" + SHA).tag is None  # no :latest added to a digest-only reference


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("", "empty"),
        ("MyOrg/app", "repository path must be lowercase: 'MyOrg/app'"),
        ("Ubuntu", "must be lowercase"),
        ("ghcr.io/Me/app", "must be lowercase: 'Me/app'"),
        ("ubuntu:-bad", "tag must be at most 128"),
        ("ubuntu:.bad", "tag must be at most 128"),
        ("ubuntu:" + "t" * 129, "tag must be at most 128"),
        ("ubuntu@sha256:abc", "digest must be sha256"),
        ("ubuntu@md5:" + "a" * 32, "digest must be sha256"),
        ("ubuntu@sha256:" + "A" * 64, "digest must be sha256"),
        ("my_reg.io:5000/app", "invalid registry host 'my_reg.io:5000'"),
        ("-reg.io/app", "invalid registry host"),
        ("ghcr.io/", "repository path is empty"),
        ("app//x", "invalid path component ''"),
        ("app/-x", "invalid path component '-x'"),
        ("app/x_", "invalid path component 'x_'"),
        ("app/x___y", "invalid path component"),
        ("a" * 256, "longer than 255"),
        ("ubuntu;rm -rf /", "not allowed"),
        ("ubuntu$(id)", "not allowed"),
        ("ubuntu`id`", "not allowed"),
        ("ubuntu|cat", "not allowed"),
        ("ubuntu && ls", "not allowed"),
        ("ubu ntu", "not allowed"),
        ("ubu\nntu", "not allowed"),
        ("ubuntu'", "not allowed"),
        ("ubuntu>x", "not allowed"),
        (None, "type NoneType"),
        (5, "type int"),
    ],
)
def test_refused(bad: object, reason: str) -> None:
    with pytest.raises(ValueError, match=None) as exc:
        parse_image(bad)
    message = str(exc.value)
    assert reason in message
    assert message.startswith("image")
    assert "\n" not in message


@given(st.text(max_size=300))
def test_arbitrary_text_raises_only_value_error(text: str) -> None:
    try:
        ref = parse_image(text)
    except ValueError:
        return
    canonical = str(ref)
    assert str(parse_image(canonical)) == canonical
    assert not set(canonical) & set(" \t\n;&|$`'\"\\<>(){}*?!#")


_component = st.from_regex(r"[a-z0-9]{1,40}(?:(?:_|__|-+)[a-z0-9]{1,40}){0,2}", fullmatch=True)


@given(
    registry=st.sampled_from(["", "ghcr.io/", "127.0.0.1:5000/", "localhost/", "docker.io/"]),
    path=st.lists(_component, min_size=1, max_size=6),
    tag=st.one_of(st.none(), st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", fullmatch=True)),
    digest=st.one_of(st.none(), st.from_regex(r"sha256:[0-9a-f]{64}", fullmatch=True)),
)
def test_generated_references_roundtrip(registry: str, path: list[str], tag: str | None, digest: str | None) -> None:
    """Sizes reach past the 255-character limit: a reference is refused, or its canonical form is valid too."""
    text = registry + "/".join(path) + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
    try:
        ref = parse_image(text)
    except ValueError as exc:
        assert "longer than 255" in str(exc)  # noqa: PT017 - a property test: no raises() to wrap
        host = registry.rstrip("/") if registry not in ("", "docker.io/") else "docker.io"
        library = "library/" if host == "docker.io" and len(path) == 1 else ""
        assert len(f"{host}/{library}{'/'.join(path)}") > 255
        return
    assert len(ref.name) <= 255
    assert ref.tag == (tag or (None if digest else "latest"))
    assert ref.digest == digest
    assert parse_image(str(ref)) == ref
