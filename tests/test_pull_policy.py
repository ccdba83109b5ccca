"""SPEC 3.2: pull policy values, aliases, per-backend meanings."""

from __future__ import annotations

import pytest

from clauderon_nb import CreateSessionRequest, PullPolicy


@pytest.mark.parametrize(
    ("text", "policy"),
    [
        ("always", PullPolicy.ALWAYS),
        ("Always", PullPolicy.ALWAYS),
        ("ALWAYS", PullPolicy.ALWAYS),
        ("if-not-present", PullPolicy.IF_NOT_PRESENT),
        ("IfNotPresent", PullPolicy.IF_NOT_PRESENT),
        ("ifnotpresent", PullPolicy.IF_NOT_PRESENT),
        ("if_not_present", PullPolicy.IF_NOT_PRESENT),
        ("missing", PullPolicy.IF_NOT_PRESENT),
        ("never", PullPolicy.NEVER),
        ("Never", PullPolicy.NEVER),
    ],
)
def test_aliases(text: str, policy: PullPolicy) -> None:
    assert PullPolicy.parse(text) is policy


@pytest.mark.parametrize("bad", ["", "sometimes", "pull", "alway", None, 1])
def test_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="pull_policy") as exc:
        PullPolicy.parse(bad)
    assert "always, if-not-present, never" in str(exc.value)


def test_did_you_mean() -> None:
    with pytest.raises(ValueError, match="did you mean 'always'"):
        PullPolicy.parse("alway")


def test_backend_meanings() -> None:
    assert [p.kubernetes for p in PullPolicy] == ["Always", "IfNotPresent", "Never"]
    assert [p.docker for p in PullPolicy] == ["always", "missing", "never"]
    assert str(PullPolicy.IF_NOT_PRESENT) == "if-not-present"


def test_none_means_configured_and_empty_is_refused() -> None:
    assert CreateSessionRequest(prompt="x", pull_policy=None).pull_policy is None
    with pytest.raises(ValueError, match="pull_policy ''"):
        CreateSessionRequest(prompt="x", pull_policy="")
