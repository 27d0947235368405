"""Hugging Face transformers models, loaded from their own save format.

The TRANSFORMERS finder recognizes a folder written by ``save_pretrained``
(``config.json``, weights, tokenizer files, optionally sentence-transformers
files) and hands it to :class:`TransformersModule`, which loads it with the
transformers Auto classes from local files only. Importing this package does
not import torch or transformers; install them with the ``transformers`` extra.
"""

from ._format import FEATURE_EXTRACTION, SEQUENCE_CLASSIFICATION, TASKS, TEXT_GENERATION
from .finder import TransformersFinder
from .module import MODULE_ID, TransformersModule

__all__ = [
    "FEATURE_EXTRACTION",
    "MODULE_ID",
    "SEQUENCE_CLASSIFICATION",
    "TASKS",
    "TEXT_GENERATION",
    "TransformersFinder",
    "TransformersModule",
]
