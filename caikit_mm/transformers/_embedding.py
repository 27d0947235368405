"""Sentence embeddings: pooling, Dense and Normalize steps, as sentence-transformers
runs them, and writing those steps back as sentence-transformers files.

torch is imported inside the functions; callers have imported it already.
"""

from __future__ import annotations

import json
import os
from typing import Any, Final

from ..errors import ModelFormatError
from ._format import (
    HF_CONFIG_FILE,
    MODULES_FILE,
    POOLING_MODE_KEYS,
    SENTENCE_BERT_CONFIG,
    SENTENCE_TRANSFORMERS_CONFIG,
    DenseStep,
    EmbeddingLayout,
)
from ._load_errors import weight_read_errors, weights_error

# torch.nn activations a Dense step may name, by class name. Only these are
# built, so a model's config never imports code.
DENSE_ACTIVATIONS: Final = frozenset(
    {
        "Identity",
        "Tanh",
        "ReLU",
        "GELU",
        "Sigmoid",
        "SiLU",
        "LeakyReLU",
        "ELU",
        "Softplus",
    }
)
DENSE_WEIGHT_FILES: Final = ("model.safetensors", "pytorch_model.bin")
ST_TYPE_PREFIX: Final = "sentence_transformers.models."


class DenseLayer:
    """A loaded Dense step: ``activation(linear(x))``.

    Args:
        step: The step's description.
        folder: The model folder that contains the step's subfolder.
        device: Where to put the weights.
    """

    def __init__(self, step: DenseStep, folder: str, device: Any) -> None:
        import torch

        self.step = step
        config = step.config
        self.linear = torch.nn.Linear(
            config["in_features"],
            config["out_features"],
            bias=bool(config.get("bias", True)),
        )
        self.activation = _activation(
            config.get("activation_function"), folder, step.path
        )
        state = _read_state_dict(os.path.join(folder, step.path))
        weights = {key.removeprefix("linear."): value for key, value in state.items()}
        try:
            self.linear.load_state_dict(weights)
        except RuntimeError as exc:
            raise ModelFormatError(
                f"Dense weights in {os.path.join(folder, step.path)!r} do not match "
                f"its config.json: {exc}",
                path=os.path.join(folder, step.path),
            ) from None
        self.linear.to(device).eval()

    def __call__(self, embeddings: Any) -> Any:
        return self.activation(self.linear(embeddings.to(self.linear.weight.dtype)))

    def save(self, folder: str) -> None:
        """Write the step's ``config.json`` and weights under ``folder``."""
        from safetensors.torch import save_file

        target = os.path.join(folder, self.step.path)
        os.makedirs(target, exist_ok=True)
        write_json(os.path.join(target, HF_CONFIG_FILE), self.step.config)
        state = {
            f"linear.{k}": v.detach().cpu().contiguous()
            for k, v in self.linear.state_dict().items()
        }
        save_file(state, os.path.join(target, DENSE_WEIGHT_FILES[0]))


def _activation(name: Any, folder: str, path: str) -> Any:
    import torch

    if name is None:
        return torch.nn.Identity()
    class_name = str(name).rpartition(".")[2]
    if not str(name).startswith("torch.") or class_name not in DENSE_ACTIVATIONS:
        raise ModelFormatError(
            f"Dense step {os.path.join(folder, path)!r} names activation {name!r}; "
            f"caikit_mm builds only the torch.nn activations "
            f"{', '.join(sorted(DENSE_ACTIVATIONS))}.",
            path=os.path.join(folder, path),
        )
    return getattr(torch.nn, class_name)()


def _read_state_dict(step_dir: str) -> dict[str, Any]:
    safetensors_file = os.path.join(step_dir, DENSE_WEIGHT_FILES[0])
    bin_file = os.path.join(step_dir, DENSE_WEIGHT_FILES[1])
    for path in (safetensors_file, bin_file):
        if os.path.isfile(path):
            try:
                return _read_weight_file(path)
            except weight_read_errors() as exc:
                raise weights_error([path], exc) from exc
    raise ModelFormatError(
        f"Dense step {step_dir!r} has no weights: expected "
        f"{' or '.join(DENSE_WEIGHT_FILES)}.",
        path=step_dir,
    )


def _read_weight_file(path: str) -> dict[str, Any]:
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)  # type: ignore[no-any-return]


def pool(modes: tuple[str, ...], token_embeddings: Any, attention_mask: Any) -> Any:
    """Pool ``token_embeddings`` (batch, tokens, hidden) into (batch, hidden * modes).

    Padding positions, where ``attention_mask`` is 0, are ignored. Several modes
    are concatenated in the given order. Sums run in float32 for half-precision
    inputs.
    """
    import torch

    mask = attention_mask.unsqueeze(-1).to(token_embeddings.dtype)
    accumulate = (
        torch.float32
        if token_embeddings.dtype in (torch.float16, torch.bfloat16)
        else token_embeddings.dtype
    )
    vectors = []
    for mode in modes:
        if mode == "cls":
            first = attention_mask.to(torch.int).argmax(dim=1)
            vectors.append(token_embeddings[torch.arange(len(first)), first])
        elif mode == "max":
            masked = token_embeddings.masked_fill(mask == 0, float("-inf"))
            vectors.append(masked.max(dim=1).values)
        elif mode in ("mean", "mean_sqrt_len_tokens"):
            total = (token_embeddings * mask).sum(dim=1, dtype=accumulate)
            count = mask.sum(dim=1, dtype=accumulate).clamp(min=1e-9)
            denominator = count if mode == "mean" else count.sqrt()
            vectors.append((total / denominator).to(token_embeddings.dtype))
        elif mode == "weightedmean":
            vectors.append(_weighted_mean(token_embeddings, attention_mask, accumulate))
        else:  # lasttoken
            vectors.append(_last_token(token_embeddings, attention_mask))
    return torch.cat(vectors, dim=-1)


def _weighted_mean(token_embeddings: Any, attention_mask: Any, accumulate: Any) -> Any:
    import torch

    # Position weights 1, 2, 3, ... start at the first real token, so left
    # padding does not shift them.
    weights = torch.arange(
        1,
        token_embeddings.shape[1] + 1,
        device=token_embeddings.device,
        dtype=accumulate,
    ).view(1, -1, 1)
    weights = weights - attention_mask.to(torch.int32).argmax(dim=1).view(-1, 1, 1)
    weighted_mask = attention_mask.unsqueeze(-1).to(accumulate) * weights
    total = (token_embeddings * weighted_mask).sum(dim=1)
    return (total / weighted_mask.sum(dim=1).clamp(min=1e-9)).to(token_embeddings.dtype)


def _last_token(token_embeddings: Any, attention_mask: Any) -> Any:
    import torch

    # The last position whose mask is 1 works for left and right padding.
    length = attention_mask.shape[1]
    values, reversed_index = attention_mask.flip(1).max(dim=1)
    last = length - 1 - torch.where(values == 0, length - 1, reversed_index)
    return token_embeddings[torch.arange(len(last)), last]


def normalize(embeddings: Any) -> Any:
    """L2-normalize each row of ``embeddings``."""
    import torch

    return torch.nn.functional.normalize(embeddings, p=2, dim=-1)


def save_layout(
    layout: EmbeddingLayout, dense: list[DenseLayer], folder: str, hidden: int
) -> None:
    """Write ``modules.json`` and the step folders for ``layout`` into ``folder``.

    Files use the sentence-transformers 2.x names and keys, which every later
    sentence-transformers version also reads. The transformer sits at the top
    of ``folder``.
    """
    steps: list[dict[str, Any]] = [_module_entry(0, "", "Transformer")]
    write_json(
        os.path.join(folder, SENTENCE_BERT_CONFIG),
        {
            "max_seq_length": layout.max_seq_length,
            "do_lower_case": layout.do_lower_case,
        },
    )
    pooling_dir = "1_Pooling"
    steps.append(_module_entry(1, pooling_dir, "Pooling"))
    pooling = {"word_embedding_dimension": hidden}
    pooling.update(
        {key: mode in layout.pooling_modes for key, mode in POOLING_MODE_KEYS.items()}
    )
    os.makedirs(os.path.join(folder, pooling_dir), exist_ok=True)
    write_json(os.path.join(folder, pooling_dir, HF_CONFIG_FILE), pooling)
    for layer in dense:
        index = len(steps)
        layer.step.path = f"{index}_Dense"
        steps.append(_module_entry(index, layer.step.path, "Dense"))
        layer.save(folder)
    if layout.normalize:
        steps.append(_module_entry(len(steps), f"{len(steps)}_Normalize", "Normalize"))
    write_json(os.path.join(folder, MODULES_FILE), steps)
    if layout.extra_config is not None:
        write_json(
            os.path.join(folder, SENTENCE_TRANSFORMERS_CONFIG), layout.extra_config
        )


def _module_entry(index: int, path: str, kind: str) -> dict[str, Any]:
    return {
        "idx": index,
        "name": str(index),
        "path": path,
        "type": f"{ST_TYPE_PREFIX}{kind}",
    }


def write_json(path: str, data: Any) -> None:
    """Write ``data`` as indented JSON to ``path``."""
    with open(path, "w", encoding="utf-8") as stream:
        json.dump(data, stream, indent=2)
        stream.write("\n")
