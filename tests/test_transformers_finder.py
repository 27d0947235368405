"""The TRANSFORMERS finder: recognizing transformers save folders, and its errors."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from s3_server import S3Server
from transformers_models import (
    link_model,
    minilm_path,
    save_tiny_classifier,
    save_tiny_generator,
)

from caikit_mm import ConfigError, ModelFormatError, ModelManager, ModelNotFoundError
from caikit_mm.model_management import FINDERS
from caikit_mm.model_management.local_finder import LocalModelFinder
from caikit_mm.transformers import MODULE_ID, TransformersModule

BERT_CONFIG = {"model_type": "bert", "architectures": ["BertModel"], "hidden_size": 32}


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    return {
        "classifier": save_tiny_classifier(root / "classifier"),
        "generator": save_tiny_generator(root / "generator"),
    }


def finder_manager(**config: Any) -> ModelManager:
    return ModelManager(
        {"model_management": {"finders": {"transformers": {"config": config}}}}
    )


def fake_folder(
    folder: Path,
    config: dict[str, Any] | None = None,
    files: tuple[str, ...] = ("model.safetensors", "tokenizer.json"),
) -> Path:
    """Write a folder with a config.json and placeholder files of the given names.

    The finder reads only config.json and the sentence-transformers JSON files,
    so placeholder weights suffice for the cases that never load.
    """
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config or BERT_CONFIG))
    for name in files:
        (folder / name).write_text("placeholder")
    return folder


def test_minilm_module_config() -> None:
    found = finder_manager().find(str(minilm_path()), finder="transformers")
    assert found.module_id == MODULE_ID
    assert found.model_path == str(minilm_path())
    assert found.task == "feature-extraction"
    assert found.model_type == "bert"
    assert found.architectures == ["BertModel"]
    assert found.pooling_modes == ["mean"]
    assert found.normalize is True
    assert found.device == "cpu"
    assert found.torch_dtype == "auto"
    assert found.trust_remote_code is False


def test_task_from_architecture(tiny_models: dict[str, Path]) -> None:
    manager = finder_manager()
    classifier = manager.find(tiny_models["classifier"], finder="transformers")
    generator = manager.find(tiny_models["generator"], finder="transformers")
    assert classifier.task == "sequence-classification"
    assert classifier.architectures == ["BertForSequenceClassification"]
    assert generator.task == "text-generation"
    assert generator.architectures == ["GPT2LMHeadModel"]
    assert "pooling_modes" not in classifier


def test_device_and_dtype_from_config() -> None:
    found = finder_manager(device="cuda:1", torch_dtype="bfloat16").find(
        str(minilm_path()), finder="transformers"
    )
    assert found.device == "cuda:1"
    assert found.torch_dtype == "bfloat16"


def test_keyword_arguments_override_config() -> None:
    found = finder_manager(device="cuda").find(
        str(minilm_path()),
        finder="transformers",
        task="text-classification",
        device="cpu",
        torch_dtype="float32",
    )
    assert found.task == "sequence-classification"
    assert found.device == "cpu"
    assert found.torch_dtype == "float32"


def test_relative_path_under_load_path() -> None:
    base = minilm_path().parent
    found = finder_manager(load_path=str(base)).find("model", finder="transformers")
    assert found.model_path == str(minilm_path())


def test_folder_with_config_yml_left_to_local(tmp_path: Path) -> None:
    folder = link_model(minilm_path(), tmp_path / "both")
    (folder / "config.yml").write_text(f"module_id: {MODULE_ID}\n")
    with pytest.raises(ModelNotFoundError) as info:
        finder_manager().find(folder, finder="transformers")
    assert "config.yml" in str(info.value)
    assert "LOCAL" in str(info.value)
    assert info.value.finder == "transformers"


def test_config_yml_naming_module_loads_with_local(tmp_path: Path) -> None:
    folder = link_model(minilm_path(), tmp_path / "pinned")
    (folder / "config.yml").write_text(
        f"module_id: {MODULE_ID}\ntask: feature-extraction\n"
    )
    model = ModelManager().load(folder)
    assert len(model.run("a caikit_mm config beside a transformers model")) == 384


def test_multi_finder_covers_both_formats(
    tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
    pinned = link_model(minilm_path(), tmp_path / "pinned")
    (pinned / "config.yml").write_text(f"module_id: {MODULE_ID}\n")
    multi = {
        "type": "MULTI",
        "config": {"finder_priority": ["default", "transformers"]},
    }
    manager = ModelManager({"model_management": {"finders": {"models": multi}}})
    from_yml = manager.find(pinned, finder="models")
    bare = manager.find(tiny_models["classifier"], finder="models")
    assert from_yml.module_id == MODULE_ID
    assert "architectures" not in from_yml
    assert bare.module_id == MODULE_ID
    assert bare.architectures == ["BertForSequenceClassification"]
    assert manager.load(pinned, finder="models").task == "feature-extraction"
    assert manager.load(tiny_models["classifier"], finder="models").labels == [
        "negative",
        "neutral",
        "positive",
    ]


def test_trusted_config_survives_pickling() -> None:
    found = finder_manager(trust_remote_code=True).find(
        str(minilm_path()), finder="transformers"
    )
    copy = pickle.loads(pickle.dumps(found))
    assert type(copy) is type(found)
    assert copy == found
    assert copy.model_path == found.model_path
    model = TransformersModule.load(copy.model_path, copy)
    assert model.trust_remote_code is True


def test_config_yml_cannot_trust_remote_code(tmp_path: Path) -> None:
    folder = link_model(minilm_path(), tmp_path / "self-trusting")
    text = (
        f"module_id: {MODULE_ID}\ntask: feature-extraction\ntrust_remote_code: true\n"
    )
    (folder / "config.yml").write_text(text)
    with pytest.raises(ModelFormatError) as info:
        ModelManager().load(folder)
    assert "trust_remote_code" in str(info.value)
    assert str(folder) in str(info.value)


def test_unknown_load_argument() -> None:
    with pytest.raises(TypeError, match="batch_size"):
        ModelManager().load(str(minilm_path()), finder="transformers", batch_size=4)


def test_config_json_without_weights(tmp_path: Path) -> None:
    folder = fake_folder(tmp_path / "no-weights", files=("tokenizer.json",))
    with pytest.raises(ModelFormatError) as info:
        finder_manager().find(folder, finder="transformers")
    assert str(folder) in str(info.value)
    assert "no weights" in str(info.value)
    assert "model.safetensors" in str(info.value)


def test_tensorflow_weights_only(tmp_path: Path) -> None:
    folder = fake_folder(tmp_path / "tf", files=("tf_model.h5", "tokenizer.json"))
    with pytest.raises(ModelFormatError, match="tf_model.h5"):
        finder_manager().find(folder, finder="transformers")


def test_missing_weight_shard(tmp_path: Path) -> None:
    folder = fake_folder(
        tmp_path / "sharded",
        files=("model-00001-of-00002.safetensors", "tokenizer.json"),
    )
    index = {
        "weight_map": {
            "a": "model-00001-of-00002.safetensors",
            "b": "model-00002-of-00002.safetensors",
        }
    }
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ModelFormatError) as info:
        finder_manager().find(folder, finder="transformers")
    assert "model-00002-of-00002.safetensors" in str(info.value)
    assert "1 of the 2" in str(info.value)


def test_complete_shards_accepted(tmp_path: Path) -> None:
    shards = ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")
    folder = fake_folder(tmp_path / "sharded", files=(*shards, "tokenizer.json"))
    index = {"weight_map": {"a": shards[0], "b": shards[1]}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    assert (
        finder_manager().find(folder, finder="transformers").task
        == "feature-extraction"
    )


def test_no_tokenizer_files(tmp_path: Path) -> None:
    folder = fake_folder(tmp_path / "no-tokenizer", files=("model.safetensors",))
    with pytest.raises(ModelFormatError, match="no tokenizer files"):
        finder_manager().find(folder, finder="transformers")


def test_unknown_architecture_names_task_map(tmp_path: Path) -> None:
    config = {"model_type": "bert", "architectures": ["BertForMaskedLM"]}
    folder = fake_folder(tmp_path / "mlm", config)
    with pytest.raises(ModelFormatError) as info:
        finder_manager().find(folder, finder="transformers")
    assert "BertForMaskedLM" in str(info.value)
    assert "task_map" in str(info.value)
    assert "'bert'" in str(info.value)


@pytest.mark.parametrize(
    ("task_map", "expected"),
    [
        ({"BertForMaskedLM": "feature-extraction"}, "feature-extraction"),
        ({"bert": "text-classification"}, "sequence-classification"),
        (
            {"bert": "text-generation", "BertForMaskedLM": "feature-extraction"},
            "feature-extraction",
        ),
    ],
)
def test_task_map(tmp_path: Path, task_map: dict[str, str], expected: str) -> None:
    config = {"model_type": "bert", "architectures": ["BertForMaskedLM"]}
    folder = fake_folder(tmp_path / "mlm", config)
    found = finder_manager(task_map=task_map).find(folder, finder="transformers")
    assert found.task == expected


def test_task_map_overrides_architecture(tiny_models: dict[str, Path]) -> None:
    manager = finder_manager(
        task_map={"BertForSequenceClassification": "feature-extraction"}
    )
    assert manager.find(tiny_models["classifier"], finder="transformers").task == (
        "feature-extraction"
    )


@pytest.mark.parametrize("config_file", ["config.json", "tokenizer_config.json"])
def test_remote_code_rejected_unless_trusted(tmp_path: Path, config_file: str) -> None:
    folder = fake_folder(
        tmp_path / "custom", files=("model.safetensors", "tokenizer.json")
    )
    path = folder / config_file
    data = json.loads(path.read_text()) if path.exists() else {}
    data["auto_map"] = {"AutoModel": "modeling_custom.CustomModel"}
    path.write_text(json.dumps(data))
    with pytest.raises(ModelFormatError) as info:
        finder_manager().find(folder, finder="transformers")
    assert "trust_remote_code" in str(info.value)
    assert config_file in str(info.value)
    trusted = finder_manager(trust_remote_code=True).find(folder, finder="transformers")
    assert trusted.trust_remote_code is True


@pytest.mark.parametrize(
    "make",
    [
        lambda folder: folder.mkdir(),
        lambda folder: fake_folder(folder, {"architectures": ["BertModel"]}),
        lambda folder: fake_folder(folder, config={"model_type": 3}),
    ],
    ids=["empty folder", "no model_type", "model_type not a string"],
)
def test_not_a_transformers_folder(tmp_path: Path, make: Any) -> None:
    folder = tmp_path / "other"
    make(folder)
    with pytest.raises(ModelNotFoundError) as info:
        finder_manager().find(folder, finder="transformers")
    assert str(folder) in str(info.value)


def test_invalid_config_json(tmp_path: Path) -> None:
    folder = fake_folder(tmp_path / "broken")
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ModelFormatError, match="config.json"):
        finder_manager().find(folder, finder="transformers")


def test_missing_path_names_finder(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        finder_manager().find(tmp_path / "absent", finder="transformers")
    assert "'transformers' (TRANSFORMERS)" in str(info.value)


def test_unsupported_sentence_transformers_step(tmp_path: Path) -> None:
    folder = link_model(minilm_path(), tmp_path / "lstm", skip=["modules.json"])
    steps = [
        {
            "idx": 0,
            "name": "0",
            "path": "",
            "type": "sentence_transformers.models.Transformer",
        },
        {
            "idx": 1,
            "name": "1",
            "path": "1_LSTM",
            "type": "sentence_transformers.models.LSTM",
        },
    ]
    (folder / "modules.json").write_text(json.dumps(steps))
    with pytest.raises(ModelFormatError) as info:
        finder_manager().find(folder, finder="transformers")
    assert "sentence_transformers.models.LSTM" in str(info.value)
    assert "Pooling" in str(info.value)


def test_transformer_in_subfolder(tmp_path: Path) -> None:
    folder = tmp_path / "legacy"
    folder.mkdir()
    link_model(
        minilm_path(), folder / "0_Transformer", skip=["modules.json", "1_Pooling"]
    )
    (folder / "1_Pooling").symlink_to(minilm_path() / "1_Pooling")
    steps = json.loads((minilm_path() / "modules.json").read_text())
    steps[0]["path"] = "0_Transformer"
    (folder / "modules.json").write_text(json.dumps(steps))
    found = finder_manager().find(folder, finder="transformers")
    assert found.model_path == str(folder)
    assert found.normalize is True
    model = ModelManager().load(folder, finder="transformers")
    assert len(model.run("a model in a subfolder")) == 384


def test_url_needs_download_finder() -> None:
    with pytest.raises(ModelNotFoundError, match="download_finder"):
        finder_manager().find("s3://bucket/model", finder="transformers")


def test_s3_folder_through_remote_finder(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    local = save_tiny_classifier(tmp_path / "classifier", ("no", "yes"))
    s3_server.put_folder(s3_bucket, "models/classifier", local)
    url = f"s3://{s3_bucket}/models/classifier"
    finders = {
        "s3": {"config": s3_server.finder_config(tmp_path / "cache")},
        "transformers": {"config": {"download_finder": "s3"}},
    }
    manager = ModelManager({"model_management": {"finders": finders}})
    found = manager.find(url, finder="transformers")
    assert found.task == "sequence-classification"
    assert Path(found.model_path).is_relative_to(tmp_path / "cache")
    model = manager.load(url, finder="transformers")
    assert model.labels == ["no", "yes"]
    direct = ModelManager().load(local, finder="transformers")
    assert model.run("a remote text") == direct.run("a remote text")
    assert manager.load(url, finder="transformers") is model


@pytest.mark.parametrize("download_finder", ["default", "transformers"])
def test_download_finder_without_fetch_rejected(download_finder: str) -> None:
    with pytest.raises(ConfigError) as info:
        finder_manager(download_finder=download_finder)
    message = str(info.value)
    assert "finders.transformers.config.download_finder" in message
    assert f"{download_finder!r} is a finder of type" in message
    assert "fetch(model_path)" in message
    assert "REMOTE" in message


class _NoFetchFinder(LocalModelFinder):
    name = "TRANSFORMERS_TEST_NO_FETCH"


def test_plugin_download_finder_without_fetch() -> None:
    FINDERS.register(_NoFetchFinder)
    finders = {
        "plain": {"type": _NoFetchFinder.name},
        "transformers": {"config": {"download_finder": "plain"}},
    }
    manager = ModelManager({"model_management": {"finders": finders}})
    with pytest.raises(ModelNotFoundError) as info:
        manager.find("s3://bucket/model", finder="transformers")
    assert f"'plain' ({_NoFetchFinder.name})" in str(info.value)
    assert "fetch(model_path)" in str(info.value)


@pytest.mark.parametrize(
    ("argument", "value", "expected"),
    [
        ("torch_dtype", "int8", "float32"),
        ("torch_dtype", "", "float32"),
        ("device", "tpu", "cuda:N"),
        ("device", "cuda:x", "cuda:N"),
    ],
)
def test_invalid_call_arguments(argument: str, value: str, expected: str) -> None:
    with pytest.raises(ValueError) as info:
        finder_manager().find(
            str(minilm_path()), finder="transformers", **{argument: value}
        )
    message = str(info.value)
    assert argument in message
    assert repr(value) in message
    assert expected in message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("task_map", {"BertModel": "summarization"}),
        ("task_map", ["BertModel"]),
        ("device", "gpu 0"),
        ("device", "tpu"),
        ("device", "cuda:"),
        ("torch_dtype", "int8"),
        ("trust_remote_code", "yes"),
        ("download_finder", "nowhere"),
        ("download_finder", "default"),
    ],
)
def test_invalid_config_values(key: str, value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        finder_manager(**{key: value})
    assert f"model_management.finders.transformers.config.{key}" in str(info.value)


def run_python(code: str) -> list[str]:
    """Run ``code`` in a fresh interpreter and return the last line it prints."""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_module_registered_through_entry_point() -> None:
    before_and_after = run_python(
        "import json, sys\n"
        "from caikit_mm.modules import MODULE_REGISTRY\n"
        "before = 'caikit_mm.transformers.module' in sys.modules\n"
        f"cls = MODULE_REGISTRY.get({MODULE_ID!r})\n"
        "print(json.dumps([before, cls.__module__, 'torch' in sys.modules]))\n"
    )
    assert before_and_after == [False, "caikit_mm.transformers.module", False]


def test_find_imports_neither_torch_nor_transformers() -> None:
    imported = run_python(
        "import json, sys\n"
        "from caikit_mm import ModelManager\n"
        f"ModelManager().find({str(minilm_path())!r}, finder='transformers')\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    assert "torch" not in imported
    assert "transformers" not in imported
    assert "safetensors" not in imported
