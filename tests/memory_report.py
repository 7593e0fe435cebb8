"""Opt-in memory report of a pytest run: `PARLEY_TEST_RSS=1` prints, at the end, the test
process's resident memory (VmRSS, and its peak VmHWM) after each test file's last test, with
the file's test count, wall time and CPU time (user + system, less sensitive than wall time
to a busy machine). Off by default: nothing is measured or printed.

tests/conftest.py imports these hooks, so they run as the conftest's own.
"""

from __future__ import annotations

import os
import resource
import time

ENABLED = os.environ.get("PARLEY_TEST_RSS", "") not in ("", "0")

# file -> [tests, wall seconds, CPU seconds, VmRSS kB after its last test, VmHWM kB then]
_files: dict[str, list] = {}
_started: dict[str, tuple[float, float]] = {}


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def pytest_runtest_logstart(nodeid, location):
    if ENABLED:
        _started[nodeid] = (time.perf_counter(), _cpu_seconds())


def pytest_runtest_logfinish(nodeid, location):
    if not ENABLED:
        return
    wall, cpu = _started.pop(nodeid)
    entry = _files.setdefault(nodeid.split("::", 1)[0], [0, 0.0, 0.0, 0, 0])
    entry[0] += 1
    entry[1] += time.perf_counter() - wall
    entry[2] += _cpu_seconds() - cpu
    entry[3] = _status_kb("VmRSS")
    entry[4] = _status_kb("VmHWM")


def pytest_terminal_summary(terminalreporter):
    if not ENABLED or not _files:
        return
    write = terminalreporter.write_line
    terminalreporter.section("memory (PARLEY_TEST_RSS)")
    write(f"{'file':<46} {'tests':>5} {'wall s':>7} {'CPU s':>7} {'VmRSS MB':>9} {'VmHWM MB':>9}")
    for name, (tests, wall, cpu, rss, hwm) in _files.items():
        write(f"{name:<46} {tests:>5} {wall:>7.1f} {cpu:>7.1f} {rss / 1024:>9.0f} {hwm / 1024:>9.0f}")
    tests, wall, cpu = (sum(entry[column] for entry in _files.values()) for column in range(3))
    rss, hwm = _status_kb("VmRSS") / 1024, _status_kb("VmHWM") / 1024
    write(f"{'total':<46} {tests:>5} {wall:>7.1f} {cpu:>7.1f} {rss:>9.0f} {hwm:>9.0f}")
