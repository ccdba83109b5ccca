"""The ways in: the argument parser and commands shared by the CLI and the magics, the
``clauderon-nb`` command, the IPython magics, the widgets, and result views.

May import every layer below; nothing imports it (except the package's lazy exports).
"""
