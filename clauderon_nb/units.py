"""Public path of the CPU and memory parsers (``clauderon_nb.units.parse_cpu``); they live in ``model.units``."""

from .model.units import *  # noqa: F403
from .model.units import __all__ as __all__
