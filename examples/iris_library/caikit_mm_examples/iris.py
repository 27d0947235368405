"""``IrisClassifier``: logistic regression on the iris data set that scikit-learn ships.

A saved model is a folder with ``config.yml`` and ``parameters.json``, which contains
the learned weights as JSON numbers, so loading a model never unpickles anything.
Inference computes the multinomial logistic model, softmax(x @ coef.T + intercept),
which is what scikit-learn's ``LogisticRegression.predict_proba`` returns for more
than two classes. Loading and running import numpy only; scikit-learn is imported
only to train.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import os
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import caikit_mm
from caikit_mm.errors import ModelFormatError
from caikit_mm.modules import ModuleBase, ModuleConfig

if TYPE_CHECKING:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

log = logging.getLogger(__name__)

MODULE_ID: Final = "a96af1b7-a912-4fdd-83db-9241333d2cc6"
PARAMETERS_FILE: Final = "parameters.json"
PARAMETER_KEYS: Final = ("coef", "intercept", "classes", "class_names", "feature_names")


@caikit_mm.module(id=MODULE_ID, name="Iris classifier", version="1.0.0")
class IrisClassifier(ModuleBase):
    """Classify iris flowers from sepal and petal measurements in centimetres.

    Args:
        coef: Weights, one row per class and one column per feature.
        intercept: Bias of each class.
        classes: The data set's integer label of each class row.
        class_names: Name of each class row, such as ``setosa``.
        feature_names: Name of each feature column, in input order.
        metrics: Evaluation results recorded by ``train``, such as ``accuracy``.
        training: The parameters ``train`` was called with.

    Raises:
        ModelFormatError: The parameters do not fit together.
    """

    def __init__(
        self,
        coef: Sequence[Sequence[float]],
        intercept: Sequence[float],
        classes: Sequence[int],
        class_names: Sequence[str],
        feature_names: Sequence[str],
        metrics: Mapping[str, Any] | None = None,
        training: Mapping[str, Any] | None = None,
    ) -> None:
        import numpy as np

        parameters = {
            "coef": coef,
            "intercept": intercept,
            "classes": classes,
            "class_names": class_names,
            "feature_names": feature_names,
        }
        _check_parameters(parameters, "the IrisClassifier parameters")
        self._coef: np.ndarray = np.asarray(coef, dtype=float)
        self._intercept: np.ndarray = np.asarray(intercept, dtype=float)
        self.classes = [int(label) for label in classes]
        self.class_names = [str(name) for name in class_names]
        self.feature_names = [str(name) for name in feature_names]
        self.metrics = dict(metrics or {})
        self.training = dict(training or {})

    # Training -----------------------------------------------------------------

    @classmethod
    def train(
        cls,
        *,
        max_iter: int = 1000,
        C: float = 1.0,  # scikit-learn's name
        test_size: float = 0.25,
        random_state: int | None = 0,
    ) -> IrisClassifier:
        """Fit a logistic regression on the iris data set and score it on held-out rows.

        The rows are split into a training and a test set, stratified by class,
        and the test accuracy is kept in ``metrics["accuracy"]``.

        Args:
            max_iter: Maximum number of solver iterations.
            C: Inverse of the L2 regularization strength; larger means weaker.
            test_size: Fraction of the 150 rows held out for scoring, in (0, 1).
            random_state: Seed of the train/test split; ``None`` for a random one.

        Raises:
            ValueError: A parameter is out of range.
            TypeError: A parameter has the wrong type.
        """
        _check_train_parameters(max_iter, C, test_size, random_state)
        import sklearn
        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import train_test_split

        data = load_iris()
        x_train, x_test, y_train, y_test = train_test_split(
            data.data,
            data.target,
            test_size=test_size,
            random_state=random_state,
            stratify=data.target,
        )
        estimator = LogisticRegression(C=C, max_iter=max_iter).fit(x_train, y_train)
        accuracy = float(estimator.score(x_test, y_test))
        log.info(
            "Trained iris classifier on %d rows: accuracy %.3f on %d held-out rows",
            len(y_train),
            accuracy,
            len(y_test),
        )
        return cls.from_estimator(
            estimator,
            target_names=[str(name) for name in data.target_names],
            feature_names=[str(name) for name in data.feature_names],
            metrics={
                "accuracy": accuracy,
                "train_rows": len(y_train),
                "test_rows": len(y_test),
            },
            training={
                "max_iter": max_iter,
                "C": C,
                "test_size": test_size,
                "random_state": random_state,
                "scikit_learn_version": sklearn.__version__,
            },
        )

    @classmethod
    def from_estimator(
        cls,
        estimator: LogisticRegression,
        target_names: Sequence[str],
        feature_names: Sequence[str],
        metrics: Mapping[str, Any] | None = None,
        training: Mapping[str, Any] | None = None,
    ) -> IrisClassifier:
        """Build a classifier from a fitted multiclass ``LogisticRegression``.

        Args:
            estimator: The fitted estimator; its ``classes_`` index ``target_names``.
            target_names: Name of each integer label of the data set.
            feature_names: Name of each feature column.
            metrics: Evaluation results to keep with the model.
            training: Training parameters to keep with the model.
        """
        classes = [int(label) for label in estimator.classes_]
        return cls(
            coef=estimator.coef_.tolist(),
            intercept=estimator.intercept_.tolist(),
            classes=classes,
            class_names=[target_names[label] for label in classes],
            feature_names=feature_names,
            metrics=metrics,
            training=training,
        )

    # Saving and loading -------------------------------------------------------

    def save(self, model_path: str) -> None:
        """Write ``parameters.json`` and ``config.yml`` into the folder ``model_path``.

        Each file is written to a temporary name and renamed into place.
        """
        os.makedirs(model_path, exist_ok=True)
        _write_json_atomic(os.path.join(model_path, PARAMETERS_FILE), self.parameters())
        config = self.module_config(
            parameters=PARAMETERS_FILE,
            class_names=self.class_names,
            metrics=self.metrics,
            training=self.training,
        )
        config.save(model_path)

    @classmethod
    def load(  # type: ignore[override]
        cls, model_path: str, module_config: ModuleConfig | None = None
    ) -> IrisClassifier:
        """Load a classifier saved by :meth:`save`.

        Args:
            model_path: The model folder.
            module_config: The parsed ``config.yml``, read from ``model_path``
                when not given.

        Raises:
            ModelFormatError: The parameters file is missing, not JSON, or its
                values do not fit together.
        """
        config = (
            module_config
            if module_config is not None
            else ModuleConfig.load(model_path)
        )
        parameters_file = _parameters_file(config, model_path)
        parameters = _read_parameters(parameters_file)
        return cls(
            **{key: parameters[key] for key in PARAMETER_KEYS},
            metrics=config.get("metrics"),
            training=config.get("training"),
        )

    def parameters(self) -> dict[str, Any]:
        """Return the learned parameters as plain JSON-ready data."""
        return {
            "coef": self._coef.tolist(),
            "intercept": self._intercept.tolist(),
            "classes": self.classes,
            "class_names": self.class_names,
            "feature_names": self.feature_names,
        }

    # Inference ----------------------------------------------------------------

    def run(
        self, inputs: Sequence[Sequence[float]] | Sequence[float]
    ) -> list[dict[str, Any]]:
        """Predict the class of each row of measurements.

        Args:
            inputs: A list of rows, or one row; a row is one number per feature,
                in ``feature_names`` order (sepal length, sepal width, petal
                length, petal width, in cm). A numpy array works too.

        Returns:
            One ``{"label": name, "probabilities": {name: probability}}`` per row,
            in input order, also for a single row.

        Raises:
            TypeError: ``inputs`` is not a list of rows, or a value is not a number.
            ValueError: A row has the wrong number of values, or a value is not
                finite.
        """
        rows = self._check_inputs(inputs)
        if not rows:
            return []
        probabilities = self._predict_proba(rows)
        results = []
        for row in probabilities.tolist():
            best = max(range(len(row)), key=row.__getitem__)
            results.append(
                {
                    "label": self.class_names[best],
                    "probabilities": dict(zip(self.class_names, row, strict=True)),
                }
            )
        return results

    def _predict_proba(self, rows: list[list[float]]) -> np.ndarray:
        import numpy as np

        scores = np.asarray(rows, dtype=float) @ self._coef.T + self._intercept
        # Subtracting each row's maximum keeps exp() from overflowing.
        scores -= scores.max(axis=1, keepdims=True)
        exp_scores = np.exp(scores)
        return exp_scores / exp_scores.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]

    def _check_inputs(self, inputs: Any) -> list[list[float]]:
        to_list = getattr(inputs, "tolist", None)
        if callable(to_list):
            inputs = to_list()
        if not _is_sequence(inputs):
            raise TypeError(
                f"inputs must be a list of rows or one row, got "
                f"{type(inputs).__name__}: {inputs!r:.80}. Pass for example "
                "[[5.1, 3.5, 1.4, 0.2]]."
            )
        if inputs and not _is_sequence(inputs[0]):
            inputs = [inputs]
        return [self._check_row(index, row) for index, row in enumerate(inputs)]

    def _check_row(self, index: int, row: Any) -> list[float]:
        expected = len(self.feature_names)
        columns = ", ".join(self.feature_names)
        if not _is_sequence(row):
            raise TypeError(
                f"Row {index} must be a list of {expected} numbers ({columns}), got "
                f"{type(row).__name__}: {row!r:.80}."
            )
        if len(row) != expected:
            raise ValueError(
                f"Row {index} has length {len(row)}, expected {expected} values "
                f"({columns}): {row!r:.80}."
            )
        for column, value in zip(self.feature_names, row, strict=True):
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(
                    f"Row {index} has a non-numeric {column}: {value!r:.40} "
                    f"({type(value).__name__}). Pass numbers, such as 5.1."
                )
            if not math.isfinite(value):
                raise ValueError(
                    f"Row {index} has a {column} of {value!r}; values must be finite "
                    "numbers."
                )
        return [float(value) for value in row]


def _is_sequence(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _check_train_parameters(
    max_iter: Any, C: Any, test_size: Any, random_state: Any
) -> None:
    if isinstance(max_iter, bool) or not isinstance(max_iter, int):
        raise TypeError(f"max_iter must be an integer, got {max_iter!r}.")
    if max_iter < 1:
        raise ValueError(f"max_iter must be at least 1, got {max_iter}.")
    if isinstance(C, bool) or not isinstance(C, numbers.Real):
        raise TypeError(f"C must be a number, got {C!r}.")
    if not (math.isfinite(C) and float(C) > 0):
        raise ValueError(f"C must be a finite number above 0, got {C!r}.")
    if isinstance(test_size, bool) or not isinstance(test_size, numbers.Real):
        raise TypeError(
            f"test_size must be a fraction such as 0.25, got {test_size!r}."
        )
    if not 0 < float(test_size) < 1:
        raise ValueError(
            f"test_size must be a fraction between 0 and 1 (exclusive), got "
            f"{test_size!r}."
        )
    if random_state is not None and (
        isinstance(random_state, bool) or not isinstance(random_state, int)
    ):
        raise TypeError(
            f"random_state must be an integer or None, got {random_state!r}."
        )


def _check_parameters(
    parameters: Mapping[str, Any], source: str, path: str | None = None
) -> None:
    """Check that the parameter lists have matching lengths and finite weights."""
    import numpy as np

    missing = [key for key in PARAMETER_KEYS if key not in parameters]
    if missing:
        raise ModelFormatError(
            f"{source} lacks {', '.join(missing)}; expected keys: "
            f"{', '.join(PARAMETER_KEYS)}. Save the model again with IrisClassifier.",
            path=path,
        )
    try:
        coef = np.asarray(parameters["coef"], dtype=float)
        intercept = np.asarray(parameters["intercept"], dtype=float)
    except (TypeError, ValueError) as exc:
        raise ModelFormatError(
            f"{source} has coef or intercept values that are not a numeric table "
            f"({exc}). Save the model again with IrisClassifier.",
            path=path,
        ) from None
    n_classes = len(parameters["class_names"])
    n_features = len(parameters["feature_names"])
    expected = {
        "coef": ((n_classes, n_features), coef.shape),
        "intercept": ((n_classes,), intercept.shape),
        "classes": ((n_classes,), (len(parameters["classes"]),)),
    }
    for key, (want, got) in expected.items():
        if want != got:
            raise ModelFormatError(
                f"{source} has {key} of shape {got}, expected {want} for "
                f"{n_classes} classes and {n_features} features. Save the model "
                "again with IrisClassifier.",
                path=path,
            )
    if n_classes < 2 or not (np.isfinite(coef).all() and np.isfinite(intercept).all()):
        raise ModelFormatError(
            f"{source} must describe at least 2 classes with finite weights, got "
            f"{n_classes} classes. Save the model again with IrisClassifier.",
            path=path,
        )


def _parameters_file(config: ModuleConfig, model_path: str) -> str:
    name = config.get("parameters", PARAMETERS_FILE)
    # The name comes from the model folder, so it may only name a file inside it.
    if (
        not isinstance(name, str)
        or os.path.basename(name) != name
        or name in ("", ".", "..")
    ):
        raise ModelFormatError(
            f"config.yml in {model_path!r} sets parameters to {name!r}; it must be the "
            f"name of a file in the model folder, such as {PARAMETERS_FILE!r}.",
            path=model_path,
        )
    return os.path.join(model_path, name)


def _read_parameters(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as stream:
            parameters = json.load(stream)
    except FileNotFoundError:
        raise ModelFormatError(
            f"Model parameters file {path!r} does not exist. The folder is not a "
            "complete IrisClassifier model; save it again with IrisClassifier.save.",
            path=path,
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFormatError(
            f"Model parameters file {path!r} is not valid JSON ({exc}). Save the "
            "model again with IrisClassifier.save.",
            path=path,
        ) from None
    if not isinstance(parameters, dict):
        raise ModelFormatError(
            f"Model parameters file {path!r} contains a {type(parameters).__name__}, "
            f"not a JSON object with keys {', '.join(PARAMETER_KEYS)}.",
            path=path,
        )
    _check_parameters(parameters, path, path)
    return parameters


def _write_json_atomic(path: str, data: Any) -> None:
    # open(..., "x") creates the file with the process umask, as a plain write would.
    tmp_name = f"{path}.{uuid.uuid4().hex}.tmp"
    try:
        with open(tmp_name, "x", encoding="utf-8") as stream:
            json.dump(data, stream, indent=2)
            stream.write("\n")
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise
