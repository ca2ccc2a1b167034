"""Keep glibc's malloc from handing large blocks back to the kernel after every use.

A CPU forward pass allocates and frees activations of many MB per layer (64 channels x 256² x 4 bytes =
16 MB). glibc serves such blocks with mmap and returns them to the kernel with munmap (or trims the heap)
as soon as they are freed, so every forward pass page-faults and zeroes its activations again. Raising
the mmap and trim thresholds lets freed blocks be reused instead. Measured on 2 AMD EPYC cores, default
model, 4096² scene: `Predictor.predict` 60.6 s -> 27.1 s, same output (benchmarks/RESULTS.md).

The cost is memory that stays mapped after a peak instead of being returned: at most the trim threshold
(256 MB) of free heap. It is process-wide, so it is only applied where geoseg runs torch on the CPU, once,
and never when the user has set glibc's own ``MALLOC_*_`` variables or ``GEOSEG_MALLOC_TUNING=0``.
"""
from __future__ import annotations

import ctypes
import functools
import os
import sys

#: mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: Blocks up to this size come from the heap and are reused (glibc's own ceiling for its dynamic threshold
#: is 32 MB on 64-bit; a wide layer's activations pass that).
MMAP_THRESHOLD = 64 * 2**20
#: Free heap kept before trimming: room for a forward pass's working set.
TRIM_THRESHOLD = 256 * 2**20


@functools.lru_cache(maxsize=1)
def keep_large_blocks() -> bool:
    """Raise glibc's mmap and trim thresholds once; True when applied (Linux with glibc only)."""
    if not sys.platform.startswith("linux") or os.environ.get("GEOSEG_MALLOC_TUNING", "1") == "0":
        return False
    if any(k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return False                                          # the user tuned glibc: leave it alone
    try:
        mallopt = ctypes.CDLL(None).mallopt                 # the C library this process already runs on
    except AttributeError:                                  # musl and others have no mallopt
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
