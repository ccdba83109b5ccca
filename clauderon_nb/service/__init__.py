"""The clauderon service (``clauderon-nb serve``): a JupyterHub service that alone holds the
engine, identifies every caller by their hub token, and applies the admin policy server-side.

May import: ``remote``, ``sessions``, ``backends``, ``render``, ``config``, ``model``, ``errors``.
"""
