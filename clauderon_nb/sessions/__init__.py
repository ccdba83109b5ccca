"""Sessions over time: the SQLite store, session workspaces and bringing their branches back,
liveness of the process doing a step, planning, the image browser, and the ``SessionManager`` every
front end calls, with one module per job (creating, listing, lifecycle, removal, branches, culling).

May import: ``backends``, ``render``, ``repos``, ``config``, ``model``, ``errors``. The store imports only
``model.session`` (no resolver, no pydantic).
"""
