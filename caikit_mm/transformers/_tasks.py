"""Inference for each task on a loaded model: embeddings, classes, generated text.

Each function takes the parts of a loaded :class:`TransformersModule` and
returns plain Python data. torch is imported inside the functions.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any, Final

from . import _embedding

SCORE_FUNCTIONS: Final = ("softmax", "sigmoid", "none")
# Used when neither the caller nor the model's generation_config.json sets a
# length; transformers' own fallback (a total max_length of 20) warns instead.
DEFAULT_MAX_NEW_TOKENS: Final = 20


def as_batch(inputs: Any, name: str) -> tuple[bool, list[str]]:
    """Return whether ``inputs`` is one string, and the strings as a list.

    Raises:
        TypeError: ``inputs`` is neither a string nor a sequence of strings.
    """
    if isinstance(inputs, str):
        return True, [inputs]
    if isinstance(inputs, Sequence) and all(isinstance(item, str) for item in inputs):
        return False, list(inputs)
    raise TypeError(
        f"{name} must be a string or a list of strings, got "
        f"{type(inputs).__name__}: {inputs!r:.80}."
    )


def tokenize(
    tokenizer: Any,
    lock: threading.Lock,
    texts: list[str],
    max_length: int | None,
    device: Any,
) -> Any:
    """Tokenize ``texts`` into padded tensors on ``device``.

    The lock serializes calls: a fast tokenizer stores the padding and
    truncation settings of the current call on the shared Rust object.
    """
    with lock:
        encoded = tokenizer(
            texts,
            padding=True,
            truncation=max_length is not None,
            max_length=max_length,
            return_tensors="pt",
        )
    return encoded.to(device)


def embed(
    module: Any,
    texts: list[str],
    *,
    batch_size: int,
    normalize: bool | None,
    max_length: int | None,
) -> list[list[float]]:
    """Return one embedding per text, in the order of ``texts``."""
    import torch

    layout = module.layout
    if layout.do_lower_case:
        texts = [text.lower() for text in texts]
    normalize = layout.normalize if normalize is None else normalize
    # Longest first, so each batch pads to similar lengths.
    order = sorted(range(len(texts)), key=lambda index: -len(texts[index]))
    rows: list[list[float]] = [[] for _ in texts]
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            indices = order[start : start + batch_size]
            encoded = tokenize(
                module.tokenizer,
                module.tokenizer_lock,
                [texts[index] for index in indices],
                max_length or module.max_length,
                module.device,
            )
            token_embeddings = module.model(**encoded)[0]
            vectors = _embedding.pool(
                layout.pooling_modes, token_embeddings, encoded["attention_mask"]
            )
            for dense in module.dense:
                vectors = dense(vectors)
            if normalize:
                vectors = _embedding.normalize(vectors)
            for index, row in zip(indices, vectors.float().cpu().tolist(), strict=True):
                rows[index] = row
    return rows


def classify(
    module: Any,
    texts: list[str],
    *,
    top_k: int | None,
    function_to_apply: str | None,
    batch_size: int,
    max_length: int | None,
) -> list[list[dict[str, Any]]]:
    """Return, per text, ``{"label", "score"}`` dicts by descending score."""
    import torch

    config = module.model.config
    function = function_to_apply or default_score_function(config)
    if function not in SCORE_FUNCTIONS:
        raise ValueError(
            f"function_to_apply must be one of {', '.join(SCORE_FUNCTIONS)}, got "
            f"{function!r}."
        )
    labels = module.labels
    results = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            encoded = tokenize(
                module.tokenizer,
                module.tokenizer_lock,
                texts[start : start + batch_size],
                max_length or module.max_length,
                module.device,
            )
            logits = module.model(**encoded).logits.float()
            if function == "softmax":
                logits = logits.softmax(dim=-1)
            elif function == "sigmoid":
                logits = logits.sigmoid()
            for row in logits.cpu().tolist():
                ranked = sorted(
                    zip(labels, row, strict=True), key=lambda pair: -pair[1]
                )
                results.append(
                    [
                        {"label": label, "score": score}
                        for label, score in ranked[:top_k]
                    ]
                )
    return results


def default_score_function(config: Any) -> str:
    """Return the score function the model's config implies, as transformers'
    text-classification pipeline chooses it."""
    if config.problem_type == "multi_label_classification" or config.num_labels == 1:
        return "sigmoid"
    if config.problem_type == "regression":
        return "none"
    return "softmax"


def generate(
    module: Any,
    prompts: list[str],
    *,
    return_full_text: bool,
    seed: int | None,
    batch_size: int,
    options: dict[str, Any],
) -> list[list[str]]:
    """Return, per prompt, the generated texts (``num_return_sequences`` of them)."""
    import torch

    model = module.model
    options = dict(options)
    if "max_new_tokens" not in options and "max_length" not in options:
        if not _model_sets_length(model.generation_config):
            options["max_new_tokens"] = DEFAULT_MAX_NEW_TOKENS
    if model.generation_config.pad_token_id is None and "pad_token_id" not in options:
        options["pad_token_id"] = module.generation_tokenizer.pad_token_id
    count = int(options.get("num_return_sequences", 1))
    results: list[list[str]] = []
    with torch.inference_mode(), _seeded(seed, module.device):
        for start in range(0, len(prompts), batch_size):
            batch = prompts[start : start + batch_size]
            encoded = tokenize(
                module.generation_tokenizer,
                module.tokenizer_lock,
                batch,
                None,
                module.device,
            )
            output = model.generate(**encoded, **options)
            # Left padding makes every prompt end at the same position.
            new_tokens = output[:, encoded["input_ids"].shape[1] :]
            with module.tokenizer_lock:
                texts = module.tokenizer.batch_decode(
                    new_tokens, skip_special_tokens=True
                )
            for index, prompt in enumerate(batch):
                generated = texts[index * count : (index + 1) * count]
                if return_full_text:
                    generated = [prompt + text for text in generated]
                results.append(generated)
    return results


@contextlib.contextmanager
def _seeded(seed: int | None, device: Any) -> Iterator[None]:
    """Seed torch for the block only; the global random state is restored after."""
    if seed is None:
        yield
        return
    import torch

    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _model_sets_length(generation_config: Any) -> bool:
    if generation_config.max_new_tokens is not None:
        return True
    # to_diff_dict contains only the values that differ from GenerationConfig's
    # defaults, so max_length appears there only when the model set it.
    return "max_length" in generation_config.to_diff_dict()
