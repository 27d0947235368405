"""Modules registered under the module ids of the caikit fixture models.

caikit's sample library registers these ids; this project registers small
modules of its own under the same ids, so the folders that caikit saved load
here unchanged. Importing this file registers them once per process.
"""

from __future__ import annotations

import json
import os
from typing import Any

import caikit_mm
from caikit_mm import ModuleBase, ModuleConfig

SAMPLE_ID = "00110203-0405-0607-0809-0a0b02dd0e0f"
FIXTURE_MODULE_IDS = {
    SAMPLE_ID: "SampleModule",
    "33221100-0405-0607-0809-0a0b02dd0e0f": "OtherModule",
    "00110203-0123-0456-0789-0a0b02dd1eef": "MultiTaskModule",
    "00112233-0405-0607-0809-0a0b02dd0e0f": "SamplePrimitiveModule",
    "00110203-0123-0456-0722-0a0b02dd0e0f": "BidiStreamingModule",
    "750cad4d-c3b8-4327-b52e-e772f0d6f311": "BoundingBoxModule",
    "foo": "DummyFoo",
}


class FixtureModule(ModuleBase):
    """Keeps the parsed config and any ``data.json`` the folder holds."""

    load_count = 0

    def __init__(self, config: ModuleConfig, data: Any = None) -> None:
        self.config = config
        self.data = data

    @classmethod
    def load(cls, model_path: str, module_config: ModuleConfig | None = None) -> Any:
        cls.load_count += 1
        config = module_config or ModuleConfig.load(model_path)
        data_file = os.path.join(model_path, "data.json")
        data = None
        if os.path.exists(data_file):
            with open(data_file, encoding="utf-8") as stream:
                data = json.load(stream)
        return cls(config, data)

    def run(self, **kwargs: Any) -> dict[str, Any]:
        return {"module_id": self.MODULE_ID, "inputs": kwargs}


def _register_all() -> dict[str, type[FixtureModule]]:
    registered = {}
    for module_id, class_name in FIXTURE_MODULE_IDS.items():
        cls = type(class_name, (FixtureModule,), {"__module__": __name__})
        registered[module_id] = caikit_mm.module(id=module_id, name=class_name)(cls)
        globals()[class_name] = cls
    return registered


MODULES = _register_all()
