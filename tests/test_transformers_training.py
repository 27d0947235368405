"""Fine-tuning a sequence classifier through the LOCAL trainer, then reloading it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from transformers_models import minilm_path, save_tiny_classifier

from caikit_mm import ModelFormatError, ModelManager
from caikit_mm.transformers import TransformersModule

# Two labels that a tiny model can separate by their words alone.
EXAMPLES = [
    ("great wonderful excellent", "good"),
    ("wonderful great film", "good"),
    ("excellent and great", "good"),
    ("great great wonderful", "good"),
    ("awful terrible boring", "bad"),
    ("terrible awful film", "bad"),
    ("boring and awful", "bad"),
    ("awful awful terrible", "bad"),
]
TEXTS = [text for text, _ in EXAMPLES]
OPTIONS: dict[str, Any] = {"num_epochs": 15, "learning_rate": 1e-3, "batch_size": 4}


@pytest.fixture(scope="module")
def base_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # The base classifier's own labels differ, so training adds a new head.
    folder = tmp_path_factory.mktemp("base") / "model"
    return save_tiny_classifier(folder, ("negative", "neutral", "positive"))


def best_labels(model: Any, texts: list[str]) -> list[str]:
    return [result[0]["label"] for result in model.run(texts)]


def test_train_save_and_reload(base_folder: Path, tmp_path: Path) -> None:
    manager = ModelManager()
    future = manager.train(
        TransformersModule,
        EXAMPLES,
        base_model=str(base_folder),
        save_path=tmp_path,
        model_name="sentiment",
        wait=True,
        **OPTIONS,
    )
    trained = future.load()
    assert isinstance(trained, TransformersModule)
    assert trained.labels == ["bad", "good"]
    assert len(trained.training_losses) == OPTIONS["num_epochs"]
    assert trained.training_losses[-1] < trained.training_losses[0]
    assert best_labels(trained, TEXTS) == [label for _, label in EXAMPLES]

    saved = tmp_path / "sentiment"
    assert (saved / "config.json").is_file()
    assert not (saved / "config.yml").exists()
    found = manager.find(saved, finder="transformers")
    assert found.task == "sequence-classification"
    reloaded = manager.load(saved, finder="transformers")
    assert reloaded.labels == trained.labels
    for after, before in zip(reloaded.run(TEXTS), trained.run(TEXTS), strict=True):
        assert [entry["label"] for entry in after] == [
            entry["label"] for entry in before
        ]
        assert [entry["score"] for entry in after] == pytest.approx(
            [entry["score"] for entry in before], abs=1e-5
        )


def test_train_is_repeatable_with_seed(base_folder: Path) -> None:
    first = TransformersModule.train(EXAMPLES, str(base_folder), num_epochs=2, seed=5)
    second = TransformersModule.train(EXAMPLES, str(base_folder), num_epochs=2, seed=5)
    assert first.training_losses == second.training_losses
    assert first.run(TEXTS[0]) == second.run(TEXTS[0])


def test_train_keeps_matching_head(base_folder: Path, tmp_path: Path) -> None:
    # A base classifier whose labels cover the data keeps its head and order.
    labels = ("bad", "good", "mixed")
    folder = save_tiny_classifier(tmp_path / "three", labels)
    trained = TransformersModule.train(EXAMPLES, str(folder), num_epochs=1)
    assert trained.labels == list(labels)


def test_train_from_loaded_feature_extractor() -> None:
    minilm = ModelManager().load(str(minilm_path()), finder="transformers")
    trained = TransformersModule.train(
        EXAMPLES[:4] + EXAMPLES[-4:], minilm, num_epochs=1, batch_size=8
    )
    assert trained.task == "sequence-classification"
    assert trained.labels == ["bad", "good"]
    assert minilm.task == "feature-extraction"
    assert len(minilm.run(TEXTS[0])) == 384


def test_train_explicit_labels_order(base_folder: Path) -> None:
    trained = TransformersModule.train(
        EXAMPLES, str(base_folder), labels=["good", "bad", "unused"], num_epochs=1
    )
    assert trained.labels == ["good", "bad", "unused"]
    with pytest.raises(ValueError, match="missing: \\['bad'\\]"):
        TransformersModule.train(EXAMPLES, str(base_folder), labels=["good"])


@pytest.mark.parametrize(
    ("train_data", "options", "message"),
    [
        ([], {}, "no examples"),
        ([("text",)], {}, "training example 0"),
        ([(3, "good")], {}, "texts must be strings"),
        (EXAMPLES, {"num_epochs": 0}, "num_epochs"),
        (EXAMPLES, {"learning_rate": 0.0}, "learning_rate"),
    ],
)
def test_train_rejects_bad_input(
    base_folder: Path, train_data: Any, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        TransformersModule.train(train_data, str(base_folder), **options)


def test_train_rejects_missing_base(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match="base_model"):
        TransformersModule.train(EXAMPLES, str(tmp_path / "absent"))
