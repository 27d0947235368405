"""Conformance tests that every finder, initializer and trainer type should pass.

A plugin's own test suite subclasses one of these classes in a pytest module and
provides the fixtures the class names; pytest then collects the inherited tests::

    from caikit_mm.testing import FinderConformance

    class TestCatalogFinder(FinderConformance):
        @pytest.fixture
        def finder(self): ...

        @pytest.fixture
        def model_path(self): ...

        @pytest.fixture
        def missing_model_path(self): ...

pytest is imported by the test methods only, so importing this module costs
nothing in production.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from .errors import ModelNotFoundError, TrainingNotFoundError
from .model_management import ModelFinder, ModelInitializer, ModelTrainer
from .modules import ModuleConfig


class FinderConformance:
    """Tests for a finder type.

    Fixtures to provide: ``finder`` (an instance), ``model_path`` (an identifier
    it finds) and ``missing_model_path`` (one it cannot find).
    """

    def test_type_has_name(self, finder: ModelFinder) -> None:
        assert isinstance(type(finder).name, str)
        assert type(finder).name

    def test_finds_module_config(self, finder: ModelFinder, model_path: Any) -> None:
        config = finder.find_model(model_path)
        assert isinstance(config, ModuleConfig)
        assert isinstance(config.module_id, str)
        assert config.module_id

    def test_missing_raises_not_found(
        self, finder: ModelFinder, missing_model_path: Any
    ) -> None:
        import pytest

        with pytest.raises(ModelNotFoundError):
            finder.find_model(missing_model_path)

    def test_cache_key_is_stable(self, finder: ModelFinder, model_path: Any) -> None:
        first = finder.cache_key(model_path)
        assert first is None or isinstance(first, Hashable)
        assert finder.cache_key(model_path) == first


class InitializerConformance:
    """Tests for an initializer type.

    Fixtures to provide: ``initializer`` (an instance) and ``module_config`` (a
    ``ModuleConfig`` it can initialize).
    """

    def test_type_has_name(self, initializer: ModelInitializer) -> None:
        assert isinstance(type(initializer).name, str)
        assert type(initializer).name

    def test_init_returns_model(
        self, initializer: ModelInitializer, module_config: ModuleConfig
    ) -> None:
        model = initializer.init(module_config)
        assert model is not None
        initializer.release(model)

    def test_describe_names_instance(
        self, initializer: ModelInitializer, module_config: ModuleConfig
    ) -> None:
        described = initializer.describe(module_config)
        assert described["initializer"] == initializer.instance_name


class TrainerConformance:
    """Tests for a trainer type.

    Fixtures to provide: ``trainer`` (an instance attached to a manager),
    ``module_class`` (a module whose ``train`` accepts ``train_kwargs``),
    ``train_kwargs`` (a mapping) and ``save_path`` (a folder that does not exist
    yet).
    """

    def test_type_has_name(self, trainer: ModelTrainer) -> None:
        assert isinstance(type(trainer).name, str)
        assert type(trainer).name

    def test_train_completes_and_saves(
        self,
        trainer: ModelTrainer,
        module_class: Any,
        train_kwargs: dict[str, Any],
        save_path: str,
    ) -> None:
        from .model_management import TrainingStatus

        future = trainer.train(module_class, save_path=save_path, **train_kwargs)
        assert future.wait(timeout=300) is TrainingStatus.COMPLETED
        assert future.status.is_terminal
        assert future.load() is not None
        assert trainer.get_model_future(future.id) is future or (
            trainer.get_model_future(future.id).id == future.id
        )

    def test_unknown_id_raises(self, trainer: ModelTrainer) -> None:
        import pytest

        with pytest.raises(TrainingNotFoundError):
            trainer.get_model_future("no-such-training-id")
