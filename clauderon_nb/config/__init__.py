"""What the user, the repository and the admin configured, and how it resolves.

TOML loading with one-line errors, the config-file schemas, the admin policy,
presets, the agent table, workspace trust, and ``resolve``: the one ordered list
of layers that turns a request into settings with their sources.

May import: ``model`` and ``errors``.
"""
