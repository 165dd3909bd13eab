"""Process-wide settings of the command lines and the app: torch threads and the memory allocator.

Rendering and training allocate the same large temporary tensors (hundreds of MB of per-sample activations) on
every step. glibc's malloc serves allocations above its mmap threshold with fresh ``mmap`` pages and returns freed
heap memory to the kernel, so each step page-faults and zeroes that memory again: on a 2-core AMD EPYC a
geometry-edit training step spent a third of its time in the kernel. :func:`tune_allocator` raises both
thresholds so freed memory stays in the process and is reused (the effect of the jemalloc/tcmalloc preloads that
PyTorch's CPU performance guides recommend, without a preload). Results are unchanged (only where memory comes
from changes); the process keeps its peak memory instead of returning it.

The thresholds alone do not reach other threads: glibc gives each new thread an arena of its own, whose heaps hold
at most 64 MiB, so a large tensor allocated there is a fresh ``mmap`` whatever the threshold. The app trains and
renders in worker threads: in a probe, 30 `hair_red` training steps took 35 s in a thread (20 s of it in the
kernel, 10 M page faults) against 20 s in the main thread (1 s, 0.5 M), and ``python -m lenerf bench app
--train-recipe hair_red --train-steps 100`` trained 61% slower from the UI than by the CLI. :func:`tune_allocator`
therefore also keeps a single arena for the process (``M_ARENA_MAX`` 1, what ``MALLOC_ARENA_MAX=1`` sets): the
thread's 30 steps 21 s (3 s in the kernel, 0.55 M faults), the UI's training 25% slower than the CLI's. It applies
to threads that first allocate after it, so entry points call it before they start any.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8  # glibc's mallopt parameters (malloc.h)
_done: bool | None = None


def tune_allocator() -> bool:
    """Keep freed memory for reuse, in every thread (glibc only; once per process). Returns whether it is active.
    Set ``LENERF_TUNE_MALLOC=0`` to leave the allocator alone (e.g. to measure the difference)."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if os.environ.get("LENERF_TUNE_MALLOC", "1") == "0" or not sys.platform.startswith("linux"):
        return _done
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        return _done
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    limit = 2 ** 31 - 1
    _done = (bool(mallopt(_M_MMAP_THRESHOLD, limit)) and bool(mallopt(_M_TRIM_THRESHOLD, limit))
             and bool(mallopt(_M_ARENA_MAX, 1)))
    return _done


def setup(threads: int | None = None) -> None:
    """What every entry point does first: :func:`tune_allocator`, then ``threads`` torch threads when given."""
    tune_allocator()
    if threads:
        import torch
        torch.set_num_threads(threads)
