"""Closed sets of choices that need no pydantic to parse: the backends."""

from __future__ import annotations

from enum import Enum

from ..errors import did_you_mean


class Backend(str, Enum):
    """Where a session runs."""

    DOCKER = "docker"
    KUBERNETES = "kubernetes"
    LOCAL = "local"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, value: object, field: str = "backend") -> Backend:
        if isinstance(value, Backend):
            return value
        choices = [b.value for b in cls]
        if isinstance(value, str):
            key = value.strip().lower()
            key = {"k8s": "kubernetes", "kube": "kubernetes"}.get(key, key)
            if key in choices:
                return cls(key)
            raise ValueError(f"{field} {value!r}: expected one of {', '.join(choices)}{did_you_mean(key, choices)}")
        raise ValueError(f"{field} of type {type(value).__name__}: expected one of {', '.join(choices)}")
