"""scorestream: real-time ML scoring over Kafka with Spark Structured Streaming.

The Python API (docs/api.md). Names load on first use, so `import scorestream` stays cheap
and starts no JVM::

    from scorestream import Registry, Scorer, ScorerSettings, KafkaSettings, session
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_API = {
    # connections
    "KafkaSettings": "scorestream.kafka",
    "SparkSettings": "scorestream.spark",
    "session": "scorestream.spark",
    # the contract
    "FeatureSpec": "scorestream.contract.spec",
    "NumericFeature": "scorestream.contract.spec",
    "REASONS": "scorestream.contract.reasons",
    "SYNTHETIC_SPEC": "scorestream.contract.synthetic",
    # models: training, the registry, batch scoring
    "Registry": "scorestream.models.registry",
    "ModelVersion": "scorestream.models.registry",
    "TrainSettings": "scorestream.models.train",
    "train": "scorestream.models.train",
    "synthetic_frame": "scorestream.models.train",
    "BatchSettings": "scorestream.models.batch",
    "batch_score": "scorestream.models.batch",
    "score_frame": "scorestream.models.batch",
    "score": "scorestream.models.scoring",
    "typed_features": "scorestream.models.scoring",
    # events in and scores out
    "ProduceSettings": "scorestream.producers.publisher",
    "publish": "scorestream.producers.publisher",
    "iter_scores": "scorestream.producers.subscriber",
    # the streaming scorer
    "Scorer": "scorestream.streaming.job",
    "ScorerSettings": "scorestream.streaming.settings",
    "BatchListener": "scorestream.streaming.listeners",
    "BatchStats": "scorestream.streaming.listeners",
    "ScorerMonitor": "scorestream.streaming.monitor",
    "MonitorSettings": "scorestream.monitoring.settings",
    # errors
    "ScorestreamError": "scorestream.errors",
    "ConfigError": "scorestream.errors",
    "ModelError": "scorestream.errors",
    "DataError": "scorestream.errors",
}
_RENAMED = {"SYNTHETIC_SPEC": "SPEC"}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        msg = f"module 'scorestream' has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(import_module(module), _RENAMED.get(name, name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:
    from scorestream.contract.reasons import REASONS
    from scorestream.contract.spec import FeatureSpec, NumericFeature
    from scorestream.contract.synthetic import SPEC as SYNTHETIC_SPEC
    from scorestream.errors import ConfigError, DataError, ModelError, ScorestreamError
    from scorestream.kafka import KafkaSettings
    from scorestream.models.batch import BatchSettings, batch_score, score_frame
    from scorestream.models.registry import ModelVersion, Registry
    from scorestream.models.scoring import score, typed_features
    from scorestream.models.train import TrainSettings, synthetic_frame, train
    from scorestream.monitoring.settings import MonitorSettings
    from scorestream.producers.publisher import ProduceSettings, publish
    from scorestream.producers.subscriber import iter_scores
    from scorestream.spark import SparkSettings, session
    from scorestream.streaming.job import Scorer
    from scorestream.streaming.listeners import BatchListener, BatchStats
    from scorestream.streaming.monitor import ScorerMonitor
    from scorestream.streaming.settings import ScorerSettings
