"""Text generation with a tiny randomly initialized GPT-2 and a BPE tokenizer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from transformers_models import save_tiny_generator

from caikit_mm import ModelManager
from caikit_mm.transformers import TransformersModule

PROMPTS = ["the cat sat", "a bird sang in the tree and"]


@pytest.fixture(scope="module")
def generator_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_generator(tmp_path_factory.mktemp("gen") / "model")


@pytest.fixture(scope="module")
def generator(generator_folder: Path) -> TransformersModule:
    return ModelManager().load(generator_folder, finder="transformers")  # type: ignore[no-any-return]


def direct_greedy(folder: Path, prompt: str, max_new_tokens: int) -> str:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True).eval()
    encoded = tokenizer(prompt, return_tensors="pt")
    with torch.inference_mode():
        output = model.generate(
            **encoded,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.eos_token_id,
        )
    new_tokens = output[0, encoded["input_ids"].shape[1] :]
    return tokenizer.decode(new_tokens, skip_special_tokens=True)  # type: ignore[no-any-return]


def test_greedy_matches_direct_generate(
    generator: TransformersModule, generator_folder: Path
) -> None:
    text = generator.run(PROMPTS[0], max_new_tokens=8, do_sample=False)
    assert isinstance(text, str)
    assert text == direct_greedy(generator_folder, PROMPTS[0], 8)


def test_default_length_without_warning(
    generator: TransformersModule, generator_folder: Path
) -> None:
    # filterwarnings=error turns transformers' "default max_length" warning into
    # a failure, so this also checks that a length is always passed.
    assert generator.run(PROMPTS[0]) == direct_greedy(generator_folder, PROMPTS[0], 20)


def test_batch_of_prompts_matches_one_by_one(generator: TransformersModule) -> None:
    batched = generator.run(PROMPTS, max_new_tokens=6)
    assert isinstance(batched, list)
    assert batched == [generator.run(prompt, max_new_tokens=6) for prompt in PROMPTS]


def test_return_full_text(generator: TransformersModule) -> None:
    new = generator.run(PROMPTS[1], max_new_tokens=4)
    full = generator.run(PROMPTS[1], max_new_tokens=4, return_full_text=True)
    assert full == PROMPTS[1] + new


def test_num_return_sequences(generator: TransformersModule) -> None:
    options: dict[str, Any] = {"max_new_tokens": 4, "do_sample": True, "seed": 3}
    one = generator.run(PROMPTS[0], num_return_sequences=2, **options)
    several = generator.run(PROMPTS, num_return_sequences=2, **options)
    assert isinstance(one, list)
    assert len(one) == 2
    assert all(isinstance(text, str) for text in one)
    assert [len(texts) for texts in several] == [2, 2]


def test_seed_repeats_sampling_and_keeps_global_state(
    generator: TransformersModule,
) -> None:
    import torch

    options: dict[str, Any] = {"max_new_tokens": 8, "do_sample": True, "top_k": 0}
    torch.manual_seed(123)
    expected_draw = torch.rand(1)
    torch.manual_seed(123)
    first = generator.run(PROMPTS[0], seed=7, **options)
    assert torch.equal(torch.rand(1), expected_draw)
    assert generator.run(PROMPTS[0], seed=7, **options) == first


def test_generation_options_pass_through(generator: TransformersModule) -> None:
    text = generator.run(PROMPTS[0], max_new_tokens=2)
    assert isinstance(text, str)
    # Decoding and re-encoding may merge byte-level tokens, never add any.
    assert len(generator.tokenizer(text)["input_ids"]) <= 2
    longer = generator.run(PROMPTS[0], max_new_tokens=12, do_sample=False)
    assert longer.startswith(text)
    with pytest.raises(ValueError, match="not_an_option"):
        generator.run(PROMPTS[0], max_new_tokens=2, not_an_option=1)


def test_save_keeps_tokenizer_unchanged(
    generator: TransformersModule, generator_folder: Path, tmp_path: Path
) -> None:
    generator.run(PROMPTS, max_new_tokens=2)  # builds the left-padding copy
    generator.save(str(tmp_path / "saved"))
    original = json.loads((generator_folder / "tokenizer_config.json").read_text())
    saved = json.loads((tmp_path / "saved" / "tokenizer_config.json").read_text())
    assert saved.get("padding_side") == original.get("padding_side")
    assert saved.get("pad_token") == original.get("pad_token")
    reloaded = ModelManager().load(tmp_path / "saved", finder="transformers")
    assert reloaded.task == "text-generation"
    assert reloaded.run(PROMPTS, max_new_tokens=5) == generator.run(
        PROMPTS, max_new_tokens=5
    )


def test_prompts_must_be_text(generator: TransformersModule) -> None:
    with pytest.raises(TypeError, match="prompts"):
        generator.run({"prompt": "x"})  # type: ignore[arg-type]
