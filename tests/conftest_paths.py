"""The notebooks' set-up helper (``notebooks/clauderon_demo.py``), whose image builder the tests reuse."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "notebooks"))

import clauderon_demo

__all__ = ["clauderon_demo"]
