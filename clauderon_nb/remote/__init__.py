"""Talking to the clauderon service over HTTP: the wire format both sides share, finding the
service from a JupyterHub server, and ``RemoteManager`` — the manager the front ends use when
sessions live on the service instead of this machine.

May import: ``repos``, ``config``, ``model``, ``errors`` — never ``sessions``, ``backends`` or ``render``:
the client runs nothing but git on the user's repository and HTTP.
"""
