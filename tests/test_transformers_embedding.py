"""Sentence embeddings from all-MiniLM-L6-v2, loaded through the manager."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers_models import (
    PARAPHRASES,
    UNRELATED,
    cosine,
    direct_embeddings,
    link_model,
    minilm_path,
    norm,
)

from caikit_mm import ModelManager
from caikit_mm.transformers import TransformersModule

TEXTS = [
    PARAPHRASES[0],
    UNRELATED,
    "short",
    "A much longer sentence that pads the others.",
]


@pytest.fixture(scope="module")
def minilm() -> TransformersModule:
    model = ModelManager().load(str(minilm_path()), finder="transformers")
    assert isinstance(model, TransformersModule)
    return model


def load(folder: Path) -> TransformersModule:
    return ModelManager().load(folder, finder="transformers", cache=False)  # type: ignore[no-any-return]


def assert_close(
    actual: list[list[float]], expected: object, tolerance: float = 1e-5
) -> None:
    import torch

    assert torch.allclose(
        torch.tensor(actual), torch.as_tensor(expected), atol=tolerance
    )


def write_steps(folder: Path, kinds: list[str]) -> None:
    paths = {"Transformer": "", "Pooling": "1_Pooling", "Dense": "2_Dense"}
    steps = [
        {
            "idx": index,
            "name": str(index),
            "path": paths.get(kind, f"{index}_{kind}"),
            "type": f"sentence_transformers.models.{kind}",
        }
        for index, kind in enumerate(kinds)
    ]
    (folder / "modules.json").write_text(json.dumps(steps))


def test_embedding_size_and_normalized(minilm: TransformersModule) -> None:
    embedding = minilm.run("The quick brown fox jumps over the lazy dog.")
    assert isinstance(embedding, list)
    assert all(isinstance(value, float) for value in embedding)
    assert len(embedding) == 384
    assert norm(embedding) == pytest.approx(1.0, abs=1e-5)


def test_paraphrases_closer_than_unrelated(minilm: TransformersModule) -> None:
    first, second, other = minilm.run([*PARAPHRASES, UNRELATED])
    assert cosine(first, second) > cosine(first, other)
    assert cosine(first, second) > cosine(second, other)


def test_matches_sentence_transformers(minilm: TransformersModule) -> None:
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(minilm_path()), device="cpu").encode(TEXTS)
    assert_close(minilm.embed(TEXTS), reference)


def test_batching_keeps_order_and_values(minilm: TransformersModule) -> None:
    batched = minilm.embed(TEXTS, batch_size=3)
    one_by_one = [minilm.embed(text) for text in TEXTS]
    assert_close(batched, one_by_one)


def test_normalize_argument_overrides_model(minilm: TransformersModule) -> None:
    raw = minilm.embed(TEXTS, normalize=False)
    assert norm(raw[0]) != pytest.approx(1.0, abs=1e-3)
    assert_close(raw, direct_embeddings(minilm_path(), TEXTS))


def test_without_normalize_step(tmp_path: Path) -> None:
    folder = link_model(minilm_path(), tmp_path / "unnormalized", skip=["modules.json"])
    write_steps(folder, ["Transformer", "Pooling"])
    model = load(folder)
    embeddings = model.embed(TEXTS)
    assert norm(embeddings[0]) != pytest.approx(1.0, abs=1e-3)
    assert_close(embeddings, direct_embeddings(minilm_path(), TEXTS))


def test_without_sentence_transformers_files_mean_pools(tmp_path: Path) -> None:
    skip = ["modules.json", "1_Pooling", "sentence_bert_config.json"]
    folder = link_model(minilm_path(), tmp_path / "plain", skip=skip)
    found = ModelManager().find(folder, finder="transformers")
    assert found.task == "feature-extraction"
    assert found.pooling_modes == ["mean"]
    assert found.normalize is False
    assert_close(load(folder).embed(TEXTS), direct_embeddings(minilm_path(), TEXTS))


@pytest.mark.parametrize(
    ("pooling_config", "mode"),
    [
        ({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}, "cls"),
        ({"pooling_mode_max_tokens": True, "pooling_mode_mean_tokens": False}, "max"),
        ({"pooling_mode": "cls"}, "cls"),
    ],
)
def test_pooling_mode_from_config(
    tmp_path: Path, pooling_config: dict[str, object], mode: str
) -> None:
    folder = link_model(
        minilm_path(), tmp_path / mode, skip=["modules.json", "1_Pooling"]
    )
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 384, **pooling_config})
    )
    write_steps(folder, ["Transformer", "Pooling"])
    assert_close(
        load(folder).embed(TEXTS), direct_embeddings(minilm_path(), TEXTS, mode)
    )


def test_concatenated_pooling_modes(tmp_path: Path) -> None:
    folder = link_model(minilm_path(), tmp_path / "both", skip=["1_Pooling"])
    (folder / "1_Pooling").mkdir()
    modes = {"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": True}
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(modes))
    embedding = load(folder).embed(TEXTS[0])
    assert len(embedding) == 768
    assert norm(embedding) == pytest.approx(1.0, abs=1e-5)


def test_dense_step_matches_sentence_transformers(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file
    from sentence_transformers import SentenceTransformer

    folder = link_model(minilm_path(), tmp_path / "dense", skip=["modules.json"])
    (folder / "2_Dense").mkdir()
    dense_config = {
        "in_features": 384,
        "out_features": 16,
        "bias": True,
        "activation_function": "torch.nn.modules.activation.Tanh",
    }
    (folder / "2_Dense" / "config.json").write_text(json.dumps(dense_config))
    generator = torch.Generator().manual_seed(0)
    weights = {
        "linear.weight": torch.randn(16, 384, generator=generator),
        "linear.bias": torch.randn(16, generator=generator),
    }
    save_file(weights, str(folder / "2_Dense" / "model.safetensors"))
    write_steps(folder, ["Transformer", "Pooling", "Dense", "Normalize"])
    embeddings = load(folder).embed(TEXTS)
    assert len(embeddings[0]) == 16
    reference = SentenceTransformer(str(folder), device="cpu").encode(TEXTS)
    assert_close(embeddings, reference)


def test_dense_activation_outside_torch_rejected(tmp_path: Path) -> None:
    from caikit_mm import ModelFormatError

    folder = link_model(minilm_path(), tmp_path / "dense", skip=["modules.json"])
    (folder / "2_Dense").mkdir()
    dense_config = {
        "in_features": 384,
        "out_features": 16,
        "activation_function": "os.system",
    }
    (folder / "2_Dense" / "config.json").write_text(json.dumps(dense_config))
    write_steps(folder, ["Transformer", "Pooling", "Dense"])
    with pytest.raises(ModelFormatError, match="os.system"):
        load(folder)


def test_save_and_reload(minilm: TransformersModule, tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    target = tmp_path / "saved"
    minilm.save(str(target))
    assert not (target / "config.yml").exists()
    assert (target / "modules.json").is_file()
    assert json.loads((target / "1_Pooling" / "config.json").read_text())[
        "pooling_mode_mean_tokens"
    ]
    assert (
        json.loads((target / "sentence_bert_config.json").read_text())["max_seq_length"]
        == 256
    )
    reloaded = load(target)
    expected = minilm.embed(TEXTS)
    assert_close(reloaded.embed(TEXTS), expected)
    assert_close(SentenceTransformer(str(target), device="cpu").encode(TEXTS), expected)
    assert [p.name for p in tmp_path.iterdir()] == ["saved"]


def test_save_replaces_existing_folder(
    minilm: TransformersModule, tmp_path: Path
) -> None:
    target = tmp_path / "saved"
    target.mkdir()
    (target / "stale.txt").write_text("from an earlier save")
    minilm.save(str(target))
    assert not (target / "stale.txt").exists()
    assert (target / "config.json").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["saved"]


def test_embed_rejects_other_inputs(minilm: TransformersModule) -> None:
    with pytest.raises(TypeError, match="texts must be a string or a list of strings"):
        minilm.embed([1, 2])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="batch_size"):
        minilm.embed("text", batch_size=0)


def test_empty_list_gives_empty_list(minilm: TransformersModule) -> None:
    assert minilm.embed([]) == []


def test_other_task_methods_rejected(minilm: TransformersModule) -> None:
    with pytest.raises(ValueError, match="loaded for feature-extraction"):
        minilm.classify("text")
