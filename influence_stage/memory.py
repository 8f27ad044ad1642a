"""Handing freed memory back to the operating system between the large steps of a run."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
from typing import Any


def release_free_memory() -> None:
    """Hand memory this process freed back to the operating system: the pages Arrow's allocator
    (``pyarrow.default_memory_pool``, mimalloc or jemalloc) and glibc's ``malloc`` keep for reuse after
    large buffers are freed. Without it a step that built and dropped a million-row column leaves the
    process that much larger for the rest of the run. Arrow's pool only when pyarrow is loaded; glibc's
    only where it is the C library."""
    pa = sys.modules.get("pyarrow")
    if pa is not None:
        pa.default_memory_pool().release_unused()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


@functools.lru_cache(maxsize=1)
def _libc() -> Any:
    """glibc, for ``malloc_trim``; None elsewhere (musl, macOS, Windows)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


__all__ = ["release_free_memory"]
