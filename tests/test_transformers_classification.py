"""Sequence classification with a tiny randomly initialized BERT classifier."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from transformers_models import save_tiny_classifier

from caikit_mm import ModelManager
from caikit_mm.transformers import TransformersModule

LABELS = ("negative", "neutral", "positive")
TEXTS = ["I loved every minute of it.", "It was fine.", "Dreadful."]


@pytest.fixture(scope="module")
def classifier_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_classifier(tmp_path_factory.mktemp("cls") / "model", LABELS)


@pytest.fixture(scope="module")
def classifier(classifier_folder: Path) -> TransformersModule:
    return ModelManager().load(classifier_folder, finder="transformers")  # type: ignore[no-any-return]


def direct_logits(folder: Path, texts: list[str]) -> list[list[float]]:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(
        folder, local_files_only=True
    )
    with torch.inference_mode():
        logits = model.eval()(
            **tokenizer(texts, padding=True, return_tensors="pt")
        ).logits
    return logits.tolist()  # type: ignore[no-any-return]


def scores_by_label(result: list[dict[str, Any]]) -> dict[str, float]:
    return {entry["label"]: entry["score"] for entry in result}


def test_labels_from_model_label_map(classifier: TransformersModule) -> None:
    result = classifier.run(TEXTS[0])
    assert [entry["label"] for entry in result] != []
    assert sorted(entry["label"] for entry in result) == sorted(LABELS)
    assert classifier.labels == list(LABELS)
    scores = [entry["score"] for entry in result]
    assert scores == sorted(scores, reverse=True)
    assert sum(scores) == pytest.approx(1.0, abs=1e-5)


def test_softmax_scores_match_direct_call(
    classifier: TransformersModule, classifier_folder: Path
) -> None:
    results = classifier.run(TEXTS)
    assert len(results) == len(TEXTS)
    for result, logits in zip(
        results, direct_logits(classifier_folder, TEXTS), strict=True
    ):
        total = sum(math.exp(value) for value in logits)
        expected = {
            label: math.exp(value) / total
            for label, value in zip(LABELS, logits, strict=True)
        }
        assert scores_by_label(result) == pytest.approx(expected, abs=1e-5)


def test_top_k(classifier: TransformersModule) -> None:
    best = classifier.classify(TEXTS, top_k=1)
    full = classifier.classify(TEXTS)
    assert [len(result) for result in best] == [1, 1, 1]
    assert [result[0] for result in best] == [result[0] for result in full]
    with pytest.raises(ValueError, match="top_k"):
        classifier.classify(TEXTS, top_k=0)


def test_function_to_apply_none_gives_logits(
    classifier: TransformersModule, classifier_folder: Path
) -> None:
    result = classifier.classify(TEXTS[1], function_to_apply="none")
    logits = direct_logits(classifier_folder, [TEXTS[1]])[0]
    assert scores_by_label(result) == pytest.approx(
        dict(zip(LABELS, logits, strict=True)), abs=1e-5
    )
    with pytest.raises(ValueError, match="function_to_apply"):
        classifier.classify(TEXTS, function_to_apply="argmax")


def test_multi_label_model_uses_sigmoid(tmp_path: Path) -> None:
    folder = save_tiny_classifier(
        tmp_path / "multi", ("sports", "politics"), "multi_label_classification"
    )
    result = ModelManager().load(folder, finder="transformers").run(TEXTS[0])
    logits = direct_logits(folder, [TEXTS[0]])[0]
    expected = {
        label: 1 / (1 + math.exp(-value))
        for label, value in zip(("sports", "politics"), logits, strict=True)
    }
    assert scores_by_label(result) == pytest.approx(expected, abs=1e-5)


def test_truncates_to_model_length(classifier: TransformersModule) -> None:
    # The tokenizer allows 512 tokens but the tiny model has 128 positions.
    assert classifier.max_length == 128
    result = classifier.classify("word " * 400)
    assert len(result) == len(LABELS)


def test_save_and_reload_keeps_labels(
    classifier: TransformersModule, tmp_path: Path
) -> None:
    classifier.save(str(tmp_path / "saved"))
    assert not (tmp_path / "saved" / "modules.json").exists()
    reloaded = ModelManager().load(tmp_path / "saved", finder="transformers")
    assert reloaded.task == "sequence-classification"
    assert reloaded.labels == list(LABELS)
    assert reloaded.run(TEXTS) == classifier.run(TEXTS)


def test_load_as_feature_extractor_with_task(classifier_folder: Path) -> None:
    model = ModelManager().load(
        classifier_folder, finder="transformers", task="feature-extraction"
    )
    assert model.task == "feature-extraction"
    assert len(model.run(TEXTS[0])) == 32
