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
# "auto" picks cuda, then mps, then cpu. The other values are the torch device
# strings this package checks for availability before it loads a model.
DEVICE_PATTERN: Final = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
DEVICE_CHOICES: Final = "cpu, cuda, cuda:N (N a GPU index), mps or auto"


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


def check_device(value: Any) -> str:
    """Check that ``value`` is a device setting that :func:`resolve_device` accepts.

    Raises:
        ValueError: ``value`` does not match :data:`DEVICE_PATTERN`.
    """
    if isinstance(value, str) and DEVICE_PATTERN.fullmatch(value):
        return value
    raise ValueError(f"device must be {DEVICE_CHOICES}, got {value!r}.")


def check_dtype(value: Any) -> str:
    """Check that ``value`` is one of :data:`DTYPES`, and return it.

    Raises:
        ValueError: ``value`` is not one of :data:`DTYPES`.
    """
    if isinstance(value, str) and value in DTYPES:
        return value
    raise ValueError(f"torch_dtype must be one of {', '.join(DTYPES)}, got {value!r}.")


def resolve_device(name: str) -> Any:
    """Return the ``torch.device`` for ``name``; ``auto`` picks the best available.

    Raises:
        ValueError: ``name`` is not a valid device setting, or that device is
            not available to this PyTorch build on this machine.
    """
    torch = import_torch()
    if check_device(name) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available(torch):
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    problem = _unavailable_reason(torch, device)
    if problem:
        raise ValueError(
            f"device {name!r} is not available: {problem}. Available devices: "
            f"{', '.join(available_devices(torch))}. Set device: cpu or auto in the "
            "finder's config, or pass device='cpu' or device='auto' to load."
        )
    return device


def available_devices(torch: ModuleType) -> list[str]:
    """List the device strings that this PyTorch build can use on this machine."""
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{index}" for index in range(torch.cuda.device_count())]
    if _mps_available(torch):
        devices.append("mps")
    return devices


def _mps_available(torch: ModuleType) -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and bool(mps.is_available())


def _unavailable_reason(torch: ModuleType, device: Any) -> str:
    """Return why ``device`` cannot be used, or ``""`` when it can."""
    if device.type == "mps" and not _mps_available(torch):
        return "PyTorch reports no MPS (Apple GPU) backend on this machine"
    if device.type != "cuda":
        return ""
    if torch.version.cuda is None:
        return f"this PyTorch build ({torch.__version__}) has no CUDA support"
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        return "PyTorch finds no CUDA GPU on this machine"
    if device.index is not None and device.index >= count:
        return f"PyTorch finds {count} CUDA GPU(s), so the index is out of range"
    return ""


def dtype_argument(name: str) -> dict[str, Any]:
    """Return the ``from_pretrained`` keyword that selects dtype ``name``.

    transformers 4.56 renamed ``torch_dtype`` to ``dtype`` and warns about the
    old name, so the name is chosen by the installed version.

    Raises:
        ValueError: ``name`` is not one of :data:`DTYPES`.
    """
    check_dtype(name)
    transformers = import_transformers()
    value: Any = name if name == "auto" else getattr(import_torch(), name)
    major, minor = (int(part) for part in transformers.__version__.split(".")[:2])
    keyword = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
    return {keyword: value}
