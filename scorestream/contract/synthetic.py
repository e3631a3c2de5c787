"""Synthetic card transactions with a fraud label from a known hidden rule plus noise, seedable."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from scorestream.contract.spec import FeatureSpec, NumericFeature

CATEGORIES = (
    "grocery",
    "fuel",
    "restaurant",
    "travel",
    "electronics",
    "fashion",
    "gambling",
    "digital_goods",
    "pharmacy",
    "utilities",
)
CATEGORY_WEIGHTS = (0.22, 0.12, 0.16, 0.06, 0.08, 0.1, 0.03, 0.08, 0.07, 0.08)
CATEGORY_RISK = {"gambling": 1.6, "digital_goods": 1.1, "electronics": 0.9, "travel": 0.5}
COUNTRIES = ("DE", "FR", "GB", "US", "NL", "ES", "IT", "BR", "NG", "IN")
COUNTRY_WEIGHTS = (0.25, 0.15, 0.15, 0.12, 0.08, 0.08, 0.07, 0.04, 0.03, 0.03)
COUNTRY_RISK = {"NG": 1.0, "BR": 0.6, "IN": 0.4}

SPEC = FeatureSpec(
    label="is_fraud",
    numeric=(
        NumericFeature("amount", min=0.0),
        NumericFeature("hour_of_day", min=0.0, max=23.0),
        NumericFeature("distance_from_home_km", min=0.0),
        NumericFeature("card_age_days", min=0.0),
        NumericFeature("is_online", min=0.0, max=1.0),
        NumericFeature("transactions_last_24h", min=0.0),
    ),
    categorical=("merchant_category", "country"),
)


@dataclass(frozen=True)
class Drift:
    """Shift applied to generated events from event number `after` on (for drift scenarios)."""

    after: int = 0
    feature: str = "amount"
    factor: float = 1.0


def generate_columns(
    n: int, seed: int, start: int = 0, drift: Drift | None = None
) -> dict[str, np.ndarray]:
    """`n` events as columns (numpy arrays), labels included; the same seed gives the same data."""
    rng = np.random.default_rng(seed)
    amount = np.round(rng.lognormal(mean=3.4, sigma=1.1, size=n), 2)
    hour = rng.choice(24, size=n, p=_hour_weights()).astype(float)
    distance = np.round(rng.exponential(scale=12.0, size=n), 2)
    card_age = rng.integers(1, 3650, size=n).astype(float)
    online = (rng.random(n) < 0.35).astype(float)
    tx24 = rng.poisson(3.0, size=n).astype(float)
    merchant = rng.choice(CATEGORIES, size=n, p=CATEGORY_WEIGHTS)
    country = rng.choice(COUNTRIES, size=n, p=COUNTRY_WEIGHTS)
    if drift is not None and drift.factor != 1.0:
        index = np.arange(start, start + n)
        shifted = index >= drift.after
        cols = {
            "amount": amount,
            "distance_from_home_km": distance,
            "card_age_days": card_age,
            "transactions_last_24h": tx24,
        }
        cols[drift.feature][shifted] *= drift.factor
    # The hidden rule: risk grows with amount, night hours, distance, new cards, online,
    # bursts of transactions and some merchant categories and countries.
    logit = (
        -6.2
        + 0.55 * np.log1p(amount)
        + 0.9 * ((hour <= 5) | (hour >= 23))
        + 0.5 * np.log1p(distance) / 2
        + 1.1 * (card_age < 60)
        + 0.8 * online
        + 0.18 * tx24
        + np.array([CATEGORY_RISK.get(m, 0.0) for m in merchant])
        + np.array([COUNTRY_RISK.get(c, 0.0) for c in country])
        + rng.normal(0.0, 0.6, size=n)
    )
    label = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    ids = np.array([f"evt-{seed}-{start + i}" for i in range(n)])
    return {
        "event_id": ids,
        "amount": amount,
        "merchant_category": merchant,
        "country": country,
        "hour_of_day": hour,
        "distance_from_home_km": distance,
        "card_age_days": card_age,
        "is_online": online,
        "transactions_last_24h": tx24,
        "is_fraud": label,
    }


def _hour_weights() -> np.ndarray:
    hours = np.arange(24)
    weights = (
        1.0 + 2.0 * np.exp(-((hours - 13) ** 2) / 18.0) + 1.2 * np.exp(-((hours - 19) ** 2) / 8.0)
    )
    return np.asarray(weights / weights.sum())


BLOCK = 10_000


def iter_events(
    count: int, seed: int, start: int = 0, drift: Drift | None = None
) -> Iterator[dict[str, object]]:
    """Feature events `start .. start+count-1` (no label), the same for any count.

    Generated in fixed blocks, so memory stays flat and event k depends only on (seed, k).
    """
    done = start
    end = start + count
    while done < end:
        block, first = divmod(done, BLOCK)
        cols = generate_columns(
            BLOCK, seed=seed * 1_000_003 + block, start=block * BLOCK, drift=drift
        )
        n = min(BLOCK - first, end - done)
        for i in range(first, first + n):
            yield {
                "event_id": f"evt-{seed}-{block * BLOCK + i}",
                "amount": float(cols["amount"][i]),
                "merchant_category": str(cols["merchant_category"][i]),
                "country": str(cols["country"][i]),
                "hour_of_day": float(cols["hour_of_day"][i]),
                "distance_from_home_km": float(cols["distance_from_home_km"][i]),
                "card_age_days": float(cols["card_age_days"][i]),
                "is_online": float(cols["is_online"][i]),
                "transactions_last_24h": float(cols["transactions_last_24h"][i]),
            }
        done += n
