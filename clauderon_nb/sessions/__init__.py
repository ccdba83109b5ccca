"""Sessions over time: the SQLite store, git worktrees, liveness of the process doing a
step, and the ``SessionManager`` every front end calls.

May import: ``backends``, ``render``, ``config``, ``model``, ``errors``. The store imports only
``model.session`` (no resolver, no pydantic).
"""
