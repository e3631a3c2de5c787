"""The versioned model registry: versions published atomically, aliases switched atomically.

Layout under the root (a local directory or a Hadoop URI such as hdfs://namenode:8020/models):
    versions/v<N>/model/            the PipelineModel in Spark's own format (never pickle)
    versions/v<N>/metadata.json     version, created_at, data fingerprint, feature spec, metrics
    versions/v<N>/profile.json      the reference profile for drift monitoring
    aliases/<alias>.json            {"version": N, "history": [...], "reason": ..., "generation": G}
    aliases/<alias>.log/<G>.json    every alias record ever written, one file per change
A version is built in a staging folder and renamed into place, so a reader sees all of it or none;
an alias file is replaced by rename, so a reader sees the old target or the new one.

Alias changes (promote, rollback, clear, auto-promotion) are a compare-and-swap: a writer reads
the newest record of the log, computes the next, and claims generation G+1 by renaming its file
onto `<G+1>.json`, a rename that fails when another writer claimed it first; the loser re-reads
and retries. So concurrent writers are serialised and none is lost. The winner then copies the
newest record to `aliases/<alias>.json`, the file readers read.

Both commit points are renames, atomic on a local disk and on HDFS. Object stores (s3a://) copy
and delete instead: a registry there is read-only (serving and batch scoring work; publishing
and alias changes are refused with the reason).

One module (about 400 lines) because versions and aliases are one layout under one root, one
Store and one atomicity rule: promote and rollback check the version they point at with `get`,
and `resolve` reads both. An alias half split off would import the whole version half back.
Loading a model and checking it fits this Spark and the events live in models/loading.py.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scorestream import fs
from scorestream.contract.spec import FeatureSpec
from scorestream.errors import AliasConflict, ModelError
from scorestream.fs import Location, Store
from scorestream.models.loading import check_event_schema, check_spark_version, load_pipeline

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel

ALIASES = ("champion", "challenger")
_VERSION_DIR = re.compile(r"^v(\d+)$")
_GENERATION = re.compile(r"^(\d+)\.json$")
HISTORY_KEPT = 50
_ATTEMPTS = 200


@dataclass(frozen=True)
class ModelVersion:
    """A published version and its metadata."""

    version: int
    path: Location
    metadata: dict[str, Any]

    @property
    def model_path(self) -> Location:
        return self.path / "model"

    @property
    def spec(self) -> FeatureSpec:
        return FeatureSpec.from_dict(self.metadata["feature_spec"])

    def profile(self) -> dict[str, Any]:
        return _read_json(fs.store(self.path), self.path / "profile.json")


def _read_json(store: Store, path: Location) -> dict[str, Any]:
    try:
        data = store.read_bytes(path)
    except FileNotFoundError as exc:
        msg = f"{path} is missing: the version is partial or was not written by scorestream"
        raise ModelError(msg) from exc
    except OSError as exc:
        msg = f"{path} cannot be read as JSON ({exc}): the version is corrupt"
        raise ModelError(msg) from exc
    return _json_object(path, data, "version")


def _json_object(path: Location, data: bytes, what: str) -> dict[str, Any]:
    """A registry file's JSON object; ModelError naming the file and what is corrupt."""
    try:
        record = json.loads(data.decode("utf-8"))
    except ValueError as exc:  # UnicodeDecodeError included
        msg = f"{path} cannot be read as JSON ({exc}): the {what} is corrupt"
        raise ModelError(msg) from exc
    if not isinstance(record, dict):
        msg = f"{path} holds {type(record).__name__}, expected a JSON object"
        raise ModelError(msg)
    return record


def _json_bytes(data: dict[str, Any]) -> bytes:
    return json.dumps(data, indent=2, sort_keys=True).encode("utf-8")


class Registry:
    """Versions and aliases under one root: a local directory or a Hadoop file-system URI.

    A Hadoop root is reached through the running SparkSession (`spark`, else the active one),
    looked up at first use, so a Registry can be built before Spark starts.
    """

    def __init__(self, root: Location | str, spark: Any = None) -> None:
        where = fs.location(root)
        self.root: Location = where if isinstance(where, fs.HadoopPath) else where.resolve()
        self.versions_dir = self.root / "versions"
        self.aliases_dir = self.root / "aliases"
        self._spark = spark
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = fs.store(self.root, self._spark)
        return self._store

    def _require_atomic(self, action: str) -> None:
        if not self.store.atomic_rename:
            scheme = str(self.root).split(":", 1)[0]
            msg = (
                f"cannot {action} in registry {self.root}: {scheme}:// has no atomic rename "
                "(a rename there is a copy and a delete), so a reader could see half a version "
                "and two writers could both win; the registry is read-only there. Publish and "
                "promote on HDFS or a local directory ("
                + ", ".join(f"{s}://" for s in fs.ATOMIC_RENAME_SCHEMES)
                + ", a path)"
            )
            raise ModelError(msg)

    # -- versions ----------------------------------------------------------------------------
    def versions(self) -> list[int]:
        found = (_VERSION_DIR.match(n) for n in self.store.names(self.versions_dir))
        return sorted(int(m.group(1)) for m in found if m)

    def get(self, version: int) -> ModelVersion:
        path = self.versions_dir / f"v{version}"
        if not self.store.is_dir(path):
            known = ", ".join(f"v{v}" for v in self.versions()) or "none"
            msg = f"model version v{version} not found in {self.root} (versions: {known})"
            raise ModelError(msg)
        metadata = _read_json(self.store, path / "metadata.json")
        for key in ("feature_spec", "spark_version"):
            if key not in metadata:
                msg = f"{path / 'metadata.json'} lacks {key!r}: the version is corrupt"
                raise ModelError(msg)
        _check_model_dir(self.store, path / "model")
        if not self.store.is_file(path / "profile.json"):
            msg = f"{path / 'profile.json'} is missing: the version is partial"
            raise ModelError(msg)
        return ModelVersion(version=version, path=path, metadata=metadata)

    def publish(
        self, write: Callable[[Location], dict[str, Any]], profile: dict[str, Any]
    ) -> ModelVersion:
        """Stage a new version (`write(model_dir)` saves the model and returns the metadata)."""
        self._require_atomic("publish a version")
        store = self.store
        staging = self.root / ".staging" / uuid.uuid4().hex
        store.mkdirs(staging)
        try:
            metadata = write(staging / "model")
            store.write_bytes(staging / "profile.json", _json_bytes(profile))
            store.mkdirs(self.versions_dir)
            for _ in range(1000):
                version = (self.versions() or [0])[-1] + 1
                metadata = {**metadata, "version": version}
                fs.write_atomic(store, staging / "metadata.json", _json_bytes(metadata))
                # A directory renamed onto a missing name appears whole; losing a race with
                # another publisher fails the rename and we try the next number.
                if store.rename(staging, self.versions_dir / f"v{version}"):
                    return self.get(version)
        finally:
            store.delete(staging, recursive=True)
        msg = f"could not publish a version in {self.root}: too many concurrent publishers"
        raise ModelError(msg)

    # -- aliases -----------------------------------------------------------------------------
    def alias(self, name: str) -> dict[str, Any] | None:
        """The alias record readers follow, or None when the alias is not set."""
        _check_alias(name)
        path = self.aliases_dir / f"{name}.json"
        try:
            data = self.store.read_bytes(path)
        except FileNotFoundError:
            return None
        return _json_object(path, data, "alias file")

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

    def promote(
        self,
        version: int,
        alias: str = "champion",
        reason: str = "",
        expected: int | None = None,
    ) -> dict[str, Any]:
        """Point `alias` at `version`; the previous target goes on its history.

        With `expected`, only if the alias still points at that version when the change is
        made (else AliasConflict): a decision taken on a reading of the alias stays valid.
        """
        _check_alias(alias)
        self._require_atomic(f"promote to {alias!r}")
        self.get(version)

        def change(current: dict[str, Any] | None) -> dict[str, Any]:
            now = None if current is None else current.get("version")
            if expected is not None and now != expected:
                shown = "not set" if now is None else f"v{now}"
                msg = (
                    f"alias {alias!r} in {self.root} is {shown}, no longer v{expected}: "
                    f"v{version} not promoted"
                )
                raise AliasConflict(msg)
            history = list(current.get("history", [])) if current else []
            if now is not None and int(now) != version:
                history.append(int(now))
            return _record(alias, version, history, reason)

        return self._change(alias, change)

    def rollback(self, alias: str = "champion", reason: str = "rollback") -> dict[str, Any]:
        """Point `alias` back at its previous target, refused when that version is gone."""
        _check_alias(alias)
        self._require_atomic(f"roll {alias!r} back")

        def change(current: dict[str, Any] | None) -> dict[str, Any]:
            if not current or not current.get("history"):
                msg = f"alias {alias!r} in {self.root} has no earlier version to roll back to"
                raise ModelError(msg)
            history = [int(v) for v in current["history"]]
            previous = history.pop()
            try:
                self.get(previous)
            except ModelError as exc:
                msg = (
                    f"cannot roll {alias!r} back to v{previous}: {exc}; it stays at "
                    f"v{current.get('version')} (promote an existing version instead)"
                )
                raise ModelError(msg) from exc
            return _record(alias, previous, history, reason)

        return self._change(alias, change)

    def clear(self, alias: str) -> None:
        _check_alias(alias)
        self._change(alias, lambda _current: _record(alias, None, [], "cleared"))

    def alias_log(self, alias: str) -> list[dict[str, Any]]:
        """Every record the alias has had, oldest first (the audit trail of its changes)."""
        _check_alias(alias)
        log_dir = self.aliases_dir / f"{alias}.log"
        return [_read_json(self.store, log_dir / n) for n in self._generations(log_dir)]

    def _generations(self, log_dir: Location) -> list[str]:
        found = [
            (int(m.group(1)), n) for n in self.store.names(log_dir) if (m := _GENERATION.match(n))
        ]
        return [n for _, n in sorted(found)]

    def _newest_generation(self, log_dir: Location) -> int:
        names = self._generations(log_dir)
        return int(names[-1].split(".")[0]) if names else 0

    def _newest(self, alias: str) -> tuple[int, dict[str, Any] | None]:
        """(generation, record) of the newest change; a registry written before the log has
        its alias file as generation 0."""
        log_dir = self.aliases_dir / f"{alias}.log"
        names = self._generations(log_dir)
        if not names:
            try:
                return 0, self.alias(alias)
            except ModelError:
                return 0, None  # an unreadable alias file holds no history to keep
        record = _read_json(self.store, log_dir / names[-1])
        return int(names[-1].split(".")[0]), (None if record.get("version") is None else record)

    def _change(
        self, alias: str, change: Callable[[dict[str, Any] | None], dict[str, Any]]
    ) -> dict[str, Any]:
        """Compare-and-swap on the alias log, retried until this writer's change is claimed."""
        self._require_atomic(f"change alias {alias!r}")
        store = self.store
        log_dir = self.aliases_dir / f"{alias}.log"
        store.mkdirs(log_dir)
        for attempt in range(_ATTEMPTS):
            generation, current = self._newest(alias)
            record = {**change(current), "generation": generation + 1}
            tmp = log_dir / f".{uuid.uuid4().hex}.tmp"
            store.write_bytes(tmp, _json_bytes(record))
            if store.rename(tmp, log_dir / f"{generation + 1:010d}.json"):
                self._publish_alias(alias, generation + 1, record)
                return record
            store.delete(tmp)
            # Another writer claimed this generation: re-read; jitter spreads the retries.
            time.sleep(random.uniform(0, 0.002 * min(attempt + 1, 20)))  # noqa: S311
        msg = f"could not change alias {alias!r} in {self.root}: too many concurrent writers"
        raise ModelError(msg)

    def _publish_alias(self, alias: str, generation: int, record: dict[str, Any]) -> None:
        """Copy the newest log record (this writer's, unless a newer one was claimed) to the
        alias file, until no newer one appeared meanwhile: a slower writer may overwrite a
        newer record, and repairs that here."""
        path = self.aliases_dir / f"{alias}.json"
        log_dir = self.aliases_dir / f"{alias}.log"
        current: dict[str, Any] | None = None if record.get("version") is None else record
        for _ in range(_ATTEMPTS):
            if self._newest_generation(log_dir) != generation:
                generation, current = self._newest(alias)
            if self._shown_generation(path) == generation:
                return
            if current is None:
                self.store.delete(path)
            else:
                fs.write_atomic(self.store, path, _json_bytes(current))
            if self._newest_generation(log_dir) == generation:
                return
        msg = f"could not publish alias {alias!r} in {self.root}: too many concurrent writers"
        raise ModelError(msg)

    def _shown_generation(self, path: Location) -> int | None:
        try:
            data = self.store.read_bytes(path)
        except FileNotFoundError:
            return None
        try:
            return int(json.loads(data).get("generation"))
        except (ValueError, TypeError, AttributeError):
            return None  # unreadable: rewrite it

    # -- loading -----------------------------------------------------------------------------
    def load(
        self, ref: str | int, event_schema: Mapping[str, str] | None = None
    ) -> tuple[ModelVersion, PipelineModel]:
        """Load a version's PipelineModel after checking it fits this Spark and the events.

        `event_schema` maps event field names to types (see `models.loading.event_fields`);
        when given, every feature the model reads must be a field of a matching kind.
        """
        version = ref if isinstance(ref, int) else self.resolve(ref)
        entry = self.get(version)
        if event_schema is not None:
            check_event_schema(entry.spec, event_schema, str(entry.path))
        check_spark_version(str(entry.metadata.get("spark_version", "")), str(entry.path))
        return entry, load_pipeline(str(entry.model_path), str(entry.model_path))


def _record(alias: str, version: int | None, history: list[int], reason: str) -> dict[str, Any]:
    return {
        "alias": alias,
        "version": version,
        "history": history[-HISTORY_KEPT:],
        "reason": reason,
        "updated_at": dt.datetime.now(dt.UTC).isoformat(),
    }


def _check_alias(name: str) -> None:
    if name not in ALIASES:
        msg = f"unknown alias {name!r}; expected one of {', '.join(ALIASES)}"
        raise ModelError(msg)


def _check_model_dir(store: Store, model_dir: Location) -> None:
    """A saved PipelineModel: its metadata and one folder per stage it lists, else partial."""
    meta_dir = model_dir / "metadata"
    parts = [meta_dir / n for n in store.names(meta_dir) if n.startswith("part-")]
    if not parts:
        msg = f"{model_dir} holds no Spark PipelineModel metadata: the version is partial"
        raise ModelError(msg)
    try:
        meta = json.loads(store.read_bytes(parts[0]).decode("utf-8").splitlines()[0])
        uids = list(meta["paramMap"]["stageUids"])
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        msg = f"{parts[0]} is not Spark PipelineModel metadata ({exc}): the version is corrupt"
        raise ModelError(msg) from exc
    width = len(str(len(uids)))  # Spark zero-pads the stage index to the count's width
    for i, uid in enumerate(uids):
        stage = model_dir / "stages" / f"{i:0{width}d}_{uid}"
        if not store.is_dir(stage / "metadata"):
            msg = f"{stage} is missing: the saved model is partial ({len(uids)} stages expected)"
            raise ModelError(msg)
