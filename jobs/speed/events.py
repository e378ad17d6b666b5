"""Rating events for the speed layer: held-back ratings in event-time order, with injected faults.

Pure and seeded: the same ratings and settings give the same lines, so a test can compute what
the stream must produce from the lines alone. A held-back line that is not a well-formed rating
travels on as a malformed event, for the speed layer to quarantine with its reason: every source
line ends in one table.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass

import numpy as np

from common.schemas import Dialect

MALFORMED = [
    '{"userId": 1, "movieId": ',                                      # cut off mid-record
    '{"userId": 1, "movieId": "abc", "rating": 4.0, "timestamp": 1}',  # non-numeric key
    '{"userId": 1, "movieId": 2, "rating": 9.5, "timestamp": 1}',      # rating out of range
    '{"movieId": 2, "rating": 4.0, "timestamp": 1}',                   # no userId
    'not json at all',
]


@dataclass(frozen=True)
class Rating:
    userId: int
    movieId: int
    rating: float
    timestamp: int


@dataclass(frozen=True)
class Unparsed:
    """A held-back line that is not a well-formed rating, already as the event line that carries it."""

    line: str
    timestamp: int  # its place in event-time order (0 when it has none)


@dataclass(frozen=True)
class Faults:
    duplicate_rate: float = 0.0
    rerating_rate: float = 0.0
    out_of_order_rate: float = 0.0
    late_rate: float = 0.0
    malformed_rate: float = 0.0


def event_line(user: int, movie: int, rating: float, timestamp: int) -> str:
    return json.dumps({"userId": int(user), "movieId": int(movie), "rating": float(rating), "timestamp": int(timestamp)})


def read_held_back(data: bytes, dialect: Dialect = Dialect(),
                   columns: tuple[str, ...] = ()) -> list[Rating | Unparsed]:
    """The data lines of a held-back ratings file in the ratings file's dialect (the header first, when
    it has one; else `columns` name the fields), one item per line, as they are cut (on \\n, as
    extract's hold-back cuts them)."""
    lines = [line.removesuffix(b"\r") for line in data.split(b"\n")]
    if lines and lines[-1] == b"":
        lines.pop()  # the file's final newline
    if dialect.header:
        header, *lines = lines or [b""]
        columns = tuple(_fields(header.decode(dialect.python_encoding), dialect))
    return [_held_back_row(line, list(columns), dialect) for line in lines]


def _fields(text: str, dialect: Dialect) -> list[str]:
    """A line's fields as the full-load splits them (Python's csv reader when quoted)."""
    if dialect.quote is None or len(dialect.separator) != 1:
        return text.split(dialect.separator)
    return next(csv.reader([text], delimiter=dialect.separator, quotechar=dialect.quote), [])


def _held_back_row(raw: bytes, names: list[str], dialect: Dialect = Dialect()) -> Rating | Unparsed:
    try:
        text = raw.decode(dialect.python_encoding)
    except UnicodeDecodeError:  # sent as the same bytes: the speed layer names them undecodable
        return Unparsed(raw.decode("utf-8", "surrogateescape"), _last_int(raw.decode("latin-1"), dialect.separator))
    fields = _fields(text, dialect)
    if len(fields) != len(names):  # a JSON string, not an object: no field of it can be taken as a rating's
        return Unparsed(json.dumps(text), _last_int(text, dialect.separator))
    try:
        rating = Rating(int(fields[0]), int(fields[1]), float(fields[2]), int(fields[3]))
        if math.isfinite(rating.rating):
            return rating
    except ValueError:
        pass
    # The fields as the source wrote them, as strings (an empty one as null, as the CSV reader takes
    # it): the speed layer types and checks them the way the full-load does, with the same reasons.
    return Unparsed(json.dumps({n: f if f != "" else None for n, f in zip(names, fields)}),
                    _last_int(text, dialect.separator))


def _last_int(text: str, separator: str = ",") -> int:
    try:
        return int(text.rsplit(separator, 1)[-1])
    except ValueError:
        return 0


def replay_lines(rows: list[Rating | Unparsed], faults: Faults, seed: int, late_by: int = 50) -> list[str]:
    """JSON lines in send order: ratings by event time, each fault applied to a seeded share of them.

    duplicate: the same line twice; rerating: a later event for the same (user, movie) with another
    rating; out_of_order: swapped with the next line; late: sent `late_by` lines after its turn;
    malformed: a broken record (the original event is lost, as it would be upstream). A row that was
    malformed in the source is sent once, as it is, and draws no fault.
    """
    rng = np.random.default_rng(seed)
    ordered = sorted(rows, key=lambda r: (r.timestamp, r.userId, r.movieId) if isinstance(r, Rating)
                     else (r.timestamp, -1, -1))
    lines: list[str] = []
    for row in ordered:
        if isinstance(row, Unparsed):
            lines.append(row.line)
            continue
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
