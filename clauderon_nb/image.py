"""Public path of the image-reference parser (``clauderon_nb.image.parse_image``); it lives in ``model.image``."""

from .model.image import *  # noqa: F403
from .model.image import __all__ as __all__
