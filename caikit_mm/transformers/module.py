"""The built-in module that runs Hugging Face transformers models.

Importing this file registers :class:`TransformersModule` under
:data:`MODULE_ID` and imports neither torch nor transformers; they are imported
when a model is loaded, trained or run.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Final

from ..errors import ModelFormatError
from ..modules import ModuleBase, ModuleConfig, module
from . import _embedding, _format, _load_errors, _runtime, _tasks, _training
from ._format import FEATURE_EXTRACTION, SEQUENCE_CLASSIFICATION, TEXT_GENERATION

log = logging.getLogger(__name__)

MODULE_ID: Final = "caikit_mm.transformers"
AUTO_CLASSES: Final = {
    FEATURE_EXTRACTION: "AutoModel",
    SEQUENCE_CLASSIFICATION: "AutoModelForSequenceClassification",
    TEXT_GENERATION: "AutoModelForCausalLM",
}
# A tokenizer's model_max_length above this means "not set" (transformers
# stores a huge sentinel then).
UNSET_LENGTH: Final = 1_000_000


@module(id=MODULE_ID, name="HuggingFaceTransformers", version="0.1.0")
class TransformersModule(ModuleBase):
    """A transformers model and its tokenizer, loaded for one task.

    ``run`` calls :meth:`embed`, :meth:`classify` or :meth:`generate`, by task.

    Args:
        model: The loaded ``PreTrainedModel``.
        tokenizer: Its tokenizer.
        task: ``feature-extraction``, ``sequence-classification`` or
            ``text-generation``.
        layout: How embeddings are pooled; mean pooling when ``None``. Used by
            ``feature-extraction`` only.
        dense: Loaded Dense steps of the layout.
        max_length: Token limit for embedding and classification inputs.
        trust_remote_code: Whether the model was loaded with code shipped in
            its folder.
    """

    TASKS: ClassVar[tuple[str, ...]] = _format.TASKS

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        task: str,
        *,
        layout: _format.EmbeddingLayout | None = None,
        dense: Iterable[_embedding.DenseLayer] = (),
        max_length: int | None = None,
        trust_remote_code: bool = False,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.task = _format.normalize_task(task)
        self.layout = layout or _format.EmbeddingLayout()
        self.dense = list(dense)
        self.max_length = max_length
        self.trust_remote_code = trust_remote_code
        self.tokenizer_lock = threading.Lock()
        self.training_losses: list[float] = []
        self._generation_tokenizer: Any = None

    # Loading -------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        model_path: str,
        module_config: ModuleConfig | None = None,
        *,
        task: str | None = None,
        device: str | None = None,
        torch_dtype: str | None = None,
        **unexpected: Any,
    ) -> TransformersModule:
        """Load a transformers save folder from local files only.

        Settings come from the keyword arguments, then ``module_config`` (as the
        TRANSFORMERS finder writes it), then the defaults: the task the
        architecture implies, device ``cpu``, dtype ``auto``, no remote code.
        Only a :class:`FinderModuleConfig` can allow remote code, so a
        ``config.yml`` in the model folder cannot allow it for its own model.

        Raises:
            ModelFormatError: The folder is not loadable (see the finder), needs
                remote code that the config does not trust, its ``config.yml``
                sets ``trust_remote_code``, a weight file is corrupt, or
                transformers cannot build the model.
            ValueError: The device or dtype setting is invalid, or the device is
                not available.
            TypeError: An unknown keyword argument.
            ImportError: The ``transformers`` extra is not installed.
        """
        if unexpected:
            raise TypeError(
                f"TransformersModule.load() got unknown keyword arguments "
                f"{sorted(unexpected)}; it accepts task, device and torch_dtype."
            )
        settings: Mapping[str, Any] = module_config or {}
        trust = _trust_remote_code(module_config)
        folder = _format.inspect_folder(os.fspath(model_path), caikit_config_ok=True)
        _format.check_remote_code(folder, trust)
        chosen_task = _format.resolve_task(folder, {}, task or settings.get("task"))
        device_name = device or settings.get("device") or _runtime.DEFAULT_DEVICE
        dtype = torch_dtype or settings.get("torch_dtype") or _runtime.DEFAULT_DTYPE
        _runtime.check_dtype(dtype)
        # Resolving the device first rejects an unavailable GPU before the
        # weights are read.
        target = _runtime.resolve_device(device_name)
        start = time.perf_counter()
        model, tokenizer = _load_pretrained(folder, chosen_task, trust, dtype)
        if model.device != target:
            model.to(target)
        model.eval()
        dense = [
            _embedding.DenseLayer(step, folder.path, target)
            for step in (folder.layout.dense if folder.layout else [])
        ]
        max_length = _max_length(folder.layout, tokenizer, model.config)
        log.debug(
            "Loaded %s for %s on %s in %.1f ms",
            folder.model_dir,
            chosen_task,
            target,
            (time.perf_counter() - start) * 1000,
        )
        return cls(
            model,
            tokenizer,
            chosen_task,
            layout=folder.layout,
            dense=dense,
            max_length=max_length,
            trust_remote_code=trust,
        )

    # Inference -----------------------------------------------------------------

    @property
    def device(self) -> Any:
        """The ``torch.device`` the model's weights are on."""
        return self.model.device

    @property
    def labels(self) -> list[str]:
        """The classifier's label names, by class index."""
        id2label = self.model.config.id2label
        return [str(id2label[index]) for index in range(len(id2label))]

    @property
    def generation_tokenizer(self) -> Any:
        """A copy of the tokenizer that pads on the left, as generation needs.

        A tokenizer without a pad token pads with its end-of-sequence token. The
        copy keeps :attr:`tokenizer` exactly as loaded, so :meth:`save` writes
        it back unchanged.
        """
        if self._generation_tokenizer is None:
            tokenizer = copy.deepcopy(self.tokenizer)
            tokenizer.padding_side = "left"
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            self._generation_tokenizer = tokenizer
        return self._generation_tokenizer

    def run(self, inputs: str | list[str], **options: Any) -> Any:
        """Run the model's task on ``inputs``; ``options`` go to that task's method."""
        if self.task == FEATURE_EXTRACTION:
            return self.embed(inputs, **options)
        if self.task == SEQUENCE_CLASSIFICATION:
            return self.classify(inputs, **options)
        return self.generate(inputs, **options)

    def embed(
        self,
        texts: str | list[str],
        *,
        batch_size: int = 32,
        normalize: bool | None = None,
        max_length: int | None = None,
    ) -> list[float] | list[list[float]]:
        """Return sentence embeddings, pooled as the model's files ask.

        Args:
            texts: One text, or a list of texts.
            batch_size: Texts per forward pass.
            normalize: L2-normalize the embeddings; by default only when the
                model's ``modules.json`` has a ``Normalize`` step.
            max_length: Token limit; the model's ``max_seq_length`` by default.

        Returns:
            One list of floats for a string, one per text for a list.
        """
        self._require_task(FEATURE_EXTRACTION, "embed")
        single, batch = _tasks.as_batch(texts, "texts")
        rows = _tasks.embed(
            self,
            batch,
            batch_size=_positive(batch_size, "batch_size"),
            normalize=normalize,
            max_length=max_length,
        )
        return rows[0] if single else rows

    def classify(
        self,
        texts: str | list[str],
        *,
        top_k: int | None = None,
        function_to_apply: str | None = None,
        batch_size: int = 32,
        max_length: int | None = None,
    ) -> list[dict[str, Any]] | list[list[dict[str, Any]]]:
        """Return labels and scores from the model's own label map.

        Args:
            texts: One text, or a list of texts.
            top_k: Keep the best ``top_k`` labels; all labels by default.
            function_to_apply: ``softmax``, ``sigmoid`` or ``none`` (raw
                logits). By default ``sigmoid`` for multi-label models and
                single-output models, ``none`` for regression, else ``softmax``.
            batch_size: Texts per forward pass.
            max_length: Token limit; the model's own by default.

        Returns:
            For a string, ``[{"label": ..., "score": ...}, ...]`` by descending
            score; for a list, one such list per text.
        """
        self._require_task(SEQUENCE_CLASSIFICATION, "classify")
        single, batch = _tasks.as_batch(texts, "texts")
        if top_k is not None:
            _positive(top_k, "top_k")
        results = _tasks.classify(
            self,
            batch,
            top_k=top_k,
            function_to_apply=function_to_apply,
            batch_size=_positive(batch_size, "batch_size"),
            max_length=max_length,
        )
        return results[0] if single else results

    def generate(
        self,
        prompts: str | list[str],
        *,
        return_full_text: bool = False,
        seed: int | None = None,
        batch_size: int = 8,
        **generate_options: Any,
    ) -> str | list[str] | list[list[str]]:
        """Generate text that continues each prompt.

        Args:
            prompts: One prompt, or a list of prompts.
            return_full_text: Prefix each result with its prompt.
            seed: Seed torch's random generator for this call only, so sampling
                repeats; the global random state is left as it was.
            batch_size: Prompts per ``generate`` call.
            **generate_options: Passed to ``model.generate``, such as
                ``max_new_tokens``, ``do_sample``, ``temperature``, ``top_p``,
                ``num_beams``, ``num_return_sequences``. Without a length here
                or in the model's ``generation_config.json``,
                ``max_new_tokens`` is 20.

        Returns:
            For a string, the generated text; for a list, one per prompt. With
            ``num_return_sequences`` above 1, a list of texts in place of each
            text.
        """
        self._require_task(TEXT_GENERATION, "generate")
        single, batch = _tasks.as_batch(prompts, "prompts")
        results = _tasks.generate(
            self,
            batch,
            return_full_text=return_full_text,
            seed=seed,
            batch_size=_positive(batch_size, "batch_size"),
            options=generate_options,
        )
        several = int(generate_options.get("num_return_sequences", 1)) > 1
        texts: list[Any] = results if several else [texts[0] for texts in results]
        return texts[0] if single else texts

    def _require_task(self, task: str, method: str) -> None:
        if self.task != task:
            raise ValueError(
                f"{method}() needs a model loaded for {task}, but this one is loaded "
                f"for {self.task}. Load it with task={task!r}, or call run()."
            )

    # Saving --------------------------------------------------------------------

    def save(self, model_path: str) -> None:
        """Write the model in the transformers format into the folder ``model_path``.

        The folder contains what ``save_pretrained`` writes for the model and the
        tokenizer, plus, for ``feature-extraction``, the sentence-transformers
        files that describe pooling. No ``config.yml`` is written, so the folder
        loads through the TRANSFORMERS finder. Files are written to a temporary
        folder beside ``model_path``, which then replaces ``model_path``.
        """
        target = os.path.abspath(os.fspath(model_path))
        parent, name = os.path.split(target)
        os.makedirs(parent, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=parent)
        try:
            self.model.save_pretrained(staging)
            with self.tokenizer_lock:
                self.tokenizer.save_pretrained(staging)
            if self.task == FEATURE_EXTRACTION:
                self._save_layout(staging)
            _replace_folder(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        log.info("Saved %s model to %s", self.task, target)

    def _save_layout(self, folder: str) -> None:
        layout = copy.copy(self.layout)
        layout.max_seq_length = self.max_length
        hidden = int(self.model.config.hidden_size)
        _embedding.save_layout(layout, self.dense, folder, hidden)

    # Training ------------------------------------------------------------------

    @classmethod
    def train(
        cls,
        train_data: Iterable[Any],
        base_model: str | os.PathLike[str] | TransformersModule,
        *,
        labels: Iterable[str] | None = None,
        num_epochs: int = 3,
        learning_rate: float = 5e-5,
        batch_size: int = 8,
        weight_decay: float = 0.0,
        max_length: int | None = None,
        seed: int = 0,
        device: str = _runtime.DEFAULT_DEVICE,
    ) -> TransformersModule:
        """Fine-tune a sequence classifier on labelled texts.

        Args:
            train_data: ``(text, label)`` pairs, or mappings with ``text`` and
                ``label``; labels become strings.
            base_model: A transformers save folder or a loaded module. A new
                classifier head is added unless the base model already
                classifies into the same labels.
            labels: Label names in class-index order; by default the base
                classifier's labels when they cover the data, else the sorted
                labels of ``train_data``.
            num_epochs: Passes over ``train_data``.
            learning_rate: AdamW learning rate.
            batch_size: Examples per optimizer step.
            weight_decay: AdamW weight decay.
            max_length: Token limit per text; the model's own by default.
            seed: Seed for the new head, dropout and shuffling; the global random
                state is left as it was.
            device: Where to train.

        Returns:
            The trained model, for ``sequence-classification``, in evaluation mode.

        Raises:
            ValueError: Invalid examples, options or labels.
            ModelFormatError: ``base_model`` is not a loadable folder.
        """
        options = _training.TrainingOptions(
            num_epochs, learning_rate, batch_size, weight_decay, max_length, seed
        )
        options.validate()
        texts, text_labels = _training.read_examples(train_data)
        torch = _runtime.import_torch()
        with tempfile.TemporaryDirectory(prefix="caikit-mm-base-") as scratch:
            folder = _base_folder(base_model, scratch)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model, tokenizer, label_names = _classifier_for(
                    folder, text_labels, labels
                )
                target = _runtime.resolve_device(device)
                options.max_length = max_length or _max_length(
                    None, tokenizer, model.config
                )
                index = {label: position for position, label in enumerate(label_names)}
                losses = _training.fine_tune(
                    model,
                    tokenizer,
                    texts,
                    [index[label] for label in text_labels],
                    options,
                    target,
                )
        trained = cls(
            model, tokenizer, SEQUENCE_CLASSIFICATION, max_length=options.max_length
        )
        trained.training_losses = losses
        return trained


class FinderModuleConfig(ModuleConfig):
    """A module config that the TRANSFORMERS finder built from its own settings.

    Its ``trust_remote_code`` comes from the deployment's configuration, unlike
    a ``config.yml`` that ships inside a model folder.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep the type through pickling, as to a Ray actor.
        return (_rebuild_finder_config, (self.to_dict(), self.model_path))


def _rebuild_finder_config(
    data: dict[str, Any], model_path: str | None
) -> FinderModuleConfig:
    return FinderModuleConfig(data, model_path)


def _trust_remote_code(module_config: ModuleConfig | None) -> bool:
    if module_config is None or not module_config.get("trust_remote_code", False):
        return False
    if isinstance(module_config, FinderModuleConfig):
        return True
    raise ModelFormatError(
        f"The config.yml of {module_config.model_path!r} sets trust_remote_code, "
        "but a model folder cannot allow its own code to run. Remove the key, and "
        "load the folder with a TRANSFORMERS finder whose config sets "
        "trust_remote_code: true.",
        path=module_config.model_path,
    )


def _load_pretrained(
    folder: _format.ModelFolder, task: str, trust: bool, dtype: str
) -> tuple[Any, Any]:
    transformers = _runtime.import_transformers()
    model_dir = folder.model_dir
    auto_class = getattr(transformers, AUTO_CLASSES[task])
    common = {"local_files_only": True, "trust_remote_code": trust}
    dtype_argument = _runtime.dtype_argument(dtype)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir, **common)
    except (OSError, ValueError, KeyError) as exc:
        raise _load_errors.load_error(
            transformers, model_dir, "AutoTokenizer", task, folder.model_type, exc
        ) from exc
    try:
        model = auto_class.from_pretrained(model_dir, **common, **dtype_argument)
    except _load_errors.weight_read_errors() as exc:
        raise _load_errors.corrupt_weights_error(model_dir, exc) from exc
    except (OSError, ValueError, KeyError) as exc:
        raise _load_errors.load_error(
            transformers, model_dir, AUTO_CLASSES[task], task, folder.model_type, exc
        ) from exc
    return model, tokenizer


def _max_length(
    layout: _format.EmbeddingLayout | None, tokenizer: Any, config: Any
) -> int | None:
    """Return the token limit: ``max_seq_length`` of a sentence-transformers
    folder, else the tokenizer's, capped by the model's position embeddings."""
    limits = []
    if layout is not None and layout.max_seq_length:
        limits.append(layout.max_seq_length)
    else:
        limit = getattr(tokenizer, "model_max_length", None)
        if isinstance(limit, int) and limit < UNSET_LENGTH:
            limits.append(limit)
    for key in ("max_position_embeddings", "n_positions"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            limits.append(value)
            break
    return min(limits) if limits else None


def _positive(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return value


def _replace_folder(staging: str, target: str) -> None:
    """Move ``staging`` to ``target``, replacing a folder that is already there."""
    if not os.path.lexists(target):
        os.rename(staging, target)
        return
    if not os.path.isdir(target) or os.path.islink(target):
        raise FileExistsError(
            f"Cannot save the model to {target!r}: it exists and is not a folder. "
            "Remove it or choose another path."
        )
    retired = f"{target}.{uuid.uuid4().hex[:8]}.old"
    os.rename(target, retired)
    os.rename(staging, target)
    shutil.rmtree(retired, ignore_errors=True)


def _base_folder(base_model: Any, scratch: str) -> _format.ModelFolder:
    if isinstance(base_model, TransformersModule):
        path = os.path.join(scratch, "base")
        base_model.save(path)
        return _format.inspect_folder(path)
    if not isinstance(base_model, (str, os.PathLike)) or not os.path.isdir(base_model):
        raise ModelFormatError(
            f"base_model must be a transformers save folder or a loaded "
            f"TransformersModule, got {base_model!r:.80}.",
            path=str(base_model)
            if isinstance(base_model, (str, os.PathLike))
            else None,
        )
    folder = _format.inspect_folder(os.fspath(base_model), caikit_config_ok=True)
    _format.check_remote_code(folder, False)
    return folder


def _classifier_for(
    folder: _format.ModelFolder,
    text_labels: list[str],
    labels: Iterable[str] | None,
) -> tuple[Any, Any, list[str]]:
    """Load ``folder`` as a classifier over the chosen labels, in float32."""
    transformers = _runtime.import_transformers()
    common = {"local_files_only": True}
    config = transformers.AutoConfig.from_pretrained(folder.model_dir, **common)
    names = _choose_labels(config, text_labels, labels)
    keep_head = (
        _format.task_from_architecture((folder.architectures or [""])[0])
        == SEQUENCE_CLASSIFICATION
        and _label_names(config) == names
    )
    if not keep_head:
        config.id2label = dict(enumerate(names))
        config.label2id = {name: index for index, name in enumerate(names)}
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        folder.model_dir,
        config=config,
        ignore_mismatched_sizes=not keep_head,
        **common,
        **_runtime.dtype_argument("float32"),
    )
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder.model_dir, **common)
    return model, tokenizer, names


def _label_names(config: Any) -> list[str]:
    id2label = getattr(config, "id2label", None) or {}
    return [str(id2label[index]) for index in range(len(id2label))]


def _choose_labels(
    config: Any, text_labels: list[str], labels: Iterable[str] | None
) -> list[str]:
    seen = sorted(set(text_labels))
    if labels is not None:
        names = [str(label) for label in labels]
        missing = [label for label in seen if label not in names]
        if missing or len(set(names)) != len(names):
            raise ValueError(
                f"labels {names} must be distinct and cover every label in "
                f"train_data; missing: {missing}."
            )
        return names
    existing = _label_names(config)
    # A base classifier whose labels cover the data keeps its own order.
    if set(seen) <= set(existing) and not _default_label_names(existing):
        return existing
    return seen


def _default_label_names(names: list[str]) -> bool:
    # transformers names the classes of an untrained config LABEL_0, LABEL_1, ...
    return names == [f"LABEL_{index}" for index in range(len(names))]
