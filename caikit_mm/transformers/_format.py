"""Reading a Hugging Face transformers save folder without importing transformers.

A transformers save folder contains ``config.json`` with a ``model_type``, weights
(``model.safetensors``, ``pytorch_model.bin``, or shards listed in an index
file) and tokenizer files. A sentence-transformers folder adds ``modules.json``,
which lists the steps after the transformer (``1_Pooling``, ``2_Dense``,
``2_Normalize``) and may put the transformer itself in a subfolder. Everything
here reads small JSON files only, so a finder can check a folder cheaply.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from ..errors import ModelFormatError, ModelNotFoundError
from ..modules import CONFIG_FILE

FEATURE_EXTRACTION: Final = "feature-extraction"
SEQUENCE_CLASSIFICATION: Final = "sequence-classification"
TEXT_GENERATION: Final = "text-generation"
TASKS: Final = (FEATURE_EXTRACTION, SEQUENCE_CLASSIFICATION, TEXT_GENERATION)
# Hugging Face pipeline names that mean one of the tasks above.
TASK_ALIASES: Final = {"text-classification": SEQUENCE_CLASSIFICATION}

HF_CONFIG_FILE: Final = "config.json"
SAFETENSORS_FILE: Final = "model.safetensors"
PYTORCH_FILE: Final = "pytorch_model.bin"
WEIGHT_INDEX_FILES: Final = (
    f"{SAFETENSORS_FILE}.index.json",
    f"{PYTORCH_FILE}.index.json",
)
# Weights that only TensorFlow, Flax or llama.cpp can read.
FOREIGN_WEIGHT_FILES: Final = ("tf_model.h5", "flax_model.msgpack", "model.ckpt.index")
TOKENIZER_FILES: Final = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
)
MODULES_FILE: Final = "modules.json"
SENTENCE_BERT_CONFIG: Final = "sentence_bert_config.json"
SENTENCE_TRANSFORMERS_CONFIG: Final = "config_sentence_transformers.json"
TASK_MAP_KEY: Final = "task_map"
TRUST_REMOTE_CODE_KEY: Final = "trust_remote_code"

# Class names of the sentence-transformers modules this package runs itself.
# sentence-transformers 2.x writes "sentence_transformers.models.Pooling",
# later versions write longer module paths that end in the same class name.
ST_TRANSFORMER: Final = "Transformer"
ST_POOLING: Final = "Pooling"
ST_DENSE: Final = "Dense"
ST_NORMALIZE: Final = "Normalize"
ST_MODULES: Final = (ST_TRANSFORMER, ST_POOLING, ST_DENSE, ST_NORMALIZE)
# Pooling modes in the order sentence-transformers concatenates them, keyed by
# the legacy boolean keys of 1_Pooling/config.json.
POOLING_MODE_KEYS: Final = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
POOLING_MODES: Final = tuple(POOLING_MODE_KEYS.values())


@dataclass
class DenseStep:
    """A sentence-transformers ``Dense`` step: a linear layer and an activation.

    Attributes:
        path: The step's subfolder, holding ``config.json`` and the weights.
        config: The parsed ``config.json``: ``in_features``, ``out_features``,
            ``bias``, ``activation_function``.
    """

    path: str
    config: dict[str, Any]


@dataclass
class EmbeddingLayout:
    """How token embeddings become one sentence embedding.

    Attributes:
        pooling_modes: Pooling modes, concatenated in this order.
        dense: Dense steps applied after pooling, in order.
        normalize: Whether the result is L2-normalized.
        max_seq_length: Token limit from ``sentence_bert_config.json``, if set.
        do_lower_case: Whether texts are lower-cased before tokenizing.
        transformer_path: Subfolder of the transformer, ``""`` for the folder.
        extra_config: The parsed ``config_sentence_transformers.json``, if any.
        from_files: Whether the folder has ``modules.json``; ``False`` means the
            defaults (mean pooling, no normalization) apply.
    """

    pooling_modes: tuple[str, ...] = ("mean",)
    dense: list[DenseStep] = field(default_factory=list)
    normalize: bool = False
    max_seq_length: int | None = None
    do_lower_case: bool = False
    transformer_path: str = ""
    extra_config: dict[str, Any] | None = None
    from_files: bool = False


@dataclass
class ModelFolder:
    """What a transformers save folder contains, as read from its JSON files.

    Attributes:
        path: The folder that was inspected.
        model_dir: The folder with the transformer's ``config.json``: ``path``
            itself, or a subfolder named by ``modules.json``.
        config: The parsed ``config.json``.
        layout: The sentence-transformers steps, ``None`` without ``modules.json``.
    """

    path: str
    model_dir: str
    config: dict[str, Any]
    layout: EmbeddingLayout | None = None

    @property
    def model_type(self) -> str:
        """The ``model_type`` of ``config.json``, such as ``bert``."""
        return str(self.config["model_type"])

    @property
    def architectures(self) -> list[str]:
        """The model classes named in ``config.json``, possibly none."""
        return [str(name) for name in self.config.get("architectures") or []]


def normalize_task(task: str) -> str:
    """Return the canonical task name for ``task`` or one of its aliases.

    Raises:
        ValueError: ``task`` is not a supported task.
    """
    canonical = TASK_ALIASES.get(task, task)
    if canonical not in TASKS:
        raise ValueError(
            f"unknown task {task!r}; supported tasks: {', '.join(TASKS)} "
            f"(also {', '.join(TASK_ALIASES)})."
        )
    return canonical


def inspect_folder(
    folder: str, *, finder: str = "", caikit_config_ok: bool = False
) -> ModelFolder:
    """Check that ``folder`` is a loadable transformers save folder and read it.

    Args:
        folder: An existing folder.
        finder: Name of the finder instance, for errors.
        caikit_config_ok: Accept a folder that also contains ``config.yml``, as
            when that file names the transformers module.

    Raises:
        ModelNotFoundError: The folder contains ``config.yml`` and
            ``caikit_config_ok`` is false, or it has no ``config.json`` with a
            ``model_type``.
        ModelFormatError: ``config.json`` or a sentence-transformers file is
            invalid, or weights or tokenizer files are missing.
    """
    if not caikit_config_ok and os.path.isfile(os.path.join(folder, CONFIG_FILE)):
        raise ModelNotFoundError(
            f"Folder {folder!r} contains {CONFIG_FILE}, so it is a caikit_mm model, "
            "not a bare transformers save folder. Load it with the LOCAL finder, or "
            "with a MULTI finder that tries LOCAL before TRANSFORMERS.",
            model_path=folder,
            finder=finder,
        )
    layout = read_embedding_layout(folder)
    model_dir = os.path.join(folder, layout.transformer_path) if layout else folder
    config = _read_hf_config(model_dir, folder, finder)
    check_weights(model_dir)
    _check_tokenizer(model_dir)
    return ModelFolder(
        os.path.normpath(folder), os.path.normpath(model_dir), config, layout
    )


def _read_hf_config(model_dir: str, folder: str, finder: str) -> dict[str, Any]:
    config_file = os.path.join(model_dir, HF_CONFIG_FILE)
    if not os.path.isfile(config_file):
        raise ModelNotFoundError(
            f"Folder {folder!r} contains neither {CONFIG_FILE} nor a transformers "
            f"{config_file!r}, so it is not a saved model in a format this finder "
            "reads. Pass a folder written by save_pretrained or by caikit_mm.",
            model_path=folder,
            finder=finder,
        )
    config = read_json(config_file)
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
        raise ModelNotFoundError(
            f"{config_file!r} has no string 'model_type', so it is not a transformers "
            "model config. Pass a folder written by save_pretrained.",
            model_path=folder,
            finder=finder,
        )
    return config


def read_json(path: str) -> Any:
    """Parse the JSON file ``path``.

    Raises:
        ModelFormatError: The file cannot be read or is not valid JSON.
    """
    try:
        with open(path, encoding="utf-8") as stream:
            return json.load(stream)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFormatError(
            f"Cannot read {path!r}: {exc}. Save the model again with save_pretrained, "
            "or fix the file.",
            path=path,
        ) from None


def check_weights(model_dir: str) -> None:
    """Check that ``model_dir`` contains PyTorch-readable weights, shards included.

    Raises:
        ModelFormatError: No weights, only TensorFlow or Flax weights, or an index
            file that names missing shards.
    """
    for index_name in WEIGHT_INDEX_FILES:
        index_file = os.path.join(model_dir, index_name)
        if os.path.isfile(index_file):
            _check_shards(model_dir, index_file)
            return
    for name in os.listdir(model_dir):
        if name.endswith(".safetensors") or name == PYTORCH_FILE:
            return
    found = [
        name
        for name in FOREIGN_WEIGHT_FILES
        if os.path.exists(os.path.join(model_dir, name))
    ]
    hint = (
        f" It contains {', '.join(found)}, which only TensorFlow or Flax can read: "
        "convert the weights to safetensors first."
        if found
        else ""
    )
    if os.path.isfile(os.path.join(model_dir, "adapter_config.json")):
        hint += " It contains adapter_config.json: a PEFT adapter needs its base model."
    raise ModelFormatError(
        f"Folder {model_dir!r} has {HF_CONFIG_FILE} but no weights: expected "
        f"{SAFETENSORS_FILE}, {PYTORCH_FILE}, or shards listed in "
        f"{' or '.join(WEIGHT_INDEX_FILES)}.{hint} Save the model with "
        "save_pretrained, or copy its weight files into the folder.",
        path=model_dir,
    )


def _check_shards(model_dir: str, index_file: str) -> None:
    index = read_json(index_file)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise ModelFormatError(
            f"{index_file!r} has no 'weight_map' of tensor names to shard files. "
            "Save the model again with save_pretrained.",
            path=index_file,
        )
    shards = sorted({str(name) for name in weight_map.values()})
    missing = [
        name for name in shards if not os.path.isfile(os.path.join(model_dir, name))
    ]
    if missing:
        raise ModelFormatError(
            f"Folder {model_dir!r} lacks {len(missing)} of the {len(shards)} weight "
            f"shards listed in {os.path.basename(index_file)}: {', '.join(missing)}. "
            "Copy the missing shard files into the folder.",
            path=model_dir,
        )


def _check_tokenizer(model_dir: str) -> None:
    if any(os.path.isfile(os.path.join(model_dir, name)) for name in TOKENIZER_FILES):
        return
    raise ModelFormatError(
        f"Folder {model_dir!r} has weights but no tokenizer files (looked for "
        f"{', '.join(TOKENIZER_FILES)}). Save the tokenizer beside the model with "
        "tokenizer.save_pretrained(folder).",
        path=model_dir,
    )


def check_remote_code(model: ModelFolder, trust_remote_code: bool) -> None:
    """Reject a model whose classes live in the model folder unless trusted.

    ``auto_map`` in ``config.json`` or ``tokenizer_config.json`` points the Auto
    classes at Python files shipped with the model; loading them runs that code.

    Raises:
        ModelFormatError: The model needs remote code and ``trust_remote_code``
            is false.
    """
    if trust_remote_code:
        return
    sources = []
    if model.config.get("auto_map"):
        sources.append(os.path.join(model.model_dir, HF_CONFIG_FILE))
    tokenizer_config = os.path.join(model.model_dir, "tokenizer_config.json")
    if os.path.isfile(tokenizer_config):
        data = read_json(tokenizer_config)
        if isinstance(data, dict) and data.get("auto_map"):
            sources.append(tokenizer_config)
    if sources:
        raise ModelFormatError(
            f"Model {model.path!r} needs code shipped with the model: 'auto_map' in "
            f"{' and '.join(repr(s) for s in sources)} names Python classes that "
            f"loading would run. Set {TRUST_REMOTE_CODE_KEY}: true in the finder's "
            "config only if you trust that code.",
            path=model.path,
        )


def resolve_task(
    model: ModelFolder,
    task_map: Mapping[str, str],
    requested: str | None = None,
) -> str:
    """Choose the task for ``model``.

    The order: ``requested``; ``task_map`` by architecture, then by model type;
    ``feature-extraction`` for a sentence-transformers folder; the task implied
    by the architecture's class name.

    Raises:
        ModelFormatError: No source gives a task, or ``requested`` is unknown.
    """
    try:
        if requested:
            return normalize_task(requested)
        for key in (*model.architectures, model.model_type):
            if key in task_map:
                return normalize_task(task_map[key])
    except ValueError as exc:
        raise ModelFormatError(
            f"Model {model.path!r}: {exc}", path=model.path
        ) from None
    if model.layout is not None:
        return FEATURE_EXTRACTION
    for architecture in model.architectures:
        task = task_from_architecture(architecture)
        if task:
            return task
    raise ModelFormatError(
        f"No task is known for model {model.path!r} with architectures "
        f"{model.architectures or '(none)'} and model_type {model.model_type!r}. "
        f"Map one of them to a task ({', '.join(TASKS)}) under {TASK_MAP_KEY} in "
        f"the finder's config, for example {TASK_MAP_KEY}: "
        f"{{{(model.architectures or [model.model_type])[0]}: {FEATURE_EXTRACTION}}}.",
        path=model.path,
    )


def task_from_architecture(architecture: str) -> str | None:
    """Return the task a model class name implies, or ``None``.

    ``*ForSequenceClassification`` classifies, ``*ForCausalLM`` and
    ``*LMHeadModel`` generate text, and a bare ``*Model`` (``BertModel``)
    extracts features. ``*WithLMHeadModel`` classes are masked or seq2seq
    models despite the name.
    """
    if architecture.endswith("ForSequenceClassification"):
        return SEQUENCE_CLASSIFICATION
    if architecture.endswith("ForCausalLM") or (
        architecture.endswith("LMHeadModel") and "With" not in architecture
    ):
        return TEXT_GENERATION
    if (
        architecture.endswith("Model")
        and "For" not in architecture
        and "Head" not in architecture
    ):
        return FEATURE_EXTRACTION
    return None


def read_embedding_layout(folder: str) -> EmbeddingLayout | None:
    """Read the sentence-transformers steps of ``folder``, or ``None`` without them.

    Raises:
        ModelFormatError: ``modules.json`` is invalid, names a step that this
            package cannot run, or a step's config is invalid.
    """
    modules_file = os.path.join(folder, MODULES_FILE)
    if not os.path.isfile(modules_file):
        return None
    entries = read_json(modules_file)
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ModelFormatError(
            f"{modules_file!r} must be a JSON list of {{idx, name, path, type}} "
            "objects. Save the model again with sentence-transformers.",
            path=modules_file,
        )
    entries = sorted(entries, key=lambda entry: int(entry.get("idx", 0)))
    layout = EmbeddingLayout(pooling_modes=(), from_files=True)
    for entry in entries:
        _add_step(layout, folder, entry, modules_file)
    if not layout.pooling_modes:
        layout.pooling_modes = ("mean",)
    _read_sentence_configs(layout, folder)
    return layout


def _add_step(
    layout: EmbeddingLayout, folder: str, entry: dict[str, Any], modules_file: str
) -> None:
    type_name = str(entry.get("type", ""))
    kind = type_name.rpartition(".")[2]
    path = str(entry.get("path") or "")
    if not type_name.startswith("sentence_transformers.") or kind not in ST_MODULES:
        raise ModelFormatError(
            f"{modules_file!r} lists step {type_name!r}, which caikit_mm cannot run: "
            f"it runs the sentence-transformers steps {', '.join(ST_MODULES)}. Load "
            "this model with sentence-transformers itself.",
            path=modules_file,
        )
    if kind == ST_TRANSFORMER:
        layout.transformer_path = path
    elif kind == ST_POOLING:
        layout.pooling_modes = read_pooling_modes(
            os.path.join(folder, path, HF_CONFIG_FILE)
        )
    elif kind == ST_DENSE:
        config = read_json(os.path.join(folder, path, HF_CONFIG_FILE))
        layout.dense.append(DenseStep(path, _check_dense_config(config, folder, path)))
    else:
        layout.normalize = True


def read_pooling_modes(config_file: str) -> tuple[str, ...]:
    """Read the pooling modes from a sentence-transformers ``1_Pooling/config.json``.

    Both the legacy boolean keys (``pooling_mode_mean_tokens``) and the newer
    ``pooling_mode`` key (a name or a list of names) are understood. A config
    that selects no mode means mean pooling, as in sentence-transformers.

    Raises:
        ModelFormatError: The file is invalid or names an unknown mode.
    """
    if not os.path.isfile(config_file):
        return ("mean",)
    config = read_json(config_file)
    if not isinstance(config, dict):
        raise ModelFormatError(
            f"{config_file!r} must be a JSON object.", path=config_file
        )
    if "pooling_mode" in config:
        value = config["pooling_mode"]
        modes = (value,) if isinstance(value, str) else tuple(value or ())
    else:
        modes = tuple(
            mode for key, mode in POOLING_MODE_KEYS.items() if config.get(key)
        )
    unknown = [mode for mode in modes if mode not in POOLING_MODES]
    if unknown:
        raise ModelFormatError(
            f"{config_file!r} names pooling modes {unknown}; known modes: "
            f"{', '.join(POOLING_MODES)}.",
            path=config_file,
        )
    return modes or ("mean",)


def _check_dense_config(config: Any, folder: str, path: str) -> dict[str, Any]:
    config_file = os.path.join(folder, path, HF_CONFIG_FILE)
    if not isinstance(config, dict) or not all(
        isinstance(config.get(key), int) for key in ("in_features", "out_features")
    ):
        raise ModelFormatError(
            f"{config_file!r} must be a JSON object with integer in_features and "
            "out_features.",
            path=config_file,
        )
    if config.get("use_residual"):
        raise ModelFormatError(
            f"{config_file!r} sets use_residual, which caikit_mm does not run. Load "
            "this model with sentence-transformers itself.",
            path=config_file,
        )
    return config


def _read_sentence_configs(layout: EmbeddingLayout, folder: str) -> None:
    bert_config_file = os.path.join(
        folder, layout.transformer_path, SENTENCE_BERT_CONFIG
    )
    if not os.path.isfile(bert_config_file):
        bert_config_file = os.path.join(folder, SENTENCE_BERT_CONFIG)
    if os.path.isfile(bert_config_file):
        data = read_json(bert_config_file)
        if isinstance(data, dict):
            max_seq_length = data.get("max_seq_length")
            layout.max_seq_length = (
                max_seq_length if isinstance(max_seq_length, int) else None
            )
            layout.do_lower_case = bool(data.get("do_lower_case", False))
    extra_file = os.path.join(folder, SENTENCE_TRANSFORMERS_CONFIG)
    if os.path.isfile(extra_file):
        data = read_json(extra_file)
        layout.extra_config = data if isinstance(data, dict) else None


def names_in(values: Iterable[str]) -> str:
    """Join ``values`` for a message, or return ``(none)``."""
    return ", ".join(values) or "(none)"
