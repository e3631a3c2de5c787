"""The feature spec: which columns are the label, the id, the event time and the features."""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scorestream.errors import ConfigError


@dataclass(frozen=True)
class NumericFeature:
    """A numeric feature; missing values are imputed unless `required`."""

    name: str
    min: float | None = None
    max: float | None = None
    required: bool = False
    allow_nan: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "min": self.min,
            "max": self.max,
            "required": self.required,
            "allow_nan": self.allow_nan,
        }


@dataclass(frozen=True)
class FeatureSpec:
    """Columns of a data set and how each is used."""

    label: str
    numeric: tuple[NumericFeature, ...]
    categorical: tuple[str, ...] = ()
    event_id: str = "event_id"
    event_time: str = "event_time"
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [f.name for f in self.numeric] + list(self.categorical)
        if not names:
            msg = (
                "the feature spec declares no features; "
                "expected at least one numeric or categorical"
            )
            raise ConfigError(msg)
        seen: set[str] = set()
        for name in [*names, self.label, self.event_id, self.event_time]:
            if name in seen:
                msg = f"column {name!r} is declared twice in the feature spec"
                raise ConfigError(msg)
            seen.add(name)
        for f in self.numeric:
            if f.min is not None and f.max is not None and f.min > f.max:
                msg = f"feature {f.name!r} has min {f.min} > max {f.max}"
                raise ConfigError(msg)

    @property
    def numeric_names(self) -> list[str]:
        return [f.name for f in self.numeric]

    @property
    def feature_names(self) -> list[str]:
        return self.numeric_names + list(self.categorical)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "event_id": self.event_id,
            "event_time": self.event_time,
            "numeric": [f.to_dict() for f in self.numeric],
            "categorical": list(self.categorical),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        try:
            numeric = tuple(_numeric(item) for item in data.get("numeric", []))
            return cls(
                label=str(data["label"]),
                numeric=numeric,
                categorical=tuple(str(c) for c in data.get("categorical", [])),
                event_id=str(data.get("event_id", "event_id")),
                event_time=str(data.get("event_time", "event_time")),
            )
        except KeyError as exc:
            msg = f"the feature spec lacks the key {exc.args[0]!r}"
            raise ConfigError(msg) from exc

    @classmethod
    def load(cls, path: Path) -> FeatureSpec:
        """Read a spec from TOML or YAML, by extension (see docs/models.md, "Feature spec")."""
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            msg = f"cannot read feature spec {path}: {exc.strerror}"
            raise ConfigError(msg) from exc
        suffix = path.suffix.lower()
        if suffix in (".yaml", ".yml"):
            import yaml

            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                msg = f"feature spec {path} is not valid YAML: {exc}"
                raise ConfigError(msg) from exc
        elif suffix == ".toml":
            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                msg = f"feature spec {path} is not valid TOML: {exc}"
                raise ConfigError(msg) from exc
        else:
            msg = (
                f"feature spec {path}: unknown extension {suffix!r}; expected .toml, .yaml or .yml"
            )
            raise ConfigError(msg)
        if not isinstance(data, Mapping):
            msg = f"feature spec {path} must be a table of keys (label, numeric, ...)"
            raise ConfigError(msg)
        return cls.from_dict(data)

    @classmethod
    def from_flags(
        cls,
        label: str,
        numeric: str,
        categorical: str,
        event_id: str = "event_id",
        event_time: str = "event_time",
    ) -> FeatureSpec:
        """A spec from comma-separated column lists (`--numeric a,b --categorical c`)."""
        if not label:
            msg = "a label column is required: give --label or a --spec file"
            raise ConfigError(msg)
        return cls.from_dict(
            {
                "label": label,
                "numeric": [n.strip() for n in numeric.split(",") if n.strip()],
                "categorical": [c.strip() for c in categorical.split(",") if c.strip()],
                "event_id": event_id,
                "event_time": event_time,
            }
        )


def _numeric(item: Any) -> NumericFeature:
    if isinstance(item, str):
        return NumericFeature(item)
    if not isinstance(item, Mapping) or "name" not in item:
        msg = f"numeric feature entry {item!r} must be a name or a table with a 'name'"
        raise ConfigError(msg)
    low = item.get("min")
    high = item.get("max")
    for bound in (low, high):
        if bound is not None and (not isinstance(bound, int | float) or math.isnan(bound)):
            msg = f"bound {bound!r} of feature {item['name']!r} must be a number"
            raise ConfigError(msg)
    return NumericFeature(
        name=str(item["name"]),
        min=None if low is None else float(low),
        max=None if high is None else float(high),
        required=bool(item.get("required", False)),
        allow_nan=bool(item.get("allow_nan", False)),
    )
