"""What the operating system lets a session carry, measured rather than guessed."""

from __future__ import annotations

#: Linux passes one argument or environment string of at most 128 KiB (MAX_ARG_STRLEN, with its NUL).
MAX_ARG_BYTES = 131072
#: The prompt is both an argument and ``CLAUDERON_PROMPT=…``, so this is the most a prompt can be.
MAX_PROMPT_BYTES = MAX_ARG_BYTES - 1 - len("CLAUDERON_PROMPT=")
