"""The ``caikit-mm train`` subcommand (placeholder until the LOCAL trainer lands)."""

from __future__ import annotations

from typing import Any


def add_parser(sub: Any) -> None:
    """Add the ``train`` subcommand to the parser."""
