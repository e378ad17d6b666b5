"""Rating events for the speed layer: held-back ratings in event-time order, with injected faults.

Pure and seeded: the same ratings and settings give the same lines, so a test can compute what
the stream must produce from the lines alone.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

MALFORMED = [
    '{"userId": 1, "movieId": ',                                      # cut off mid-record
    '{"userId": 1, "movieId": "abc", "rating": 4.0, "timestamp": 1}',  # non-numeric key
    '{"userId": 1, "movieId": 2, "rating": 9.5, "timestamp": 1}',      # rating out of range
    '{"movieId": 2, "rating": 4.0, "timestamp": 1}',                   # no userId
    'not json at all',
]


@dataclass(frozen=True)
class Faults:
    duplicate_rate: float = 0.0
    rerating_rate: float = 0.0
    out_of_order_rate: float = 0.0
    late_rate: float = 0.0
    malformed_rate: float = 0.0


def event_line(user: int, movie: int, rating: float, timestamp: int) -> str:
    return json.dumps({"userId": int(user), "movieId": int(movie), "rating": float(rating), "timestamp": int(timestamp)})


def replay_lines(ratings: pd.DataFrame, faults: Faults, seed: int, late_by: int = 50) -> list[str]:
    """JSON lines in send order: ratings by event time, each fault applied to a seeded share of them.

    duplicate: the same line twice; rerating: a later event for the same (user, movie) with another
    rating; out_of_order: swapped with the next line; late: sent `late_by` lines after its turn;
    malformed: a broken record (the original event is lost, as it would be upstream).
    """
    rng = np.random.default_rng(seed)
    ordered = ratings.sort_values(["timestamp", "userId", "movieId"], kind="stable")
    lines: list[str] = []
    for row in ordered.itertuples(index=False):
        if rng.random() < faults.malformed_rate:
            lines.append(MALFORMED[int(rng.integers(len(MALFORMED)))])
            continue
        line = event_line(row.userId, row.movieId, row.rating, row.timestamp)
        lines.append(line)
        if rng.random() < faults.duplicate_rate:
            lines.append(line)
        if rng.random() < faults.rerating_rate:
            new_rating = float(rng.choice([r for r in np.arange(0.5, 5.5, 0.5) if r != row.rating]))
            lines.append(event_line(row.userId, row.movieId, new_rating, row.timestamp + int(rng.integers(1, 3600))))
    for i in range(len(lines) - 1):
        if rng.random() < faults.out_of_order_rate:
            lines[i], lines[i + 1] = lines[i + 1], lines[i]
    late = [i for i in range(len(lines)) if rng.random() < faults.late_rate]
    for i in reversed(late):  # move each chosen line later in the stream
        line = lines.pop(i)
        lines.insert(min(len(lines), i + late_by), line)
    return lines
