"""The agent table: built-in agents plus ``[agents.NAME]`` from config.toml."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import ConfigError, did_you_mean
from .files import AgentConfig

PROMPT_TOKEN = "{prompt}"

BUILTIN_AGENTS: dict[str, AgentConfig] = {
    "claude": AgentConfig(
        command=["claude", "--dangerously-skip-permissions", PROMPT_TOKEN],
        headless_command=["claude", "--print", "--dangerously-skip-permissions", PROMPT_TOKEN],
        pass_env_optional=["ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"],
    ),
    "codex": AgentConfig(
        command=["codex", "--dangerously-bypass-approvals-and-sandbox", PROMPT_TOKEN],
        headless_command=["codex", "exec", "--dangerously-bypass-approvals-and-sandbox", PROMPT_TOKEN],
        pass_env_optional=["OPENAI_API_KEY"],
    ),
    "gemini": AgentConfig(
        command=["gemini", "--yolo", "--prompt-interactive", PROMPT_TOKEN],
        headless_command=["gemini", "--yolo", "--prompt", PROMPT_TOKEN],
        pass_env_optional=["GEMINI_API_KEY", "GOOGLE_API_KEY"],
    ),
    # Prints the prompt and exits: try clauderon-nb (or a new image) without an AI agent installed.
    "echo": AgentConfig(command=["echo", PROMPT_TOKEN]),
}


def all_agents(configured: dict[str, AgentConfig]) -> dict[str, AgentConfig]:
    return {**BUILTIN_AGENTS, **configured}


def find_agent(name: str, agents: dict[str, AgentConfig], *, source: str) -> AgentConfig:
    agent = agents.get(name)
    if agent is None:
        raise ConfigError(
            f"agent {name!r} ({source}): unknown; expected one of {', '.join(sorted(agents))}"
            f"{did_you_mean(name, agents)}",
            field="agent",
        )
    return agent


def agent_command(agent: AgentConfig, has_terminal: bool) -> list[str]:
    """The interactive command where there is a terminal (containers), else the headless one if any."""
    return agent.command if has_terminal or not agent.headless_command else agent.headless_command


def render_command(command: list[str], prompt: str) -> list[str]:
    """Argv with each ``{prompt}`` replaced literally: the prompt stays inside one argument."""
    return [part.replace(PROMPT_TOKEN, prompt) for part in command]


@dataclass(frozen=True)
class AgentEnv:
    """Names of the credentials an agent gets; values are read only at create time."""

    required: tuple[str, ...]
    optional_present: tuple[str, ...]
    from_service: tuple[str, ...] = ()  # ``service_env``: the admin's, from the creating process

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.required + self.optional_present + self.from_service))


def agent_env(
    name: str, agent: AgentConfig, environ: Mapping[str, str] | None = None, *, names_only: bool = False
) -> AgentEnv:
    """Check the required variables exist (``ConfigError`` naming the first missing one).

    ``names_only``: the values arrive later (a dry run on the service): every name, nothing checked.
    """
    service = tuple(agent.service_env)
    if names_only:
        optional = tuple(v for v in agent.pass_env_optional if v not in agent.pass_env)
        return AgentEnv(required=tuple(agent.pass_env), optional_present=optional, from_service=service)
    env = os.environ if environ is None else environ
    missing = [v for v in agent.pass_env if v not in env]
    if missing:
        raise ConfigError(
            f"agent {name!r}: pass_env variable {missing[0]} is not set in your environment; "
            "set it before creating the session",
            field="agent",
        )
    present = tuple(v for v in agent.pass_env_optional if v in env and v not in agent.pass_env)
    return AgentEnv(required=tuple(agent.pass_env), optional_present=present, from_service=service)
