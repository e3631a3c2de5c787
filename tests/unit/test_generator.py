"""The synthetic card transactions: seeded, chunk-independent, and carrying the hidden rule."""

from __future__ import annotations

import itertools

import numpy as np

from scorestream.contract.synthetic import SPEC, Drift, generate_columns, iter_events
from scorestream.producers.encoding import encode_json, iso_millis, parse_time


def test_same_seed_same_events_different_seed_different_events() -> None:
    a = list(iter_events(500, seed=3))
    assert a == list(iter_events(500, seed=3))
    assert a != list(iter_events(500, seed=4))


def test_event_k_depends_only_on_seed_and_k() -> None:
    whole = list(iter_events(25_000, seed=9))
    assert list(iter_events(250, seed=9)) == whole[:250]
    # A slice across a generation block boundary equals the same slice of the whole run.
    assert list(iter_events(3_000, seed=9, start=9_000)) == whole[9_000:12_000]
    assert whole[12_345]["event_id"] == "evt-9-12345"


def test_events_carry_every_declared_feature_and_respect_ranges() -> None:
    events = list(iter_events(5_000, seed=1))
    assert len({e["event_id"] for e in events}) == 5_000
    for event in itertools.islice(events, 200):
        assert set(SPEC.feature_names) <= set(event)
    for feature in SPEC.numeric:
        values = np.array([e[feature.name] for e in events], dtype=float)
        assert np.isfinite(values).all()
        if feature.min is not None:
            assert values.min() >= feature.min, feature.name
        if feature.max is not None:
            assert values.max() <= feature.max, feature.name


def test_label_follows_the_hidden_rule() -> None:
    cols = generate_columns(50_000, seed=5)
    label = cols["is_fraud"]
    assert 0.01 < label.mean() < 0.3
    online = cols["is_online"] == 1
    # The rule raises risk for online purchases and for cards far from home.
    assert label[online].mean() > label[~online].mean()
    far = cols["distance_from_home_km"] > np.quantile(cols["distance_from_home_km"], 0.9)
    assert label[far].mean() > label[~far].mean()


def test_drift_scales_only_the_named_feature_after_the_given_event() -> None:
    plain = generate_columns(2_000, seed=8)
    drifted = generate_columns(2_000, seed=8, drift=Drift(after=1_000, feature="amount", factor=3))
    np.testing.assert_allclose(drifted["amount"][:1000], plain["amount"][:1000])
    np.testing.assert_allclose(drifted["amount"][1000:], plain["amount"][1000:] * 3)
    np.testing.assert_array_equal(drifted["country"], plain["country"])


def test_json_encoding_round_trips_times_in_utc_milliseconds() -> None:
    event = {"event_id": "e1", "amount": 12.5, "event_time": 1_767_225_600_123}
    body = encode_json(event)
    assert body == (b'{"event_id":"e1","amount":12.5,"event_time":"2026-01-01T00:00:00.123Z"}')
    assert iso_millis(1_767_225_600_123) == "2026-01-01T00:00:00.123Z"
    assert parse_time("2026-01-01T00:00:00.123Z") == 1_767_225_600.123
