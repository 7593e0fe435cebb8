"""Running CPU-heavy work without stalling the gevent loop.

Two kinds of work, kept apart so one never queues behind the other:

- `off_loop` runs short work that releases the GIL (argon2 password hashing) on gevent's thread
  pool. A sign-in waits only for other sign-ins.
- `WorkerPool` runs work on hostile input (decoding uploaded images) in a few separate worker
  processes, each limited in memory and CPU time by the operating system, with a wall-clock
  limit per task and a cap on the tasks a process may queue. A worker that dies or overruns is
  killed and replaced; the others carry on.

Workers are started with fork+exec (`python -m <module>`), never a bare fork of the serving
process: that process is gevent-patched and holds sockets and database connections. Tasks and
answers are single JSON lines over the worker's stdin and stdout; the parent waits for an
answer with `select`, which gevent makes cooperative, so a waiting request blocks nothing else.
JSON (not pickle) keeps a compromised worker from running code in the server.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time

from gevent import get_hub, monkey

log = logging.getLogger(__name__)

# A worker is replaced after this many tasks, so the memory a long run fragments is given back.
TASKS_PER_WORKER = 500
# Seconds a new worker may take to load its code and say it is ready (not counted in a task's time).
STARTUP_SECONDS = 60
MAX_ANSWER_BYTES = 1 << 20


def off_loop(fn, *args):
    """Run `fn(*args)` on gevent's thread pool when the process is monkey-patched, so work that
    releases the GIL (argon2 hashing) doesn't stall every socket of the process."""
    if monkey.is_module_patched("socket"):
        return get_hub().threadpool.apply(fn, args)
    return fn(*args)


class PoolBusy(Exception):
    """The pool has as many tasks queued as it accepts, or no worker came free in time."""


class TaskTimeout(Exception):
    """The task ran past its wall-clock limit; its worker was killed."""


class WorkerDied(Exception):
    """The worker ended without answering (killed by the kernel for its limits, or crashed)."""


class _Worker:
    """One worker process and the two ends of its pipes."""

    def __init__(self, command: list[str], cwd: str):
        # The parent keeps raw descriptors: reads happen only when `select` says data is there.
        task_read, self.task_write = os.pipe()
        self.answer_read, answer_write = os.pipe()
        try:
            self.process = subprocess.Popen(
                command, stdin=task_read, stdout=answer_write, cwd=cwd, close_fds=True
            )
        except BaseException:
            for fd in (self.task_write, self.answer_read):
                os.close(fd)
            raise
        finally:
            os.close(task_read)
            os.close(answer_write)
        self.tasks = 0
        self.buffer = b""
        self.ready = False

    def alive(self) -> bool:
        return self.process.poll() is None

    def ask(self, task: dict, timeout: float) -> dict:
        if not self.ready:
            # A worker that cannot start is the server's fault, not the file's.
            try:
                self.ready = self._answer(STARTUP_SECONDS).get("ready") is True
            except (TaskTimeout, WorkerDied):
                self.ready = False
            if not self.ready:
                raise RuntimeError(f"media worker {self.process.pid} did not start")
        line = json.dumps(task).encode() + b"\n"
        try:
            os.write(self.task_write, line)
        except OSError:
            raise WorkerDied() from None
        self.tasks += 1
        return self._answer(timeout)

    def _answer(self, timeout: float) -> dict:
        """The next line the worker writes, as a JSON object."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TaskTimeout()
            readable, _, _ = select.select([self.answer_read], [], [], remaining)
            if not readable:
                continue
            chunk = os.read(self.answer_read, 65536)
            if not chunk:
                raise WorkerDied()
            self.buffer += chunk
            if len(self.buffer) > MAX_ANSWER_BYTES:
                raise WorkerDied()
        line, self.buffer = self.buffer.split(b"\n", 1)
        try:
            answer = json.loads(line)
        except ValueError:
            raise WorkerDied() from None
        if not isinstance(answer, dict):
            raise WorkerDied()
        return answer

    def stop(self, *, kill: bool = False) -> None:
        """End the worker: closing its stdin asks it to leave; `kill` doesn't wait for that."""
        for fd in (self.task_write, self.answer_read):
            with contextlib.suppress(OSError):
                os.close(fd)
        if kill and self.process.poll() is None:
            self.process.kill()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class WorkerPool:
    """At most `size` worker processes, started when first needed; at most `queue` tasks
    waiting or running at once in this process (beyond: `PoolBusy`)."""

    def __init__(self, module: str, size: int, queue: int, *, args: list[str] | None = None, cwd: str):
        self.command = [sys.executable, "-m", module, *(args or [])]
        self.cwd = cwd
        self.size = size
        self.queue = max(queue, size)
        self._lock = threading.Lock()
        self._free = threading.Semaphore(size)
        self._idle: list[_Worker] = []
        self._pending = 0
        self.replaced = 0  # workers killed or found dead (for tests and logs)
        self._closed = False

    def run(self, task: dict, *, timeout: float, wait: float) -> dict:
        """Send `task` to a worker and return its answer. Waits at most `wait` seconds for a free
        worker, then at most `timeout` seconds for the answer."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the worker pool is closed")
            if self._pending >= self.queue:
                raise PoolBusy()
            self._pending += 1
        try:
            if not self._free.acquire(timeout=wait):
                raise PoolBusy()
            try:
                return self._run_on_a_worker(task, timeout)
            finally:
                self._free.release()
        finally:
            with self._lock:
                self._pending -= 1

    def _run_on_a_worker(self, task: dict, timeout: float) -> dict:
        worker = self._take()
        try:
            answer = worker.ask(task, timeout)
        except BaseException:
            # Overran, died, or the wait was interrupted (a gevent Timeout, a killed greenlet):
            # the worker's state is unknown, so it is killed and a new one takes its place.
            self._discard(worker)
            raise
        if answer.get("retire") or worker.tasks >= TASKS_PER_WORKER or self._closed:
            self._discard(worker, expected=True)
        else:
            with self._lock:
                self._idle.append(worker)
        return answer

    def _take(self) -> _Worker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.alive():
                    return worker
                self._discard(worker)
        return _Worker(self.command, self.cwd)

    def _discard(self, worker: _Worker, *, expected: bool = False) -> None:
        if not expected:
            self.replaced += 1
            log.warning("media worker %s replaced", worker.process.pid)
        worker.stop(kill=not expected)

    def close(self) -> None:
        """Stop every idle worker (workers busy with a task stop when their task ends)."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.stop()
