"""Progress a person can follow through a long loop (the files of a full-load, the settings of a
search, the days of a backfill): "<what> 2 of 5 (<item>), 41 s elapsed" lines, without flooding a CI
log: the first and the last item are always logged, the others at most once every `every_s`."""
from __future__ import annotations

import logging
import time
from typing import Callable, Iterator, Sequence, TypeVar

T = TypeVar("T")


def progress(items: Sequence[T], what: str, log: logging.Logger, label: Callable[[T], str] = str,
             every_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> Iterator[T]:
    """Yield items, logging at INFO which one starts, n of N, and the time since the first."""
    total = len(items)
    began = last = clock()
    for n, item in enumerate(items, 1):
        now = clock()
        if n in (1, total) or now - last >= every_s:
            log.info("%s %d of %d (%s), %.0f s elapsed", what, n, total, label(item), now - began)
            last = now
        yield item
    if total:
        log.info("%s: %d done in %.0f s", what, total, clock() - began)
