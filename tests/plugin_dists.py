"""Build installed distributions in a temporary folder, for plugin tests.

A distribution here is what pip would leave in site-packages: a
``<name>-<version>.dist-info`` folder with ``METADATA`` and ``entry_points.txt``,
beside the plugin's own Python modules. Putting the folder on ``sys.path`` makes
``importlib_metadata`` find it exactly as it finds a real install.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


def make_distribution(
    site: Path,
    name: str,
    entry_points: Mapping[str, Mapping[str, str]],
    modules: Mapping[str, str] | None = None,
    version: str = "1.0",
) -> Path:
    """Write a distribution into ``site`` and return the site folder."""
    dist_info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
    )
    lines = []
    for group, entries in entry_points.items():
        lines.append(f"[{group}]")
        lines.extend(f"{key} = {target}" for key, target in entries.items())
    (dist_info / "entry_points.txt").write_text(
        "\n".join(lines) + "\n", encoding="utf-8"
    )
    for filename, source in (modules or {}).items():
        (site / filename).write_text(source, encoding="utf-8")
    return site
