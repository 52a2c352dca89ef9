"""AlarmLog: every alarm kept, logged on "regopt.diagnostics" at WARNING, rate-limited with a count of the rest."""

from __future__ import annotations

import io
import logging

import pytest
import torch

from regopt.diagnostics.alarms import LOGGER_NAME, AlarmLog


def test_first_alarm_logged_then_at_most_one_per_interval_with_a_count(caplog):
    log = AlarmLog("gradient_norms", every=100)
    with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
        for step in (5, 6, 7, 104, 105, 230, 231):
            log.alarm(step, f"spike at step {step}: clip")
        log.flush()
    records = [r for r in caplog.records if r.name == LOGGER_NAME]
    assert all(r.levelno == logging.WARNING for r in records)
    assert [r.getMessage() for r in records] == [
        "spike at step 5: clip",
        "spike at step 105: clip (3 more gradient_norms alarms since step 6 not shown)",
        "spike at step 230: clip",
        "1 more gradient_norms alarms from step 231 to 231 not shown (the monitor keeps them all)",
    ]
    assert [a.step for a in log.alarms] == [5, 6, 7, 104, 105, 230, 231]
    assert [a.step for a in log.shown] == [5, 105, 230]
    assert log.held_back == 4


def test_records_reach_a_handler_on_the_regopt_logger():
    """The CLI prints what reaches the "regopt" logger."""
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    parent = logging.getLogger("regopt")
    parent.addHandler(handler)
    try:
        AlarmLog("plateau").alarm(3, "plateau at step 3")
    finally:
        parent.removeHandler(handler)
    assert seen == ["plateau at step 3"]


def test_every_one_logs_everything(caplog):
    log = AlarmLog("plateau", every=1)
    with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
        for step in (1, 2, 3):
            log.alarm(step, f"a{step}")
        log.flush()  # nothing held back: nothing more to say
    assert [r.getMessage() for r in caplog.records] == ["a1", "a2", "a3"]


def test_state_dict_round_trip_continues_the_rate_limit(caplog):
    straight = AlarmLog("x", every=10)
    first = AlarmLog("x", every=10)
    steps = [1, 2, 3, 12, 13, 30]
    with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
        for s in steps:
            straight.alarm(s, str(s))
        for s in steps[:2]:
            first.alarm(s, str(s))
        buffer = io.BytesIO()
        torch.save(first.state_dict(), buffer)
        buffer.seek(0)
        resumed = AlarmLog("x", every=10)
        resumed.load_state_dict(torch.load(buffer, weights_only=True))
        for s in steps[2:]:
            resumed.alarm(s, str(s))
    assert resumed.alarms == straight.alarms


@pytest.mark.parametrize("every", [0, 1.5, True])
def test_bad_interval(every):
    with pytest.raises(ValueError, match=r"^every must be"):
        AlarmLog("x", every=every)
