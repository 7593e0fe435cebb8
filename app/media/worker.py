"""A media worker process: `python -m app.media.worker --memory-mb N --cpu-seconds S`.

It reads one task per line on stdin (a JSON object: `source`, `purpose`, `limits`, `workdir`),
runs `inspect` on it and answers one JSON line on stdout: `{"ok": true, "media": {...}}` or
`{"ok": false, "error": {"code", "message", "status", "fields"}}`. It leaves when stdin closes,
so it never outlives the server process that started it.

The operating system bounds what a hostile file can cost: the process may grow by at most
`--memory-mb` of address space beyond what its loaded code maps (RLIMIT_AS, set once the
libraries are loaded: a decoder that asks for more gets MemoryError), each
task at most `--cpu-seconds` of CPU (RLIMIT_CPU, re-armed per task: SIGXCPU ends the task),
and the worker runs at a lower priority than the server, so sign-ins and messages come first.
Either overrun answers `media_too_complex` and the worker asks to be replaced ("retire"), as
memory it grew into is not given back. PyAV (FFmpeg) is imported before the memory limit is set,
and decodes on the worker's own thread only (app/media/avprobe.py), so both limits hold for it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import sys
from pathlib import Path

NICENESS = 10


class CpuBudgetSpent(BaseException):
    """Raised by the SIGXCPU handler; a BaseException, so no `except Exception` swallows it."""


def _on_sigxcpu(signum, frame):
    raise CpuBudgetSpent()


def _mapped_bytes() -> int:
    """The address space this process holds now (its code and libraries), or 0 if unknown."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[0]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        return 0


def _limit_memory(megabytes: int) -> None:
    """Allow `megabytes` of address space for the work, on top of what the loaded code maps
    (PyAV's FFmpeg libraries alone map about 100 MB before a single file is read)."""
    limit = _mapped_bytes() + (megabytes << 20)
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _arm_cpu(seconds: int) -> None:
    """Allow `seconds` more CPU from now (the soft limit counts from the process's start)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = int(usage.ru_utime + usage.ru_stime) + 1
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = used + seconds
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _disarm_cpu() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (hard, hard))


def _too_complex() -> dict:
    return {
        "code": "media_too_complex",
        "message": "This file needs more memory or time to process than the server allows.",
        "status": 422,
        "fields": {"file": "too complex to process"},
    }


def handle(task: dict, cpu_seconds: int) -> dict:
    from app.errors import ApiError
    from app.media.inspect import Limits, inspect

    workdir = Path(task["workdir"])
    _arm_cpu(cpu_seconds)
    try:
        media = inspect(Path(task["source"]), task["purpose"], Limits(**task["limits"]), workdir)
        return {"ok": True, "media": media.to_answer(workdir)}
    except ApiError as error:
        return {"ok": False, "error": error.to_wire()}
    except (MemoryError, CpuBudgetSpent):
        return {"ok": False, "error": _too_complex(), "retire": True}
    finally:
        _disarm_cpu()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m app.media.worker")
    parser.add_argument("--memory-mb", type=int, required=True)
    parser.add_argument("--cpu-seconds", type=int, required=True)
    args = parser.parse_args(argv)
    # Answers go to the original stdout; anything else printed lands on stderr (the server log).
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    tasks = sys.stdin.buffer
    # Loaded before the memory limit is set: Pillow, and PyAV with FFmpeg's libraries.
    import app.media.avprobe  # noqa: F401
    import app.media.inspect  # noqa: F401

    os.nice(NICENESS)
    signal.signal(signal.SIGXCPU, _on_sigxcpu)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in a terminal is for the server
    _limit_memory(args.memory_mb)
    answers.write(b'{"ready": true}\n')
    answers.flush()
    for line in tasks:
        try:
            answer = handle(json.loads(line), args.cpu_seconds)
        except (MemoryError, CpuBudgetSpent):
            answer = {"ok": False, "error": _too_complex(), "retire": True}
        answers.write(json.dumps(answer).encode() + b"\n")
        answers.flush()
        if answer.get("retire"):
            break


if __name__ == "__main__":
    main()
