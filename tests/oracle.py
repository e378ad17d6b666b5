"""Oracles computed without Spark: what the lake must hold, from the raw files and event lines."""
from __future__ import annotations

import glob
import json
import os

import pandas as pd


def valid_event(line: str) -> dict | None:
    """The event a JSON line carries, or None when the speed layer must quarantine it."""
    try:
        event = json.loads(line)
        out = {"userId": int(event["userId"]), "movieId": int(event["movieId"]),
               "rating": float(event["rating"]), "timestamp": int(event["timestamp"])}
    except (ValueError, KeyError, TypeError):
        return None
    return out if 0.5 <= out["rating"] <= 5.0 and 0 <= out["timestamp"] <= 4102444800 else None


def event_lines(folder: str) -> list[str]:
    lines = []
    for path in sorted(glob.glob(os.path.join(folder, "events-*.json"))):
        # surrogateescape: a malformed source line may be sent on with its undecodable bytes
        lines += open(path, encoding="utf-8", errors="surrogateescape").read().split("\n")[:-1]
    return lines


def latest_ratings(batch: pd.DataFrame, lines: list[str]) -> pd.DataFrame:
    """silver.ratings: batch ratings and valid events together, the latest (timestamp, rating) per key."""
    events = pd.DataFrame([e for e in map(valid_event, lines) if e is not None],
                          columns=["userId", "movieId", "rating", "timestamp"])
    everything = pd.concat([batch[["userId", "movieId", "rating", "timestamp"]], events], ignore_index=True)
    latest = everything.sort_values(["timestamp", "rating"]).groupby(["userId", "movieId"], as_index=False).last()
    return latest.sort_values(["userId", "movieId"]).reset_index(drop=True)


def movie_stats(ratings: pd.DataFrame, min_votes: int) -> pd.DataFrame:
    """Per movie: count, sum, mean, Bayesian average over the given ratings."""
    c = ratings.rating.mean()
    stats = ratings.groupby("movieId").rating.agg(rating_count="count", rating_sum="sum").reset_index()
    stats["rating_mean"] = stats.rating_sum / stats.rating_count
    stats["bayes_avg"] = (c * min_votes + stats.rating_sum) / (stats.rating_count + min_votes)
    return stats.sort_values("movieId").reset_index(drop=True)
