"""Follows a registry alias between micro-batches: loads a newly promoted version, keeps the old
one serving when the new one fails to load or does not fit the event schema."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from scorestream.contract.spec import FeatureSpec
from scorestream.errors import ModelError
from scorestream.models.source import ModelEntry, ModelSource

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel

log = logging.getLogger(__name__)


def check_compatible(serving: FeatureSpec, candidate: FeatureSpec, path: str) -> None:
    """A model may replace another only if it reads no field the events do not carry."""
    known = set(serving.feature_names) | {serving.event_id, serving.event_time}
    needed = set(candidate.feature_names) | {candidate.event_id, candidate.event_time}
    missing = sorted(needed - known)
    if missing:
        msg = (
            f"model {path} needs fields {missing} that the events this scorer reads do not "
            f"declare (declared: {sorted(known)})"
        )
        raise ModelError(msg)


class ModelHolder:
    """The model currently serving, swapped only at batch boundaries (by the caller)."""

    def __init__(
        self,
        registry: ModelSource,
        ref: str,
        on_failure: Callable[[str], None] = lambda _reason: None,
        on_swap: Callable[[int], None] = lambda _version: None,
    ) -> None:
        self.registry = registry
        self.ref = ref
        self.on_failure = on_failure
        self.on_swap = on_swap
        self.entry: ModelEntry
        self.model: PipelineModel
        self.entry, self.model = registry.load(ref)
        self.spec = self.entry.spec
        self._failed: set[int] = set()

    @property
    def version(self) -> int:
        return self.entry.version

    def refresh(self) -> bool:
        """Check the alias (one small file read); load and switch if it moved. True on a swap."""
        try:
            wanted = self.registry.resolve(self.ref)
        except ModelError as exc:
            log.warning("cannot resolve %s: %s; v%d keeps serving", self.ref, exc, self.version)
            return False
        if wanted == self.version or wanted in self._failed:
            return False
        try:
            entry, model = self.registry.load(wanted)
            check_compatible(self.spec, entry.spec, str(entry.path))
        except ModelError as exc:
            self._failed.add(wanted)
            log.error("model v%d not loaded (%s); v%d keeps serving", wanted, exc, self.version)
            self.on_failure(str(exc))
            return False
        log.warning("model swap: v%d -> v%d (%s)", self.version, wanted, self.ref)
        self.entry, self.model = entry, model
        self.on_swap(wanted)
        return True
