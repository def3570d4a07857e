"""One event per line, logfmt, the ITS and the step on every line."""

from __future__ import annotations

import io

from ks_its_hooks.log import EventLog, format_event


def test_log_lines_are_logfmt_with_its_and_step() -> None:
    line = format_event("info", "its1", "space", 'waiting for "x"', {"waited_s": 1.5, "missing": "a b"}, 0.25)
    assert line == (
        'time=1970-01-01T00:00:00.250Z level=info its=its1 step=space msg="waiting for \\"x\\"" waited_s=1.5 missing="a b"'
    )


def test_a_value_with_a_newline_stays_on_one_line() -> None:
    line = format_event("error", "its1", "ocm-hub", "failed", {"cause": "a\nb"}, 0)
    assert "\n" not in line and 'cause="a\\nb"' in line


def test_each_level_writes_one_line() -> None:
    stream = io.StringIO()
    log = EventLog("its9", stream)
    log.info("space", "one")
    log.warn("ocm-hub", "two")
    log.error("registration", "three")
    lines = stream.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == ["level=info", "level=warn", "level=error"]
    assert all("its=its9" in line for line in lines)
