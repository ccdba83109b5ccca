"""Sessions over time: the SQLite store, session workspaces and bringing their branches back,
bundles to and from the service, liveness of the process doing a step, and the ``SessionManager``
every front end calls.

May import: ``backends``, ``render``, ``config``, ``model``, ``errors``. The store imports only
``model.session`` (no resolver, no pydantic).
"""
