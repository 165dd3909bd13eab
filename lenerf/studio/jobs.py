"""Background training jobs for the app: one worker per device, a bounded queue, cancellation, live progress.

Interactive requests (previews, turntables, inversions) and training share one device. :class:`ComputeGate` runs
all of them on one compute thread and lets interactive requests go first: a training step never runs while an
interactive request is waiting, so a preview waits at most for the step in flight, and two requests never fight
over the same cores or GPU.
"""
from __future__ import annotations

import contextvars
import itertools
import logging
import os
import threading
import time
import traceback
from collections import deque
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import numpy as np

from ..errors import InputError, LENeRFError

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
T = TypeVar("T")


class ComputeGate:
    """One compute thread for all of the app's torch work, interactive requests first.

    Why one thread: torch's CPU backend is OpenMP, and every thread that runs a parallel op keeps a team of OpenMP
    threads of its own; once a process holds more of them than cores, libgomp spins only briefly before it sleeps
    between parallel regions, and a training in a worker thread beside another thread's team ran 5-26% slower
    than in the main thread (docs/speed.md). On one thread there is one team.

    :meth:`run` runs a callable on the compute thread and waits for it: its result is returned and its error raised
    in the caller, and the caller's context variables (e.g. Gradio's progress tracker) go with it. Called from the
    compute thread itself (or in a forked child, e.g. a ZeroGPU worker, where the thread does not exist) it runs
    the callable at once. Waiting interactive tasks run before background ones (training jobs). A long task (a
    training job, an inversion, a turntable) runs each step inside :meth:`step`, which first runs the interactive
    tasks that are waiting, on the same thread: a preview waits at most for the step in flight (a long interactive
    task that starts there finishes before the step it interrupted).
    """

    def __init__(self, name: str = "lenerf-compute"):
        self._cond = threading.Condition()
        self._interactive: deque = deque()
        self._background: deque = deque()
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _inline(self) -> bool:
        return threading.current_thread() is self._thread or os.getpid() != self._pid

    def run(self, fn: Callable[..., T], *args, interactive: bool = True, **kwargs) -> T:
        """``fn(*args, **kwargs)`` on the compute thread; blocks until it has run."""
        if self._inline():
            return fn(*args, **kwargs)
        task = (Future(), contextvars.copy_context(), fn, args, kwargs)
        with self._cond:
            (self._interactive if interactive else self._background).append(task)
            self._cond.notify()
        return task[0].result()

    @staticmethod
    def _execute(task) -> None:
        future, ctx, fn, args, kwargs = task
        try:
            future.set_result(ctx.run(fn, *args, **kwargs))
        except BaseException as e:  # noqa: BLE001 - to the caller (a cancelled training raises KeyboardInterrupt)
            future.set_exception(e)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not (self._interactive or self._background):
                    self._cond.wait()
                task = (self._interactive or self._background).popleft()
            self._execute(task)

    @contextmanager
    def step(self) -> Iterator[None]:
        """Guard of one step of a task running on the compute thread: the interactive tasks waiting run first."""
        if os.getpid() == self._pid:
            if threading.current_thread() is not self._thread:
                raise RuntimeError("ComputeGate.step() guards the steps of a task on the compute thread: "
                                   "start that task with ComputeGate.run")
            while True:
                with self._cond:
                    if not self._interactive:
                        break
                    task = self._interactive.popleft()
                self._execute(task)
        yield


@dataclass
class TrainJob:
    """A training request and its live state (read by the UI while the worker writes it)."""

    id: int
    name: str
    owner: str
    run: Callable[["TrainJob"], Path]
    steps: int
    status: str = QUEUED
    step: int = 0
    losses: dict = field(default_factory=dict)
    eta_s: float | None = None
    phase: str = ""  # "mask warm-up" or "edit" while running
    preview: np.ndarray | None = None
    message: str = ""
    note: str = ""  # about the config, shown while it trains (e.g. a shape word in a texture-only edit)
    result: Path | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)

    @property
    def done(self) -> bool:
        return self.status in (DONE, FAILED, CANCELLED)

    @property
    def wall_s(self) -> float | None:
        if self.started is None:
            return None
        return (self.finished or time.time()) - self.started

    def update(self, info: dict) -> None:
        """Callback for :func:`lenerf.editing.train_edit`."""
        self.step = int(info["step"])
        self.steps = int(info.get("steps", self.steps))
        self.phase = str(info.get("phase", ""))
        self.eta_s = float(info.get("eta_s", 0.0))
        self.losses = {k: float(v) for k, v in info.items()
                       if k not in ("step", "steps", "eta_s", "elapsed_s", "preview", "phase")
                       and np.isscalar(v) and not isinstance(v, str)}
        if info.get("preview") is not None:
            self.preview = info["preview"]


class TrainingQueue:
    """FIFO of :class:`TrainJob` run one at a time by a daemon worker thread.

    ``max_pending`` bounds queued + running jobs (across users); one unfinished job per owner."""

    def __init__(self, max_pending: int = 4):
        self.max_pending = max_pending
        self._jobs: dict[int, TrainJob] = {}
        self._queue: deque[TrainJob] = deque()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._worker = threading.Thread(target=self._loop, name="lenerf-train-worker", daemon=True)
        self._worker.start()

    def submit(self, name: str, owner: str, steps: int, run: Callable[[TrainJob], Path], note: str = "") -> TrainJob:
        with self._lock:
            pending = [j for j in self._jobs.values() if not j.done]
            if any(j.owner == owner for j in pending):
                raise InputError("you already have a training job queued or running; wait for it or cancel it")
            if len(pending) >= self.max_pending:
                raise InputError(f"the training queue is full ({self.max_pending} jobs); try again later")
            job = TrainJob(next(self._ids), name, owner, run, steps, note=note)
            self._jobs[job.id] = job
            self._queue.append(job)
        self._wake.set()
        return job

    def get(self, job_id: int) -> TrainJob:
        if job_id not in self._jobs:
            raise InputError(f"no training job {job_id}")
        return self._jobs[job_id]

    def position(self, job: TrainJob) -> int:
        """0 = running or finished, k = k-th in line."""
        with self._lock:
            return next((k + 1 for k, j in enumerate(self._queue) if j is job), 0)

    def cancel(self, job_id: int) -> TrainJob:
        job = self.get(job_id)
        job.cancel_event.set()
        with self._lock:
            if job in self._queue:  # not started yet: drop it now
                self._queue.remove(job)
                job.status, job.finished, job.message = CANCELLED, time.time(), "cancelled before it started"
        return job

    def wait(self, job_id: int, timeout: float | None = None) -> TrainJob:
        job, t0 = self.get(job_id), time.time()
        while not job.done and (timeout is None or time.time() - t0 < timeout):
            time.sleep(0.05)
        return job

    def _loop(self) -> None:
        while True:
            self._wake.wait()
            with self._lock:
                job = self._queue.popleft() if self._queue else None
                if job is None:
                    self._wake.clear()
                    continue
                job.status, job.started = RUNNING, time.time()
            try:
                job.result = job.run(job)
                job.status, job.message = DONE, f"finished in {job.wall_s:.0f} s"
            except KeyboardInterrupt:
                job.status, job.message = CANCELLED, f"cancelled at step {job.step} (checkpoint kept)"
            except LENeRFError as e:
                job.status, job.message = FAILED, str(e)
            except Exception as e:  # a bug: keep the worker alive, log the traceback, show a short message
                log.error("training job %s failed:\n%s", job.id, traceback.format_exc())
                job.status, job.message = FAILED, f"internal error ({type(e).__name__}: {e}); see the server log"
            job.finished = time.time()
