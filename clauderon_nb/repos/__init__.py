"""Git on the user's repositories and the service's copies: the one way git is run (``git``: hooks,
fsmonitor and the user's config off), what a repository is (``gitrepo``), and bundles to and from the
service (``bundles``). Both the sessions on this machine and the service's client use it.

May import: ``config``, ``model``, ``errors``.
"""
