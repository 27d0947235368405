"""Translate errors that transformers, safetensors and torch raise while loading.

Each translation names the file or folder and the likely fix, so a corrupt
download is not mistaken for an unsupported transformers version.
"""

from __future__ import annotations

import os
import pickle
from typing import Any

from ..errors import ModelFormatError

# Phrases of transformers errors for a model_type that the installed release does
# not know (transformers 4.x and 5.x), or for an Auto class that has no class for
# the config (a task that the model type does not support).
UNKNOWN_MODEL_TYPE_PHRASES = (
    "does not recognize this architecture",
    "Unrecognized model",
)
NO_CLASS_FOR_TASK_PHRASE = "Unrecognized configuration class"


def weight_read_errors() -> tuple[type[BaseException], ...]:
    """Return the exceptions that a corrupt or truncated weight file raises.

    safetensors raises ``SafetensorError`` for a damaged header or a file
    shorter than its header declares. ``torch.load`` raises ``UnpicklingError``
    for a ``pytorch_model.bin`` that is not a pickle.
    """
    from safetensors import SafetensorError

    return (SafetensorError, pickle.UnpicklingError)


def corrupt_weights_error(model_dir: str, exc: BaseException) -> ModelFormatError:
    """Build the error for weights in ``model_dir`` that cannot be read.

    The message names the ``.safetensors`` files whose header does not load,
    or every weight file of the folder when no header check fails.
    """
    files = unreadable_safetensors(model_dir) or weight_files(model_dir)
    return weights_error(files or [model_dir], exc)


def weights_error(files: list[str], exc: BaseException) -> ModelFormatError:
    """Build the error for the weight ``files`` that raised ``exc``."""
    names = ", ".join(repr(path) for path in files)
    return ModelFormatError(
        f"Cannot read the weights in {names}: {_sentence(exc)}. The weights are "
        "corrupt or incomplete, as after an interrupted download or copy. Copy "
        "or download them again, or save the model again with save_pretrained.",
        path=files[0],
    )


def unreadable_safetensors(model_dir: str) -> list[str]:
    """Return the ``.safetensors`` files in ``model_dir`` whose header fails to load.

    Opening a file reads only its header and checks that the file is as long as
    the header declares, so this does not read the tensors.
    """
    from safetensors import SafetensorError, safe_open

    bad = []
    for path in weight_files(model_dir):
        if not path.endswith(".safetensors"):
            continue
        try:
            with safe_open(path, framework="pt"):
                pass
        except (SafetensorError, OSError):
            bad.append(path)
    return bad


def weight_files(model_dir: str) -> list[str]:
    """Return the paths of the weight files in ``model_dir``, sorted."""
    return [
        os.path.join(model_dir, name)
        for name in sorted(os.listdir(model_dir))
        if name.endswith(".safetensors") or name.endswith(".bin")
    ]


def load_error(
    transformers: Any,
    model_dir: str,
    auto_class_name: str,
    task: str,
    model_type: str,
    exc: BaseException,
) -> ModelFormatError:
    """Build the error for the Auto class ``auto_class_name`` failing on ``model_dir``.

    The advice depends on the cause: an unknown ``model_type`` points to the
    transformers version, an Auto class without a class for the config points
    to another task, and anything else points to the folder's files.
    """
    text = str(exc)
    if isinstance(exc, KeyError) or any(
        phrase in text for phrase in UNKNOWN_MODEL_TYPE_PHRASES
    ):
        advice = (
            f"transformers {transformers.__version__} may not know model_type "
            f"{model_type!r}: upgrade transformers to a release that supports it."
        )
    elif NO_CLASS_FOR_TASK_PHRASE in text:
        advice = (
            f"{auto_class_name} has no class for model_type {model_type!r}: load "
            "the model for another task with task=..., or map it to another task "
            "under task_map in the finder's config."
        )
    else:
        advice = (
            "Check that the folder's files are complete and valid, or save the "
            "model again with save_pretrained."
        )
    return ModelFormatError(
        f"transformers {transformers.__version__} cannot load {model_dir!r} with "
        f"{auto_class_name} for {task}: {_sentence(exc)}. {advice}",
        path=model_dir,
    )


def _sentence(exc: BaseException) -> str:
    """Return the message of ``exc`` without a final period, to embed it."""
    return str(exc).strip().rstrip(".")
