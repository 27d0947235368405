"""Lazy imports of torch and transformers, and the device and dtype settings.

Nothing here imports torch or transformers at module import time, so the finder
and the module registration stay cheap.
"""

from __future__ import annotations

import re
from types import ModuleType
from typing import Any, Final

EXTRA_HINT: Final = "Install the extra with: pip install 'caikit_mm[transformers]'"
DEFAULT_DEVICE: Final = "cpu"
DEFAULT_DTYPE: Final = "auto"
# "auto" keeps the dtype the checkpoint was saved in (transformers' own default
# from version 5); the others are torch dtype names.
DTYPES: Final = ("auto", "float32", "float16", "bfloat16", "float64")
# "auto" picks cuda, then mps, then cpu; otherwise a torch device string.
DEVICE_PATTERN: Final = re.compile(r"auto|[a-z][a-z0-9_]*(:\d+)?")


def import_torch() -> ModuleType:
    """Import torch, or raise an ``ImportError`` naming the extra to install."""
    try:
        import torch
    except ImportError as exc:
        raise ImportError(f"Hugging Face models need PyTorch. {EXTRA_HINT}") from exc
    return torch


def import_transformers() -> ModuleType:
    """Import transformers, or raise an ``ImportError`` naming the extra."""
    import_torch()
    try:
        import transformers
    except ImportError as exc:
        raise ImportError(
            f"Hugging Face models need the transformers package. {EXTRA_HINT}"
        ) from exc
    return transformers


def resolve_device(name: str) -> Any:
    """Return the ``torch.device`` for ``name``; ``auto`` picks the best available.

    Raises:
        ValueError: ``name`` is not a device torch knows.
    """
    torch = import_torch()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise ValueError(
            f"device {name!r} is not a torch device ({exc}). Use cpu, cuda, cuda:N, "
            "mps or auto."
        ) from None


def dtype_argument(name: str) -> dict[str, Any]:
    """Return the ``from_pretrained`` keyword that selects dtype ``name``.

    transformers 4.56 renamed ``torch_dtype`` to ``dtype`` and warns about the
    old name, so the name is chosen by the installed version.

    Raises:
        ValueError: ``name`` is not one of :data:`DTYPES`.
    """
    if name not in DTYPES:
        raise ValueError(f"torch_dtype {name!r} is not one of {', '.join(DTYPES)}.")
    transformers = import_transformers()
    value: Any = name if name == "auto" else getattr(import_torch(), name)
    major, minor = (int(part) for part in transformers.__version__.split(".")[:2])
    keyword = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
    return {keyword: value}
