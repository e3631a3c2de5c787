"""Writing to an MLflow registry: a trained model logged with its scorestream artifacts and
registered as a version, or those artifacts attached to a version a user logged by hand."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scorestream.errors import ModelError
from scorestream.models.mlflow_source import (
    ARTIFACT_DIR,
    METADATA_FILE,
    PROFILE_FILE,
    SPEC_FILE,
    MlflowSource,
    MlflowVersion,
    describe,
)

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel

    from scorestream.contract.spec import FeatureSpec

EXPERIMENT = "scorestream"


def write_artifacts(
    folder: Path, spec: FeatureSpec, profile: dict[str, Any], metadata: dict[str, Any]
) -> None:
    """The scorestream/ files of a model version (formats of models/spec.py and the profile)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in (
        (SPEC_FILE, spec.to_dict()),
        (PROFILE_FILE, profile),
        (METADATA_FILE, metadata),
    ):
        (folder / name).write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")


def _flat(prefix: str, data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(f"{name}.", value))
        else:
            out[name] = value
    return out


def log_version(
    source: MlflowSource,
    model: PipelineModel,
    spec: FeatureSpec,
    profile: dict[str, Any],
    metadata: dict[str, Any],
    promote: bool,
) -> MlflowVersion:
    """Log `model` in an MLflow run with its scorestream artifacts, register it as a version
    of `source.name`, and point `champion` at it when `promote`."""
    import mlflow.spark
    import pyspark
    from mlflow.entities import Metric, Param

    c = source.client
    experiment = source._call("experiment lookup", c.get_experiment_by_name, EXPERIMENT)
    experiment_id = (
        experiment.experiment_id
        if experiment is not None
        else source._call("experiment creation", c.create_experiment, EXPERIMENT)
    )
    run = source._call("run creation", c.create_run, experiment_id)
    run_id = run.info.run_id
    numbers = {
        k: float(v)
        for k, v in _flat("", metadata.get("metrics", {})).items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    params = _flat("", {"estimator": metadata.get("estimator", {}), **metadata.get("training", {})})
    with tempfile.TemporaryDirectory(prefix="scorestream-mlflow-") as tmp:
        local = Path(tmp) / "model"
        # pip_requirements given: MLflow would otherwise infer them by loading the model in a
        # fresh Python process with its own SparkSession (tens of seconds).
        mlflow.spark.save_model(
            model, str(local), pip_requirements=[f"pyspark=={pyspark.__version__}"]
        )
        write_artifacts(local / ARTIFACT_DIR, spec, profile, metadata)
        source._call("artifact upload", c.log_artifacts, run_id, str(local), "model")
    source._call(
        "metrics upload",
        c.log_batch,
        run_id,
        [Metric(k[:250], v, 0, 0) for k, v in numbers.items()],
        [Param(k[:250], str(v)[:6000]) for k, v in params.items()],
    )
    source._call("run end", c.set_terminated, run_id)
    try:
        c.get_registered_model(source.name)
    except Exception:
        source._call("registration", c.create_registered_model, source.name)
    version = source._call(
        "version registration",
        c.create_model_version,
        source.name,
        f"{run.info.artifact_uri}/model",
        run_id,
    )
    number = int(version.version)
    if promote:
        source.promote(number, "champion", reason="trained and promoted by `train`")
    return source.get(number)


def attach(
    source: MlflowSource,
    version: int,
    spec: FeatureSpec,
    profile: dict[str, Any],
    metadata: dict[str, Any],
) -> str:
    """Upload the scorestream/ files into an existing version's artifacts; returns where."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    uri = source.download_uri(version)
    with tempfile.TemporaryDirectory(prefix="scorestream-mlflow-") as tmp:
        folder = Path(tmp) / ARTIFACT_DIR
        write_artifacts(folder, spec, profile, metadata)
        try:
            get_artifact_repository(uri, tracking_uri=source.tracking_uri).log_artifacts(
                str(folder), ARTIFACT_DIR
            )
        except Exception as exc:
            msg = f"cannot write {ARTIFACT_DIR}/ into {uri}: {describe(exc)}"
            raise ModelError(msg) from exc
    source._entries.pop(version, None)
    return f"{uri.rstrip('/')}/{ARTIFACT_DIR}"
