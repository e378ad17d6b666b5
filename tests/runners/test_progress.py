"""Progress lines: the first and last item always, the others at most once every every_s."""
import logging

from common.progress import progress


def test_progress_logs_first_last_and_at_most_one_line_per_interval(caplog):
    times = iter([0.0, 0.0, 3.0, 11.0, 12.0, 25.0, 26.0, 30.0])  # start, then one tick per item, then the end
    log = logging.getLogger("lakejobs.test_progress")
    with caplog.at_level(logging.INFO, logger=log.name):
        seen = list(progress(["a", "b", "c", "d", "e", "f"], "day", log, every_s=10.0, clock=lambda: next(times)))
    assert seen == ["a", "b", "c", "d", "e", "f"]
    assert [r.getMessage() for r in caplog.records] == [
        "day 1 of 6 (a), 0 s elapsed",   # the first
        "day 3 of 6 (c), 11 s elapsed",  # 11 s after the last line; b (3 s) was not logged, nor d (12 s: 1 s after c)
        "day 5 of 6 (e), 25 s elapsed",
        "day 6 of 6 (f), 26 s elapsed",  # the last, however soon
        "day: 6 done in 30 s",
    ]


def test_progress_of_nothing_logs_nothing(caplog):
    with caplog.at_level(logging.INFO):
        assert list(progress([], "file", logging.getLogger("lakejobs.test_progress"))) == []
    assert caplog.records == []
