"""Image pull policy shared by the Docker and Kubernetes backends."""

from __future__ import annotations

from enum import Enum

from ..errors import did_you_mean

_ALIASES = {
    "always": "always",
    "ifnotpresent": "if-not-present",
    "missing": "if-not-present",
    "never": "never",
}
PULL_POLICY_HELP = "one of always, if-not-present, never"


class PullPolicy(str, Enum):
    """When to pull the session image.

    ``always``: pull on every create. ``if-not-present``: pull only when the
    image is missing locally. ``never``: never pull; fail if missing.
    """

    ALWAYS = "always"
    IF_NOT_PRESENT = "if-not-present"
    NEVER = "never"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, value: object, field: str = "pull_policy") -> PullPolicy:
        """Case-insensitive; takes ``IfNotPresent``, ``missing`` and friends."""
        if isinstance(value, PullPolicy):
            return value
        if not isinstance(value, str):
            raise ValueError(f"{field} of type {type(value).__name__}: expected {PULL_POLICY_HELP}")
        key = value.strip().lower().replace("-", "").replace("_", "")
        if key not in _ALIASES:
            hint = did_you_mean(value.strip().lower(), ["always", "if-not-present", "never"])
            raise ValueError(f"{field} {value!r}: expected {PULL_POLICY_HELP}{hint}")
        return cls(_ALIASES[key])

    @property
    def kubernetes(self) -> str:
        """The pod's ``imagePullPolicy`` value."""
        return {"always": "Always", "if-not-present": "IfNotPresent", "never": "Never"}[self.value]

    @property
    def docker(self) -> str:
        """The equivalent of ``docker run --pull`` (``always``/``missing``/``never``)."""
        return {"always": "always", "if-not-present": "missing", "never": "never"}[self.value]
