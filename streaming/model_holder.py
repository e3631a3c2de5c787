"""Follows a registry alias between micro-batches (the champion, and the shadow's challenger).

A version the alias names serves only once it passed every check: its alias record is readable,
it loads, its feature spec is sound, it reads no field the events lack and every field it reads
keeps its kind, and it scored a sample of real rows (a dry run). Otherwise the version serving
keeps serving; the refusal is logged with the path and the reason, counted, and that version is
not tried again. At start-up a champion that cannot serve is replaced by the newest version of
its alias history that can (logged and counted); with none, the scorer refuses to start.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scorestream.contract.spec import FeatureSpec
from scorestream.errors import ModelError, ScorestreamError
from scorestream.models.loading import check_event_schema
from scorestream.models.parity import Route, choose_route
from scorestream.models.registry import ALIASES
from scorestream.models.source import ModelEntry, ModelSource

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel

log = logging.getLogger(__name__)

# A dry run of a candidate version: raises when the version cannot score the sample.
Probe = Callable[[ModelEntry, "PipelineModel"], None]


def first_line(exc: BaseException) -> str:
    """An exception as one short line. A Py4J error carries a whole Java stack under a first
    line that only names the call ("An error occurred while calling o42.collectToPython."):
    its innermost cause says what went wrong."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    causes = [line.removeprefix("Caused by: ") for line in lines if line.startswith("Caused by: ")]
    if causes:
        return causes[-1][:300]
    for line in lines:
        if not line.startswith("An error occurred while calling"):
            return line.removeprefix(": ")[:300]
    return lines[0][:300] if lines else type(exc).__name__


def event_kinds(spec: FeatureSpec) -> dict[str, str]:
    """{field: kind} of the features the events carry for `spec`, as decoding types them."""
    kinds = dict.fromkeys(spec.numeric_names, "double")
    kinds.update(dict.fromkeys(spec.categorical, "string"))
    return kinds


def check_compatible(
    serving: FeatureSpec,
    candidate: FeatureSpec,
    path: str,
) -> None:
    """A model may replace another only if it reads no field the events do not carry, and every
    field it reads keeps the kind the serving spec gives it (a numeric feature a double, a
    categorical one a string). Not the Avro kinds: a loose contract may carry a number as text,
    which validation parses per record; preflight checks the reader schema at start."""
    known = set(serving.feature_names) | {serving.event_id, serving.event_time}
    needed = set(candidate.feature_names) | {candidate.event_id, candidate.event_time}
    missing = sorted(needed - known)
    if missing:
        msg = (
            f"model {path} needs fields {missing} that the events this scorer reads do not "
            f"declare (declared: {sorted(known)})"
        )
        raise ModelError(msg)
    check_event_schema(candidate, event_kinds(serving), path)


@dataclass(frozen=True)
class Served:
    """A version that passed the checks, with its loaded model."""

    entry: ModelEntry
    model: PipelineModel
    spec: FeatureSpec
    route: Route  # compiled expressions or the PipelineModel (models.parity)


class AliasFollower:
    """One registry reference (alias, `latest` or `vN`), followed between batches.

    `optional`: an unset alias means no model (the shadow's challenger) instead of an error.
    `on_failure(reason)` hears every refusal, `on_swap(version)` every switch.
    """

    def __init__(
        self,
        registry: ModelSource,
        ref: str,
        *,
        role: str = "model",
        optional: bool = False,
        on_failure: Callable[[str], None] = lambda _reason: None,
        on_swap: Callable[[int], None] = lambda _version: None,
        compile_mode: str = "off",
    ) -> None:
        self.registry = registry
        self.compile_mode = compile_mode
        self.ref = ref
        self.role = role
        self.optional = optional
        self.on_failure = on_failure
        self.on_swap = on_swap
        self.current: Served | None = None
        self._refused: set[int] = set()
        self._alias_problem: str | None = None

    @property
    def version(self) -> int | None:
        return None if self.current is None else self.current.entry.version

    def _keeps(self) -> str:
        if self.current is None:
            return f"no {self.role} serving"
        return f"v{self.current.entry.version} keeps serving"

    def _wanted(self) -> int | None:
        """The version the reference names now (None: an optional alias that is unset)."""
        if self.optional and self.ref in ALIASES:
            target = self.registry.alias(self.ref)
            if target is None:
                return None
            try:
                return int(target["version"])
            except (KeyError, TypeError, ValueError) as exc:
                msg = f"alias {self.ref!r} names no version: {target}"
                raise ModelError(msg) from exc
        try:
            return self.registry.resolve(self.ref)
        except (KeyError, TypeError, ValueError) as exc:
            msg = f"alias {self.ref!r} names no version ({exc!r})"
            raise ModelError(msg) from exc

    def _refuse(self, reason: str) -> None:
        self.on_failure(reason)

    def follow(self, serving: FeatureSpec | None, probe: Probe | None = None) -> bool:
        """Check the alias (one small file read); switch to the version it names if that
        passes every check. True on a switch. Never raises for a bad alias or version."""
        try:
            wanted = self._wanted()
        except Exception as exc:  # an alias file that is not JSON, or names nothing
            problem = first_line(exc)
            if problem != self._alias_problem:  # counted once, not once per batch
                self._alias_problem = problem
                log.error("cannot resolve %s: %s; %s", self.ref, problem, self._keeps())
                self._refuse(problem)
            return False
        self._alias_problem = None
        if wanted is None:
            if self.current is not None:
                log.warning("alias %s cleared: no %s any more", self.ref, self.role)
                self.current = None
            return False
        if wanted == self.version or wanted in self._refused:
            return False
        try:
            candidate = self._candidate(wanted, serving, probe)
        except Exception as exc:
            self._refused.add(wanted)
            log.error("%s v%d not loaded (%s); %s", self.role, wanted, exc, self._keeps())
            self._refuse(str(exc))
            return False
        log.warning("%s swap: v%s -> v%d (%s)", self.role, self.version, wanted, self.ref)
        self.current = candidate
        self.on_swap(wanted)
        return True

    def _candidate(self, version: int, serving: FeatureSpec | None, probe: Probe | None) -> Served:
        """Load `version` and run every check on it; a ScorestreamError says which failed."""
        entry, model = self.registry.load(version)
        try:
            spec = entry.spec
        except Exception as exc:  # ConfigError, or a feature_spec that is not even a mapping
            msg = f"{entry.path}/metadata.json holds a bad feature spec: {first_line(exc)}"
            raise ModelError(msg) from exc
        if serving is not None:
            check_compatible(serving, spec, str(entry.path))
        if probe is not None:
            try:
                probe(entry, model)
            except Exception as exc:
                msg = (
                    f"model {entry.path} failed a dry run on a sample of the current batch: "
                    f"{first_line(exc)}"
                )
                raise ModelError(msg) from exc
        return Served(entry, model, spec, self._route(entry, model, spec))

    def _route(self, entry: ModelEntry, model: PipelineModel, spec: FeatureSpec) -> Route:
        """Compiled expressions or the PipelineModel for this version (`--compiled`); with
        `on`, a version that does not compile is refused like one that does not load."""
        from pyspark.sql import SparkSession

        if self.compile_mode == "off":
            return Route(entry.version, None, "--compiled off")
        active = SparkSession.active()
        return choose_route(active, model, spec, entry.version, self.compile_mode)


class ModelHolder(AliasFollower):
    """The model currently serving, swapped only at batch boundaries (by the caller).

    At start-up, a champion (or challenger) that cannot serve is replaced by the newest version
    of the alias's history that can: `fallback` then says which version was refused and why.
    With no such version, or a reference that is not an alias, the start fails naming it.
    """

    def __init__(
        self,
        registry: ModelSource,
        ref: str,
        on_failure: Callable[[str], None] = lambda _reason: None,
        on_swap: Callable[[int], None] = lambda _version: None,
        compile_mode: str = "off",
    ) -> None:
        super().__init__(
            registry,
            ref,
            role="model",
            on_failure=on_failure,
            on_swap=on_swap,
            compile_mode=compile_mode,
        )
        self.fallback: tuple[int, str] | None = None
        self.current = self._start()

    def _start(self) -> Served:
        wanted = self._wanted()
        assert wanted is not None  # not optional: an unset alias raised
        try:
            return self._candidate(wanted, None, None)
        except ScorestreamError as exc:
            problem = exc
        text = self.ref.strip().lower()
        record = self.registry.alias(text) if text in ALIASES else None
        history: Sequence[int] = [
            v for v in (record or {}).get("history", []) if isinstance(v, int)
        ]
        tried = [f"v{wanted}: {problem}"]
        for version in reversed(history):  # newest first
            if version == wanted:
                continue
            try:
                served = self._candidate(version, None, None)
            except ScorestreamError as exc:
                tried.append(f"v{version}: {exc}")
                continue
            self._refused.add(wanted)
            self.fallback = (wanted, str(problem))
            log.error(
                "%s v%d cannot serve (%s); serving v%d, the newest version of the alias "
                "history that can; promote a working version to replace it",
                self.ref,
                wanted,
                problem,
                version,
            )
            return served
        msg = f"{self.ref} v{wanted} cannot serve and no version of its alias history can: " + (
            "; ".join(tried)
        )
        raise ModelError(msg) from problem

    @property
    def served(self) -> Served:
        assert self.current is not None  # set at start and only ever replaced
        return self.current

    @property
    def entry(self) -> ModelEntry:
        return self.served.entry

    @property
    def model(self) -> PipelineModel:
        return self.served.model

    @property
    def spec(self) -> FeatureSpec:
        return self.served.spec

    @property
    def route(self) -> Route:
        return self.served.route

    @property
    def version(self) -> int:
        return self.served.entry.version

    def refresh(self, probe: Probe | None = None) -> bool:
        """Follow the alias; a candidate must fit the serving spec (and pass `probe`)."""
        return self.follow(self.spec, probe)
