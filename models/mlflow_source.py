"""Spark models from an MLflow model registry, served like scorestream registry versions.

A registered model version serves when its artifacts hold, next to MLflow's own `MLmodel` and
`sparkml/`, the files scorestream needs (written by `scorestream train --mlflow-model`, or added
to a user's model by `scorestream mlflow-attach`):
    scorestream/feature_spec.json   the feature spec (models/spec.py, FeatureSpec.to_dict)
    scorestream/profile.json        the reference profile for drift (models/profile.py)
    scorestream/metadata.json       spark_version, metrics, training source (optional)
Aliases are MLflow's own: the scorer polls `get_model_version_by_alias` (one small REST call)
at each batch boundary, and auto-promotion moves them with `set_registered_model_alias`.

One module (about 330 lines) because it is one model source: the MLflow calls, the download
of a version's artifacts and the checks that they hold what scorestream needs answer the same
interface as models/registry.py does, method for method.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scorestream.contract.spec import FeatureSpec
from scorestream.errors import AliasConflict, ConfigError, ModelError, ScorestreamError
from scorestream.models.loading import check_event_schema, check_spark_version, load_pipeline

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from pyspark.ml import PipelineModel

log = logging.getLogger(__name__)

ARTIFACT_DIR = "scorestream"
SPEC_FILE = "feature_spec.json"
PROFILE_FILE = "profile.json"
METADATA_FILE = "metadata.json"
REQUIRED = (SPEC_FILE, PROFILE_FILE)


@dataclass(frozen=True)
class MlflowVersion:
    """A registered model version with the scorestream artifacts it carries."""

    name: str
    version: int
    feature_spec: dict[str, Any]
    reference: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return f"models:/{self.name}/{self.version}"

    @property
    def spec(self) -> FeatureSpec:
        return FeatureSpec.from_dict(self.feature_spec)

    def profile(self) -> dict[str, Any]:
        return self.reference


def client(tracking_uri: str) -> MlflowClient:
    """An MLflow client of `tracking_uri` (also its model registry); a clear error without one."""
    if not tracking_uri:
        msg = (
            "models:/ references need an MLflow tracking server: give --mlflow-uri "
            "or set MLFLOW_TRACKING_URI (such as http://127.0.0.1:5000)"
        )
        raise ConfigError(msg)
    try:
        from mlflow import MlflowClient
    except ImportError as exc:
        msg = "models:/ references need MLflow: pip install 'scorestream[mlflow]'"
        raise ConfigError(msg) from exc
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def describe(exc: BaseException) -> str:
    """The first line of an MLflow error (its REST messages carry the server's reason)."""
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def attach_command(name: str, version: int | str) -> str:
    return (
        f"scorestream mlflow-attach models:/{name}/{version} --spec SPEC.toml --data TRAINING.csv"
    )


class MlflowSource:
    """One registered model of an MLflow registry, as a ModelSource (see models/source.py)."""

    def __init__(self, tracking_uri: str, name: str) -> None:
        self.tracking_uri = tracking_uri
        self.name = name
        self.client = client(tracking_uri)
        self._entries: dict[int, MlflowVersion] = {}

    def __repr__(self) -> str:
        return f"MlflowSource({self.name!r})"

    # -- versions and aliases ----------------------------------------------------------------
    def _call(self, what: str, call: Any, *args: Any) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            return call(*args)
        except MlflowException as exc:
            msg = f"MLflow {what} of model {self.name!r} failed: {describe(exc)}"
            raise ModelError(msg) from exc
        except OSError as exc:  # connection refused, timeouts below the REST layer
            msg = f"MLflow {what} of model {self.name!r} failed: {exc}"
            raise ModelError(msg) from exc

    def alias(self, name: str) -> dict[str, Any] | None:
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.get_model_version_by_alias(self.name, name)
        except MlflowException as exc:
            text = str(exc).lower()
            # An unset alias is "INVALID_PARAMETER_VALUE: Registered model alias X not found"
            # (MLflow 3.17); a missing model is another error, reported as one.
            if "alias" in text and "not found" in text:
                return None
            msg = f"MLflow alias {name!r} of model {self.name!r} cannot be read: {describe(exc)}"
            raise ModelError(msg) from exc
        except OSError as exc:
            msg = f"MLflow alias {name!r} of model {self.name!r} cannot be read: {exc}"
            raise ModelError(msg) from exc
        return {"alias": name, "version": int(found.version)}

    def versions(self) -> list[int]:
        found = self._call(
            "version search", self.client.search_model_versions, f"name = '{self.name}'"
        )
        return sorted(int(v.version) for v in found)

    def resolve(self, ref: str) -> int:
        """A version from an alias (champion, challenger, any other), `latest`, `vN` or `N`."""
        text = ref.strip().removeprefix("@")
        digits = text.lower().removeprefix("v")
        if digits.isdigit():
            return int(digits)
        if text.lower() == "latest":
            versions = self.versions()
            if not versions:
                msg = f"MLflow model {self.name!r} has no version; register one first"
                raise ModelError(msg)
            return versions[-1]
        target = self.alias(text)
        if target is None:
            msg = (
                f"alias {text!r} is not set on MLflow model {self.name!r}; set it "
                "(MlflowClient().set_registered_model_alias) or train with --mlflow-model"
            )
            raise ModelError(msg)
        return int(target["version"])

    def promote(
        self,
        version: int,
        alias: str = "champion",
        reason: str = "",
        expected: int | None = None,
    ) -> dict[str, Any]:
        """Move an MLflow alias; the reason and the previous target go on the version's tags.

        With `expected`, only if the alias points at that version (else AliasConflict). MLflow
        has no compare-and-swap on aliases, so this is checked just before the update, not
        atomically with it as in scorestream's registry.
        """
        previous = self.alias(alias)
        now = None if previous is None else int(previous["version"])
        if expected is not None and now != expected:
            shown = "not set" if now is None else f"v{now}"
            msg = (
                f"alias {alias!r} of MLflow model {self.name!r} is {shown}, no longer "
                f"v{expected}: v{version} not promoted"
            )
            raise AliasConflict(msg)
        self._call(
            "alias update", self.client.set_registered_model_alias, self.name, alias, str(version)
        )
        tags = {f"scorestream.{alias}.reason": reason[:5000]}
        if previous is not None:
            tags[f"scorestream.{alias}.previous"] = str(previous["version"])
        for key, value in tags.items():
            self._call(
                "tag update",
                self.client.set_model_version_tag,
                self.name,
                str(version),
                key,
                value,
            )
        return {"alias": alias, "version": version, "reason": reason, "previous": previous}

    # -- artifacts ---------------------------------------------------------------------------
    def download_uri(self, version: int) -> str:
        return str(
            self._call(
                f"lookup of version {version}",
                self.client.get_model_version_download_uri,
                self.name,
                str(version),
            )
        )

    def _download(self, version: int, sub: str, dst: Path) -> Path:
        from mlflow.artifacts import download_artifacts
        from mlflow.exceptions import MlflowException

        uri = self.download_uri(version)
        target = f"{uri.rstrip('/')}/{sub}" if sub else uri
        try:
            return Path(
                download_artifacts(
                    artifact_uri=target, dst_path=str(dst), tracking_uri=self.tracking_uri
                )
            )
        except (MlflowException, OSError) as exc:
            if sub == ARTIFACT_DIR:
                raise _MissingArtifacts from exc
            msg = f"cannot download models:/{self.name}/{version} ({target}): {describe(exc)}"
            raise ModelError(msg) from exc

    def _entry(self, version: int, folder: Path) -> MlflowVersion:
        """The entry of the scorestream files in `folder`; names what is missing and the fix."""
        missing = [f"{ARTIFACT_DIR}/{f}" for f in REQUIRED if not (folder / f).is_file()]
        if missing:
            msg = (
                f"MLflow model models:/{self.name}/{version} lacks the scorestream artifacts "
                f"{', '.join(missing)} (a model logged with plain mlflow.spark.log_model "
                "carries only MLmodel and sparkml/); attach a feature spec and a reference "
                f"profile computed on its training data with: {attach_command(self.name, version)}"
                " (or train it with scorestream train --mlflow-model)"
            )
            raise ModelError(msg)
        data: dict[str, Any] = {}
        for name in (*REQUIRED, METADATA_FILE):
            path = folder / name
            if not path.is_file():
                data[name] = {}
                continue
            try:
                data[name] = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                msg = f"models:/{self.name}/{version}: {ARTIFACT_DIR}/{name} is not JSON ({exc})"
                raise ModelError(msg) from exc
        entry = MlflowVersion(
            name=self.name,
            version=version,
            feature_spec=data[SPEC_FILE],
            reference=data[PROFILE_FILE],
            metadata=data[METADATA_FILE],
        )
        try:
            entry.spec  # noqa: B018 (parsed now: a bad spec fails here, with the version named)
        except ScorestreamError as exc:
            msg = f"models:/{self.name}/{version}: {ARTIFACT_DIR}/{SPEC_FILE}: {exc}"
            raise ModelError(msg) from exc
        self._entries[version] = entry
        return entry

    def get(self, version: int) -> MlflowVersion:
        """The version's feature spec and profile (downloaded once, then cached)."""
        if version in self._entries:
            return self._entries[version]
        with tempfile.TemporaryDirectory(prefix="scorestream-mlflow-") as tmp:
            try:
                folder = self._download(version, ARTIFACT_DIR, Path(tmp))
            except _MissingArtifacts:
                folder = Path(tmp) / "absent"
            return self._entry(version, folder)

    def load(
        self, ref: str | int, event_schema: Mapping[str, str] | None = None
    ) -> tuple[MlflowVersion, PipelineModel]:
        """Download a version, check its scorestream artifacts and Spark version, load it."""
        version = ref if isinstance(ref, int) else self.resolve(ref)
        where = f"models:/{self.name}/{version}"
        with tempfile.TemporaryDirectory(prefix="scorestream-mlflow-") as tmp:
            local = self._download(version, "", Path(tmp))
            entry = self._entry(version, local / ARTIFACT_DIR)
            if event_schema is not None:
                check_event_schema(entry.spec, event_schema, where)
            _, model = _load_spark(local, where)
        return entry, model

    def load_model(self, version: int) -> tuple[str, PipelineModel]:
        """(Spark version it was saved with, model) of a version, scorestream artifacts or not."""
        with tempfile.TemporaryDirectory(prefix="scorestream-mlflow-") as tmp:
            local = self._download(version, "", Path(tmp))
            return _load_spark(local, f"models:/{self.name}/{version}")


def _load_spark(local: Path, where: str) -> tuple[str, PipelineModel]:
    flavor = spark_flavor(local, where)
    saved_with = str(flavor.get("pyspark_version", ""))
    check_spark_version(saved_with, where)
    # PipelineModel.load reads every stage into memory: the folder may go afterwards.
    return saved_with, load_pipeline(str(local / str(flavor.get("model_data", "sparkml"))), where)


class _MissingArtifacts(ScorestreamError):
    """The version has no scorestream/ folder at all."""


def spark_flavor(folder: Path, where: str) -> dict[str, Any]:
    """The `spark` flavour of a downloaded model's MLmodel file, else what is wrong."""
    import yaml

    path = folder / "MLmodel"
    try:
        mlmodel = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        msg = f"{where} has no readable MLmodel file ({exc}): is it an MLflow model?"
        raise ModelError(msg) from exc
    flavors = mlmodel.get("flavors") or {}
    if "spark" not in flavors:
        msg = (
            f"{where} is not a Spark model: its flavours are {', '.join(sorted(flavors)) or 'none'}"
            "; scorestream serves models logged with mlflow.spark.log_model (a PipelineModel)"
        )
        raise ModelError(msg)
    return dict(flavors["spark"])
