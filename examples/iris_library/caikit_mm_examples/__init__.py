"""Example module library for caikit_mm: an iris classifier built on scikit-learn.

``IrisClassifier`` is registered under its module id when ``caikit_mm_examples.iris``
is imported; caikit_mm imports it through the ``caikit_mm.modules`` entry point when
it loads a model with that id. ``MODEL_PATH`` is a trained model shipped with the
package, written by ``python -m caikit_mm_examples.build_model``.
"""

from __future__ import annotations

import os
from typing import Final

from .iris import MODULE_ID, IrisClassifier

MODEL_PATH: Final = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "models", "iris"
)

__all__ = ["MODEL_PATH", "MODULE_ID", "IrisClassifier"]
