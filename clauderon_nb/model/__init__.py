"""The vocabulary: values and the one request model, with no I/O.

Units (CPU, memory), image references, pull policy, names, secret masking, value
display, the typed UI hints per field, the pydantic field types, the
``CreateSessionRequest``, the ``Session`` record and progress events.

May import: ``clauderon_nb.errors`` and the standard library (pydantic in ``fields``/``request`` only).
"""
