"""Where served models come from: scorestream's own registry or an MLflow model registry.

The scorer, the shadow scorer, drift monitoring and auto-promotion talk to a `ModelSource`;
`open_source` picks it from the model reference: `models:/NAME@ALIAS` or `models:/NAME/VERSION`
is a registered model of an MLflow tracking server, anything else (champion, challenger,
latest, vN) a version of the registry directory.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from scorestream.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel

    from scorestream.contract.spec import FeatureSpec

MLFLOW_PREFIX = "models:/"


class ModelEntry(Protocol):
    """One version of a model: its number, where it lives, its feature spec and profile."""

    @property
    def version(self) -> int: ...

    @property
    def path(self) -> Path | str: ...

    @property
    def spec(self) -> FeatureSpec: ...

    @property
    def metadata(self) -> dict[str, Any]: ...

    def profile(self) -> dict[str, Any]: ...


class ModelSource(Protocol):
    """Versions and aliases of one model; `Registry` and `MlflowSource` are the two kinds."""

    def resolve(self, ref: str) -> int:
        """The version a reference (alias, latest, vN) points at now; cheap, polled per batch."""
        ...

    def get(self, version: int) -> ModelEntry: ...

    def load(
        self, ref: str | int, event_schema: Mapping[str, str] | None = None
    ) -> tuple[ModelEntry, PipelineModel]: ...

    def alias(self, name: str) -> dict[str, Any] | None:
        """{"version": N, ...} of an alias, None when it is not set."""
        ...

    def promote(self, version: int, alias: str = "champion", reason: str = "") -> dict[str, Any]:
        """Point `alias` at `version`, recording why."""
        ...


def parse_mlflow_ref(ref: str) -> tuple[str, str]:
    """(model name, alias or version) of `models:/NAME@ALIAS` or `models:/NAME/VERSION`."""
    body = ref.strip()[len(MLFLOW_PREFIX) :]
    if "@" in body:
        name, _, target = body.partition("@")
    else:
        name, _, target = body.rpartition("/")
    if not name or "/" in name or not target or (not target.isdigit() and "@" not in body):
        msg = (
            f"model reference {ref!r} is not valid; expected models:/NAME@ALIAS "
            "(such as models:/fraud@champion) or models:/NAME/VERSION (models:/fraud/3)"
        )
        raise ConfigError(msg)
    return name, target


def is_mlflow(ref: str) -> bool:
    return ref.strip().startswith(MLFLOW_PREFIX)


def open_source(registry: Path | str, model: str, mlflow_uri: str = "") -> tuple[ModelSource, str]:
    """The source of `model` and the reference to follow in it (an alias, latest or a version)."""
    if not is_mlflow(model):
        from scorestream.models.registry import Registry

        return Registry(registry), model
    from scorestream.models.mlflow_source import MlflowSource

    name, target = parse_mlflow_ref(model)
    return MlflowSource(mlflow_uri, name), target
