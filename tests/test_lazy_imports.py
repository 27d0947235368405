"""Optional extras stay unimported until a feature that needs them is used."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = [
    "fsspec",
    "s3fs",
    "botocore",
    "ray",
    "torch",
    "transformers",
    "tqdm",
    "sklearn",
]


def imported_after(code: str) -> list[str]:
    probe = (
        f"{code}\nimport json, sys\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_import_loads_no_dependencies() -> None:
    modules = imported_after("import caikit_mm")
    for name in ["yaml", "aconfig", "importlib_metadata", *HEAVY]:
        assert name not in modules


def test_local_load_imports_no_extras(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.yml").write_text("module_id: lazy-imports-test\n")
    modules = imported_after(
        "import caikit_mm\n"
        "@caikit_mm.module(id='lazy-imports-test')\n"
        "class M(caikit_mm.ModuleBase):\n"
        "    @classmethod\n"
        "    def load(cls, model_path):\n"
        "        return cls()\n"
        f"caikit_mm.ModelManager().load({str(folder)!r})\n"
    )
    for name in HEAVY:
        assert name not in modules
