"""From resolved settings to what a backend is given: the backend-neutral ``SessionSpec``,
the Docker and Kubernetes renderers, and the dry-run ``Plan``.

May import: ``repos``, ``config``, ``model`` and ``errors``. Never talks to an engine.
"""
