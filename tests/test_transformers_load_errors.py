"""Errors of TransformersModule.load for damaged folders and bad settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers_models import link_model, minilm_path, save_tiny_classifier

from caikit_mm import ModelFormatError, ModelManager
from caikit_mm.transformers import TransformersModule


@pytest.fixture(scope="module")
def classifier_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_classifier(tmp_path_factory.mktemp("tiny") / "classifier")


def load(folder: Path, **kwargs: str) -> TransformersModule:
    return ModelManager().load(  # type: ignore[no-any-return]
        folder, finder="transformers", cache=False, **kwargs
    )


def copy_with_weights(source: Path, target: Path, weights: bytes) -> Path:
    folder = link_model(source, target, skip=["model.safetensors"])
    (folder / "model.safetensors").write_bytes(weights)
    return folder


def with_model_type(tmp_path: Path, model_type: str) -> Path:
    folder = link_model(minilm_path(), tmp_path / model_type, skip=["config.json"])
    config = json.loads((minilm_path() / "config.json").read_text())
    config["model_type"] = model_type
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_safetensors_names_file(
    classifier_folder: Path, tmp_path: Path, damage: str
) -> None:
    weights = (classifier_folder / "model.safetensors").read_bytes()
    damaged = b"abc" if damage == "garbage" else weights[: len(weights) // 2]
    folder = copy_with_weights(classifier_folder, tmp_path / damage, damaged)
    with pytest.raises(ModelFormatError) as info:
        load(folder)
    message = str(info.value)
    assert repr(str(folder / "model.safetensors")) in message
    assert "corrupt or incomplete" in message
    assert "save_pretrained" in message
    assert info.value.path == str(folder / "model.safetensors")


def test_corrupt_dense_weights_name_file(tmp_path: Path) -> None:
    folder = link_model(minilm_path(), tmp_path / "dense", skip=["modules.json"])
    dense = folder / "2_Dense"
    dense.mkdir()
    config = {"in_features": 384, "out_features": 16, "bias": True}
    (dense / "config.json").write_text(json.dumps(config))
    (dense / "model.safetensors").write_bytes(b"abc")
    paths = {"Transformer": "", "Pooling": "1_Pooling", "Dense": "2_Dense"}
    steps = [
        {
            "idx": index,
            "name": str(index),
            "path": path,
            "type": f"sentence_transformers.models.{kind}",
        }
        for index, (kind, path) in enumerate(paths.items())
    ]
    (folder / "modules.json").write_text(json.dumps(steps))
    with pytest.raises(ModelFormatError) as info:
        load(folder)
    assert repr(str(dense / "model.safetensors")) in str(info.value)
    assert "corrupt or incomplete" in str(info.value)


def test_unavailable_device_rejected_before_weights(
    classifier_folder: Path, tmp_path: Path
) -> None:
    import torch

    # One past the last visible GPU is unavailable on every machine.
    device = f"cuda:{torch.cuda.device_count()}"
    # Corrupt weights show that the device is checked before they are read.
    folder = copy_with_weights(classifier_folder, tmp_path / "gpu", b"abc")
    with pytest.raises(ValueError) as info:
        load(folder, device=device)
    message = str(info.value)
    assert not isinstance(info.value, ModelFormatError)
    assert f"device {device!r} is not available" in message
    assert "Available devices: cpu" in message
    assert "device: cpu or auto" in message


@pytest.mark.parametrize(
    ("argument", "value"),
    [("torch_dtype", "int8"), ("device", "tpu")],
)
def test_invalid_settings_rejected_by_load(
    classifier_folder: Path, argument: str, value: str
) -> None:
    with pytest.raises(ValueError) as info:
        TransformersModule.load(str(classifier_folder), **{argument: value})
    message = str(info.value)
    assert not isinstance(info.value, ModelFormatError)
    assert f"{argument} must be" in message
    assert repr(value) in message
    assert ".." not in message


def test_corrupt_tokenizer_advice(tmp_path: Path) -> None:
    folder = link_model(minilm_path(), tmp_path / "tokenizer", skip=["tokenizer.json"])
    (folder / "tokenizer.json").write_text("{not json")
    with pytest.raises(ModelFormatError) as info:
        load(folder)
    message = str(info.value)
    assert "AutoTokenizer" in message
    assert "files are complete and valid" in message
    assert "upgrade transformers" not in message
    assert ".." not in message


def test_unknown_model_type_advice(tmp_path: Path) -> None:
    folder = with_model_type(tmp_path, "caikit_test_unknown")
    with pytest.raises(ModelFormatError) as info:
        load(folder)
    message = str(info.value)
    assert "'caikit_test_unknown'" in message
    assert "upgrade transformers" in message
    assert ".." not in message


def test_model_type_without_task_class_advice(tmp_path: Path) -> None:
    folder = with_model_type(tmp_path, "clip_vision_model")
    with pytest.raises(ModelFormatError) as info:
        load(folder, task="text-generation")
    message = str(info.value)
    assert "AutoModelForCausalLM has no class" in message
    assert "task_map" in message
    assert "upgrade transformers" not in message
