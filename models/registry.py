"""The versioned model registry: versions published atomically, aliases switched atomically.

Layout under the root:
    versions/v<N>/model/          the PipelineModel in Spark's own format (never pickle)
    versions/v<N>/metadata.json   version, created_at, data fingerprint, feature spec, metrics
    versions/v<N>/profile.json    the reference profile for drift monitoring
    aliases/<alias>.json          {"version": N, "history": [...], "reason": ...}
A version is built in a staging folder and renamed into place, so a reader sees all of it or none;
an alias file is replaced by rename, so a reader sees the old target or the new one.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scorestream.contract.spec import FeatureSpec
from scorestream.errors import ModelError

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel

ALIASES = ("champion", "challenger")
_VERSION_DIR = re.compile(r"^v(\d+)$")


@dataclass(frozen=True)
class ModelVersion:
    """A published version and its metadata."""

    version: int
    path: Path
    metadata: dict[str, Any]

    @property
    def model_path(self) -> Path:
        return self.path / "model"

    @property
    def spec(self) -> FeatureSpec:
        return FeatureSpec.from_dict(self.metadata["feature_spec"])

    def profile(self) -> dict[str, Any]:
        return _read_json(self.path / "profile.json")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        msg = f"{path} is missing: the version is partial or was not written by scorestream"
        raise ModelError(msg) from exc
    except (OSError, ValueError) as exc:
        msg = f"{path} cannot be read as JSON ({exc}): the version is corrupt"
        raise ModelError(msg) from exc
    if not isinstance(data, dict):
        msg = f"{path} holds {type(data).__name__}, expected a JSON object"
        raise ModelError(msg)
    return data


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class Registry:
    """Versions and aliases under one root directory."""

    def __init__(self, root: Path | str) -> None:
        text = str(root)
        if "://" in text and not text.startswith("file://"):
            scheme = text.split("://", 1)[0]
            msg = (
                f"registry root {text!r}: the {scheme}:// scheme is not supported yet; "
                "expected a local or mounted directory (see README, Model registry)"
            )
            raise ModelError(msg)
        self.root = Path(text.removeprefix("file://")).expanduser().resolve()
        self.versions_dir = self.root / "versions"
        self.aliases_dir = self.root / "aliases"

    # -- versions ----------------------------------------------------------------------------
    def versions(self) -> list[int]:
        if not self.versions_dir.exists():
            return []
        found = (_VERSION_DIR.match(p.name) for p in self.versions_dir.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def get(self, version: int) -> ModelVersion:
        path = self.versions_dir / f"v{version}"
        if not path.is_dir():
            known = ", ".join(f"v{v}" for v in self.versions()) or "none"
            msg = f"model version v{version} not found in {self.root} (versions: {known})"
            raise ModelError(msg)
        metadata = _read_json(path / "metadata.json")
        for key in ("feature_spec", "spark_version"):
            if key not in metadata:
                msg = f"{path / 'metadata.json'} lacks {key!r}: the version is corrupt"
                raise ModelError(msg)
        _check_model_dir(path / "model")
        if not (path / "profile.json").is_file():
            msg = f"{path / 'profile.json'} is missing: the version is partial"
            raise ModelError(msg)
        return ModelVersion(version=version, path=path, metadata=metadata)

    def publish(
        self, write: Callable[[Path], dict[str, Any]], profile: dict[str, Any]
    ) -> ModelVersion:
        """Stage a new version (`write(model_dir)` saves the model and returns the metadata)."""
        staging = self.root / ".staging" / uuid.uuid4().hex
        staging.mkdir(parents=True)
        try:
            metadata = write(staging / "model")
            _write_json_atomic(staging / "profile.json", profile)
            self.versions_dir.mkdir(parents=True, exist_ok=True)
            for _ in range(1000):
                version = (self.versions() or [0])[-1] + 1
                metadata = {**metadata, "version": version}
                _write_json_atomic(staging / "metadata.json", metadata)
                try:
                    # rename(2) of a directory onto a missing name is atomic; losing a race
                    # with another publisher fails and we try the next number.
                    os.rename(staging, self.versions_dir / f"v{version}")
                except OSError:
                    continue
                return self.get(version)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        msg = f"could not publish a version in {self.root}: too many concurrent publishers"
        raise ModelError(msg)

    # -- aliases -----------------------------------------------------------------------------
    def alias(self, name: str) -> dict[str, Any] | None:
        _check_alias(name)
        path = self.aliases_dir / f"{name}.json"
        if not path.exists():
            return None
        return _read_json(path)

    def resolve(self, ref: str) -> int:
        """A version number from `champion`, `challenger`, `latest`, `v3` or `3`."""
        text = ref.strip().lower()
        if text in ALIASES:
            target = self.alias(text)
            if target is None:
                msg = f"alias {text!r} is not set in registry {self.root}; promote a version first"
                raise ModelError(msg)
            return int(target["version"])
        if text == "latest":
            versions = self.versions()
            if not versions:
                msg = f"registry {self.root} holds no model version; run `scorestream train`"
                raise ModelError(msg)
            return versions[-1]
        digits = text.removeprefix("v")
        if not digits.isdigit():
            msg = (
                f"model reference {ref!r} is not valid; expected champion, challenger, latest or vN"
            )
            raise ModelError(msg)
        return int(digits)

    def promote(self, version: int, alias: str = "champion", reason: str = "") -> dict[str, Any]:
        """Point `alias` at `version` (atomically); the previous target goes on its history."""
        _check_alias(alias)
        self.get(version)
        self.aliases_dir.mkdir(parents=True, exist_ok=True)
        current = self.alias(alias)
        history = list(current.get("history", [])) if current else []
        if current and int(current["version"]) != version:
            history.append(int(current["version"]))
        record = {
            "alias": alias,
            "version": version,
            "history": history[-50:],
            "reason": reason,
            "updated_at": dt.datetime.now(dt.UTC).isoformat(),
        }
        _write_json_atomic(self.aliases_dir / f"{alias}.json", record)
        return record

    def rollback(self, alias: str = "champion", reason: str = "rollback") -> dict[str, Any]:
        """Point `alias` back at its previous target."""
        current = self.alias(alias)
        if not current or not current.get("history"):
            msg = f"alias {alias!r} in {self.root} has no earlier version to roll back to"
            raise ModelError(msg)
        history = list(current["history"])
        previous = history.pop()
        record = {
            "alias": alias,
            "version": previous,
            "history": history,
            "reason": reason,
            "updated_at": dt.datetime.now(dt.UTC).isoformat(),
        }
        _write_json_atomic(self.aliases_dir / f"{alias}.json", record)
        return record

    def clear(self, alias: str) -> None:
        _check_alias(alias)
        (self.aliases_dir / f"{alias}.json").unlink(missing_ok=True)

    # -- loading -----------------------------------------------------------------------------
    def load(
        self, ref: str | int, event_schema: Mapping[str, str] | None = None
    ) -> tuple[ModelVersion, PipelineModel]:
        """Load a version's PipelineModel after checking it fits this Spark and the events.

        `event_schema` maps event field names to types (see `event_fields`); when given, every
        feature the model reads must be a field of a matching kind.
        """
        version = ref if isinstance(ref, int) else self.resolve(ref)
        entry = self.get(version)
        if event_schema is not None:
            check_event_schema(entry.spec, event_schema, str(entry.path))
        check_spark_version(str(entry.metadata.get("spark_version", "")), str(entry.path))
        return entry, load_pipeline(str(entry.model_path), str(entry.model_path))


def check_spark_version(trained_with: str, where: str) -> None:
    """A model saved by another Spark minor version may not load (or score) the same."""
    import pyspark

    if trained_with.split(".")[:2] != pyspark.__version__.split(".")[:2]:
        msg = (
            f"model {where} was trained with Spark {trained_with or 'unknown'}, "
            f"this scorer runs Spark {pyspark.__version__}: retrain or use that Spark"
        )
        raise ModelError(msg)


def load_pipeline(path: str, where: str) -> PipelineModel:
    """PipelineModel.load, its Py4J and Spark errors reported by `where`, not as a stack."""
    from pyspark.ml import PipelineModel

    try:
        return PipelineModel.load(path)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        msg = f"cannot load the Spark model at {where}: {first}"
        raise ModelError(msg) from exc


def _check_alias(name: str) -> None:
    if name not in ALIASES:
        msg = f"unknown alias {name!r}; expected one of {', '.join(ALIASES)}"
        raise ModelError(msg)


NUMERIC_KINDS = ("double", "float", "int", "long", "integer", "bigint", "decimal", "number")
STRING_KINDS = ("string", "enum")


def event_fields(avsc: Path) -> dict[str, str]:
    """{field: type} of an Avro record schema (.avsc); a union with null counts as its type."""
    try:
        schema = json.loads(avsc.read_text(encoding="utf-8"))
        fields = schema["fields"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        msg = f"cannot read the event schema {avsc}: {exc}"
        raise ModelError(msg) from exc
    result: dict[str, str] = {}
    for field in fields:
        kind = field["type"]
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if isinstance(kind, dict):
            kind = kind.get("logicalType") or kind.get("type", "record")
        result[str(field["name"])] = str(kind)
    return result


def check_event_schema(spec: FeatureSpec, fields: Mapping[str, str], path: str) -> None:
    """Every feature of `spec` is an event field of a matching kind, else a ModelError."""
    problems = []
    for name in spec.numeric_names:
        kind = fields.get(name)
        if kind is None:
            problems.append(f"numeric feature {name!r} is not an event field")
        elif not kind.lower().startswith(NUMERIC_KINDS):
            problems.append(f"numeric feature {name!r} is {kind} in the events, expected a number")
    for name in spec.categorical:
        kind = fields.get(name)
        if kind is None:
            problems.append(f"categorical feature {name!r} is not an event field")
        elif kind.lower() not in STRING_KINDS:
            problems.append(
                f"categorical feature {name!r} is {kind} in the events, expected string"
            )
    if problems:
        msg = f"model {path} does not fit the event schema: " + "; ".join(problems)
        raise ModelError(msg)


def _check_model_dir(model_dir: Path) -> None:
    """A saved PipelineModel: its metadata and one folder per stage it lists, else partial."""
    meta_dir = model_dir / "metadata"
    parts = sorted(meta_dir.glob("part-*")) if meta_dir.is_dir() else []
    if not parts:
        msg = f"{model_dir} holds no Spark PipelineModel metadata: the version is partial"
        raise ModelError(msg)
    try:
        meta = json.loads(parts[0].read_text(encoding="utf-8").splitlines()[0])
        uids = list(meta["paramMap"]["stageUids"])
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        msg = f"{parts[0]} is not Spark PipelineModel metadata ({exc}): the version is corrupt"
        raise ModelError(msg) from exc
    width = len(str(len(uids)))  # Spark zero-pads the stage index to the count's width
    for i, uid in enumerate(uids):
        stage = model_dir / "stages" / f"{i:0{width}d}_{uid}"
        if not (stage / "metadata").is_dir():
            msg = f"{stage} is missing: the saved model is partial ({len(uids)} stages expected)"
            raise ModelError(msg)
