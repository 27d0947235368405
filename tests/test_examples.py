"""The installed example packages: the iris module library, its main job, and the
CATALOG finder plugin.

scripts/test.sh installs both packages from ``examples/``; these tests use them
as a user would, through their entry points.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import caikit_mm_examples
import numpy as np
import pytest
from caikit_mm_examples import MODULE_ID, IrisClassifier
from caikit_mm_examples.build_model import build_model
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from caikit_mm import ConfigError, ModelFormatError, ModelManager, ModelNotFoundError
from caikit_mm.model_management import FINDERS
from caikit_mm.modules import ModuleConfig

IRIS = load_iris()
IRIS_ROWS: list[list[float]] = IRIS.data.tolist()
IRIS_LABELS: list[str] = [str(IRIS.target_names[label]) for label in IRIS.target]
SUBPROCESS_TIMEOUT = 300


def run_python(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run this interpreter in a new process, from ``cwd``, with ``env`` added."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
    )


def copy_packaged_model(target: Path) -> Path:
    shutil.copytree(caikit_mm_examples.MODEL_PATH, target)
    return target


def catalog_manager(config: dict[str, Any]) -> ModelManager:
    """A manager with one CATALOG finder instance, called ``catalog``."""
    return ModelManager(
        config={
            "model_management": {
                "finders": {"catalog": {"type": "CATALOG", "config": config}}
            }
        }
    )


# The iris module library ------------------------------------------------------


def test_packaged_model_predicts_iris_labels() -> None:
    model = ModelManager(config={}).load(caikit_mm_examples.MODEL_PATH)
    predictions = model.run(IRIS_ROWS)

    assert isinstance(model, IrisClassifier)
    assert len(predictions) == len(IRIS_ROWS)
    correct = sum(
        p["label"] == label for p, label in zip(predictions, IRIS_LABELS, strict=True)
    )
    assert correct / len(IRIS_LABELS) > 0.9
    for prediction in predictions:
        probabilities = prediction["probabilities"]
        assert set(probabilities) == {"setosa", "versicolor", "virginica"}
        assert sum(probabilities.values()) == pytest.approx(1.0)
        assert prediction["label"] == max(probabilities, key=probabilities.get)


def test_iris_run_matches_sklearn_predict_proba(tmp_path: Path) -> None:
    estimator = LogisticRegression(C=0.5, max_iter=1000).fit(IRIS.data, IRIS.target)
    trained = IrisClassifier.from_estimator(
        estimator,
        target_names=[str(name) for name in IRIS.target_names],
        feature_names=[str(name) for name in IRIS.feature_names],
    )
    trained.save(str(tmp_path / "model"))

    model = ModelManager(config={}).load(str(tmp_path / "model"))
    predictions = model.run(IRIS.data)

    got = np.array([list(p["probabilities"].values()) for p in predictions])
    np.testing.assert_allclose(got, estimator.predict_proba(IRIS.data), rtol=1e-9)
    expected = [str(IRIS.target_names[label]) for label in estimator.predict(IRIS.data)]
    assert [p["label"] for p in predictions] == expected


def test_packaged_model_is_tiny() -> None:
    folder = Path(caikit_mm_examples.MODEL_PATH)
    files = sorted(path.name for path in folder.iterdir())
    size = sum(path.stat().st_size for path in folder.iterdir())

    assert files == ["config.yml", "parameters.json"]
    assert size < 4096


def test_build_model_script_reproduces_packaged_model(tmp_path: Path) -> None:
    output = tmp_path / "iris"

    result = run_python(
        "-m", "caikit_mm_examples.build_model", str(output), cwd=tmp_path
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(output)
    manager = ModelManager(config={})
    packaged = manager.load(caikit_mm_examples.MODEL_PATH)
    rebuilt = manager.load(str(output))
    assert rebuilt is not packaged
    assert rebuilt.metrics == packaged.metrics
    version_key = "scikit_learn_version"
    rebuilt_training = {k: v for k, v in rebuilt.training.items() if k != version_key}
    packaged_training = {k: v for k, v in packaged.training.items() if k != version_key}
    assert rebuilt_training == packaged_training
    # The solver's last digits vary with the numpy and scipy builds, so the
    # weights are compared through the probabilities, to 4 decimal places.
    rebuilt_predictions = rebuilt.run(IRIS_ROWS)
    packaged_predictions = packaged.run(IRIS_ROWS)
    assert [p["label"] for p in rebuilt_predictions] == [
        p["label"] for p in packaged_predictions
    ]
    np.testing.assert_allclose(
        [list(p["probabilities"].values()) for p in rebuilt_predictions],
        [list(p["probabilities"].values()) for p in packaged_predictions],
        atol=1e-4,
    )


def test_build_model_replaces_old_model(tmp_path: Path) -> None:
    output = copy_packaged_model(tmp_path / "iris")
    old_tracking_id = ModuleConfig.load(output).tracking_id

    build_model(str(output))

    config = ModuleConfig.load(output)
    assert config.module_id == MODULE_ID
    assert config.tracking_id != old_tracking_id
    assert sorted(os.listdir(output)) == ["config.yml", "parameters.json"]
    assert os.listdir(tmp_path) == ["iris"]


def test_build_model_fills_empty_folder(tmp_path: Path) -> None:
    output = tmp_path / "iris"
    output.mkdir()

    build_model(str(output))

    assert ModuleConfig.load(output).module_id == MODULE_ID
    assert os.listdir(tmp_path) == ["iris"]


def test_build_model_keeps_unrelated_folder(tmp_path: Path) -> None:
    output = tmp_path / "data"
    output.mkdir()
    (output / "keep.txt").write_text("not a model", encoding="utf-8")

    with pytest.raises(FileExistsError, match="is not an IrisClassifier model"):
        build_model(str(output))

    assert os.listdir(output) == ["keep.txt"]
    assert os.listdir(tmp_path) == ["data"]


def test_build_model_keeps_other_module_model(tmp_path: Path) -> None:
    output = copy_packaged_model(tmp_path / "other")
    config = ModuleConfig.load(output)
    config["module_id"] = "some-other-module"
    config.save(output)

    with pytest.raises(FileExistsError, match=str(output)):
        build_model(str(output))

    assert ModuleConfig.load(output).module_id == "some-other-module"


def test_build_model_rejects_file_output(tmp_path: Path) -> None:
    output = tmp_path / "iris"
    output.write_text("a file", encoding="utf-8")

    with pytest.raises(FileExistsError, match="is not a folder"):
        build_model(str(output))

    assert output.read_text(encoding="utf-8") == "a file"


def test_build_model_script_missing_parent(tmp_path: Path) -> None:
    output = tmp_path / "missing" / "iris"

    result = run_python(
        "-m", "caikit_mm_examples.build_model", str(output), cwd=tmp_path
    )

    assert result.returncode == 1
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert f"Parent folder '{output.parent}'" in result.stderr
    assert not output.parent.exists()


def test_iris_train_and_save_write_model_folder(tmp_path: Path) -> None:
    model = IrisClassifier.train(test_size=0.3, random_state=1, C=2.0)
    model.save(str(tmp_path / "model"))

    assert model.metrics["test_rows"] == 45
    assert model.metrics["train_rows"] == 105
    assert 0.8 <= model.metrics["accuracy"] <= 1.0
    assert sorted(os.listdir(tmp_path / "model")) == ["config.yml", "parameters.json"]
    config = ModuleConfig.load(tmp_path / "model")
    assert config.module_id == MODULE_ID
    assert config.metrics == model.metrics
    assert config.training["C"] == 2.0
    assert config.training["random_state"] == 1
    assert config.parameters == "parameters.json"


def test_iris_run_single_row_array_and_empty() -> None:
    model = IrisClassifier.load(caikit_mm_examples.MODEL_PATH)

    single = model.run(IRIS_ROWS[0])
    assert len(single) == 1
    assert single[0]["label"] == IRIS_LABELS[0]
    from_array = model.run(IRIS.data[:5])
    assert from_array == model.run(IRIS_ROWS[:5])
    assert model.run([]) == []


@pytest.mark.parametrize(
    ("inputs", "error", "text"),
    [
        ([[5.1, 3.5, 1.4]], ValueError, "Row 0 has length 3, expected 4"),
        ([[5.1, 3.5, 1.4, 0.2], [1.0]], ValueError, "Row 1 has length 1"),
        ([5.1, 3.5, 1.4, 0.2, 9.9], ValueError, "has length 5"),
        ([["5.1", 3.5, 1.4, 0.2]], TypeError, "non-numeric sepal length"),
        ([[5.1, 3.5, True, 0.2]], TypeError, "non-numeric petal length"),
        ([[5.1, 3.5, 1.4, float("nan")]], ValueError, "must be finite"),
        ([[5.1, 3.5, 1.4, 0.2], 7], TypeError, "Row 1 must be a list of 4 numbers"),
        ("5.1, 3.5, 1.4, 0.2", TypeError, "inputs must be a list of rows"),
        (None, TypeError, "inputs must be a list of rows"),
    ],
)
def test_iris_run_rejects_bad_inputs(
    inputs: Any, error: type[Exception], text: str
) -> None:
    model = IrisClassifier.load(caikit_mm_examples.MODEL_PATH)

    with pytest.raises(error, match=text):
        model.run(inputs)


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"C": 0}, ValueError, "C must be a finite number above 0"),
        ({"C": "1"}, TypeError, "C must be a number"),
        ({"max_iter": 0}, ValueError, "max_iter must be at least 1"),
        ({"max_iter": 2.5}, TypeError, "max_iter must be an integer"),
        ({"test_size": 1.0}, ValueError, "between 0 and 1"),
        ({"random_state": "seed"}, TypeError, "random_state must be an integer"),
    ],
)
def test_iris_train_rejects_bad_parameters(
    kwargs: dict[str, Any], error: type[Exception], text: str
) -> None:
    with pytest.raises(error, match=text):
        IrisClassifier.train(**kwargs)


def test_iris_load_rejects_missing_parameters(tmp_path: Path) -> None:
    folder = copy_packaged_model(tmp_path / "model")
    (folder / "parameters.json").unlink()

    with pytest.raises(ModelFormatError, match="parameters.json' does not exist"):
        ModelManager(config={}).load(str(folder))


def test_iris_load_rejects_mismatched_shapes(tmp_path: Path) -> None:
    folder = copy_packaged_model(tmp_path / "model")
    parameters = json.loads((folder / "parameters.json").read_text(encoding="utf-8"))
    parameters["coef"] = [row[:3] for row in parameters["coef"]]
    (folder / "parameters.json").write_text(json.dumps(parameters), encoding="utf-8")

    with pytest.raises(
        ModelFormatError, match=r"coef of shape \(3, 3\), expected \(3, 4\)"
    ):
        ModelManager(config={}).load(str(folder))


def test_iris_load_rejects_parameters_outside_folder(tmp_path: Path) -> None:
    folder = copy_packaged_model(tmp_path / "model")
    config = ModuleConfig.load(folder)
    config["parameters"] = "../parameters.json"
    config.save(folder)

    with pytest.raises(ModelFormatError, match="name of a file in the model folder"):
        ModelManager(config={}).load(str(folder))


def test_module_library_registered_through_entry_point(tmp_path: Path) -> None:
    # The child imports caikit_mm only; the module id in config.yml makes the
    # LOCAL initializer import the libraries advertised in caikit_mm.modules.
    code = """
import json, sys
import caikit_mm
from caikit_mm.modules import MODULE_REGISTRY
before = "caikit_mm_examples" in sys.modules
model = caikit_mm.ModelManager().load(sys.argv[1])
print(json.dumps({
    "imported_before": before,
    "class": f"{type(model).__module__}.{type(model).__qualname__}",
    "ids": MODULE_REGISTRY.ids(),
    "libraries": MODULE_REGISTRY.load_libraries(),
}))
"""
    result = run_python("-c", code, caikit_mm_examples.MODEL_PATH, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["imported_before"] is False
    assert output["class"] == "caikit_mm_examples.iris.IrisClassifier"
    assert MODULE_ID in output["ids"]
    library = [
        k for k in output["libraries"] if k.startswith("iris (caikit_mm_examples")
    ]
    assert len(library) == 1
    assert "caikit-mm-examples" in library[0]
    assert output["libraries"][library[0]] == "ok"


@pytest.mark.parametrize("trainer", ["default", "subprocess"])
def test_main_job_trains_saves_loads_runs(tmp_path: Path, trainer: str) -> None:
    save_path = tmp_path / "trained" / "iris"
    args = ["--save-path", str(save_path), "--trainer", trainer]

    result = run_python("-m", "caikit_mm_examples.main", *args, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "COMPLETED"
    assert report["trainer"] == trainer
    assert report["training_id"].startswith(f"{trainer}-")
    assert report["save_path"] == str(save_path)
    assert (save_path / "config.yml").is_file()
    assert (save_path / "parameters.json").is_file()
    assert ModuleConfig.load(save_path).module_id == MODULE_ID
    assert 0.8 <= report["accuracy"] <= 1.0
    predictions = report["predictions"]
    assert [p["expected"] for p in predictions] == [
        IRIS_LABELS[p["row"]] for p in predictions
    ]
    assert [p["input"] for p in predictions] == [
        IRIS_ROWS[p["row"]] for p in predictions
    ]
    correct = sum(p["predicted"] == p["expected"] for p in predictions)
    assert correct >= len(predictions) - 1


def test_main_job_default_save_path_in_temp(tmp_path: Path) -> None:
    temp_dir = tmp_path / "temp"
    temp_dir.mkdir()

    result = run_python(
        "-m", "caikit_mm_examples.main", cwd=tmp_path, env={"TMPDIR": str(temp_dir)}
    )

    assert result.returncode == 0, result.stderr
    save_path = Path(json.loads(result.stdout)["save_path"])
    assert save_path.parent.parent == temp_dir
    assert save_path.parent.name.startswith("caikit-mm-iris-")
    assert ModuleConfig.load(save_path).module_id == MODULE_ID


def test_main_job_existing_save_path_fails(tmp_path: Path) -> None:
    save_path = tmp_path / "model"
    save_path.mkdir()
    (save_path / "keep.txt").write_text("not a model", encoding="utf-8")

    result = run_python(
        "-m", "caikit_mm_examples.main", "--save-path", str(save_path), cwd=tmp_path
    )

    assert result.returncode == 1
    assert "SavePathExistsError" in result.stderr
    assert sorted(os.listdir(save_path)) == ["keep.txt"]


def test_main_job_unknown_trainer_fails_in_one_line(tmp_path: Path) -> None:
    result = run_python(
        "-m",
        "caikit_mm_examples.main",
        "--save-path",
        str(tmp_path / "model"),
        "--trainer",
        "no-such-trainer",
        cwd=tmp_path,
    )

    assert result.returncode == 1
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "UnknownInstanceError" in result.stderr
    assert "'no-such-trainer'" in result.stderr
    assert not (tmp_path / "model").exists()


def test_cli_load_runs_packaged_model(tmp_path: Path) -> None:
    rows = [IRIS_ROWS[0], IRIS_ROWS[60], IRIS_ROWS[140]]
    run_json = json.dumps({"inputs": rows})

    result = run_python(
        "-m",
        "caikit_mm",
        "load",
        caikit_mm_examples.MODEL_PATH,
        "--run",
        run_json,
        cwd=tmp_path,
    )

    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["module_id"] == MODULE_ID
    assert output["model"] == "IrisClassifier"
    labels = [prediction["label"] for prediction in output["result"]]
    assert labels == [IRIS_LABELS[0], IRIS_LABELS[60], IRIS_LABELS[140]]


# The CATALOG finder plugin ----------------------------------------------------


def test_catalog_plugin_comes_from_its_distribution() -> None:
    finders = {info.name: info for info in FINDERS.describe()}

    assert finders["CATALOG"].source.startswith("caikit-mm-catalog-finder ")
    assert finders["CATALOG"].target == "caikit_mm_catalog.finder:CatalogModelFinder"
    assert finders["CATALOG"].error == ""


def test_catalog_finder_loads_model_by_name() -> None:
    manager = catalog_manager({"models": {"iris": caikit_mm_examples.MODEL_PATH}})

    model = manager.load("iris", finder="catalog")

    assert isinstance(model, IrisClassifier)
    assert model.run(IRIS_ROWS[100])[0]["label"] == IRIS_LABELS[100]
    assert manager.load("iris", finder="catalog") is model
    found = manager.find("iris", finder="catalog")
    assert found.model_path == os.path.realpath(caikit_mm_examples.MODEL_PATH)


def test_catalog_file_folders_relative_to_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy_packaged_model(tmp_path / "models" / "iris-v1")
    catalog_file = tmp_path / "catalog.yml"
    catalog_file.write_text(
        "iris: models/iris-v1\nstable: models/iris-v1\n", encoding="utf-8"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    manager = catalog_manager(
        {
            "catalog_file": str(catalog_file),
            "models": {"iris": caikit_mm_examples.MODEL_PATH},
        }
    )

    stable = manager.find("stable", finder="catalog")
    iris = manager.find("iris", finder="catalog")

    assert stable.model_path == str((tmp_path / "models" / "iris-v1").resolve())
    assert iris.model_path == os.path.realpath(caikit_mm_examples.MODEL_PATH)
    assert isinstance(manager.load("stable", finder="catalog"), IrisClassifier)


def test_catalog_unknown_name_lists_known_names() -> None:
    manager = catalog_manager(
        {"models": {"iris": caikit_mm_examples.MODEL_PATH, "flowers": "/nowhere"}}
    )

    with pytest.raises(ModelNotFoundError) as info:
        manager.load("roses", finder="catalog")

    message = str(info.value)
    assert "'roses' is not in the catalog of finder 'catalog'" in message
    assert "known names: flowers, iris" in message
    assert isinstance(info.value, FileNotFoundError)


def test_catalog_name_with_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    manager = catalog_manager({"models": {"gone": str(missing)}})

    with pytest.raises(ModelNotFoundError) as info:
        manager.load("gone", finder="catalog")

    assert f"maps 'gone' to '{missing}'" in str(info.value)
    assert isinstance(info.value.__cause__, ModelNotFoundError)


@pytest.mark.parametrize(
    ("config", "text"),
    [
        ({}, "the catalog is empty"),
        ({"models": ["iris"]}, "config.models: models must map model names"),
        ({"models": {"iris": 3}}, "config.models.iris: entry 'iris': 3"),
        ({"catalog_file": 5}, "config.catalog_file: catalog_file must be a path"),
        ({"model": {"iris": "/m"}}, "unknown keys model"),
    ],
)
def test_catalog_rejects_bad_config(config: dict[str, Any], text: str) -> None:
    manager = catalog_manager(config)

    with pytest.raises(ConfigError, match=text) as info:
        manager.load("iris", finder="catalog")

    assert info.value.key_path.startswith("model_management.finders.catalog.config")


@pytest.mark.parametrize(
    ("content", "text"),
    [
        (None, "cannot be read"),
        ("iris: !!python/object:os.system ls\n", "is not valid YAML"),
        ("- iris\n- other\n", "must contain 'name: folder' lines"),
        ("iris: 3\n", "must contain 'name: folder' lines"),
    ],
)
def test_catalog_rejects_bad_catalog_file(
    tmp_path: Path, content: str | None, text: str
) -> None:
    catalog_file = tmp_path / "catalog.yml"
    if content is not None:
        catalog_file.write_text(content, encoding="utf-8")
    manager = catalog_manager({"catalog_file": str(catalog_file)})

    with pytest.raises(ConfigError, match=text) as info:
        manager.load("iris", finder="catalog")

    assert info.value.source == str(catalog_file)
    assert info.value.key_path == "model_management.finders.catalog.config.catalog_file"


def test_catalog_plugin_imports_nothing_heavy(tmp_path: Path) -> None:
    code = """
import json, sys
import caikit_mm
manager = caikit_mm.ModelManager(config={"model_management": {"finders": {
    "catalog": {"type": "CATALOG", "config": {"models": {"iris": sys.argv[1]}}}}}})
manager.find("iris", finder="catalog")
heavy = ["numpy", "sklearn", "torch", "fsspec", "s3fs", "ray", "transformers", "tqdm"]
print(json.dumps({
    "plugin": "caikit_mm_catalog.finder" in sys.modules,
    "heavy": [name for name in heavy if name in sys.modules],
}))
"""
    result = run_python("-c", code, caikit_mm_examples.MODEL_PATH, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["plugin"] is True
    assert output["heavy"] == []
