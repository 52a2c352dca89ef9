"""Keep freed host memory in the process for reuse, instead of handing it back to the OS at every free.

With glibc's default malloc, a training step's large temporaries (activations, gradients, the tensors of a
double backward) are returned to the kernel when freed: blocks above the mmap threshold are ``munmap``-ed, and
free memory at the top of the heap beyond the trim threshold is released. The next step asks for the same
sizes again and pays a page fault for every 4 KiB page it touches (the test counts them: 0.40 faults per page
per round of a 48 MiB churn with glibc 2.36's defaults, 0.004 retained). :func:`retain_freed_memory` raises
both thresholds with ``mallopt``, so freed blocks stay in the heap and are reused; it is what PyTorch's CPU
performance guide gets by preloading jemalloc or tcmalloc, without a preload.

Measured (``benchmarks/allocator.py``, BENCHMARKS.md): the lab's Trainer runs the MNIST-1D CNN about 17%
faster; the overhead of :class:`regopt.diagnostics.IllConditioningMonitor` every 10 steps (a double backward:
fresh memory at every check) falls from +30.5% and +34.0% to +23.5% and +24.9% (two runs, fresh processes);
MLP steps whose temporaries glibc already recycles are unchanged. ``regopt`` (the CLI) calls it at start; set
``REGOPT_RETAIN_FREED_MEMORY=0`` to keep the allocator's defaults. The cost is resident memory: the process
keeps its peak heap instead of shrinking after it. Elsewhere than glibc (macOS, Windows, musl) it does nothing
and returns ``False``.

References: glibc manual, "Malloc Tunable Parameters" (``M_TRIM_THRESHOLD``, ``M_MMAP_THRESHOLD``);
PyTorch performance tuning guide, "Switch Memory allocator".
"""

from __future__ import annotations

import ctypes
import os
import platform

M_TRIM_THRESHOLD = -1  # <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 << 20  # glibc's ceiling on 64-bit (HEAP_MAX_SIZE / 2); larger values are refused
INT_MAX = (1 << 31) - 1  # mallopt takes a C int
DISABLE_VARIABLE = "REGOPT_RETAIN_FREED_MEMORY"


def retain_freed_memory(trim_threshold: int = 1 << 30, mmap_threshold: int = MMAP_THRESHOLD_MAX) -> bool:
    """Raise glibc's trim and mmap thresholds so freed blocks are reused rather than returned to the OS.

    Process-wide and not undoable (setting a threshold turns off glibc's own adjustment of it), so call it
    once, at the start of a training process. Blocks larger than ``mmap_threshold`` are still mapped and
    unmapped per allocation.

    Args:
        trim_threshold: bytes of free memory the heap may keep at its top (default 1 GiB).
        mmap_threshold: allocations at least this large get their own mapping (default and ceiling 32 MiB).

    Returns:
        ``True`` if both thresholds were set; ``False`` where the C library is not glibc.

    Raises:
        ValueError: ``trim_threshold`` outside [0, 2**31 - 1] or ``mmap_threshold`` outside [0, 32 MiB].
    """
    if not 0 <= trim_threshold <= INT_MAX or not 0 <= mmap_threshold <= MMAP_THRESHOLD_MAX:
        raise ValueError(
            f"retain_freed_memory: trim_threshold must be in [0, {INT_MAX}] and mmap_threshold in "
            f"[0, {MMAP_THRESHOLD_MAX}] bytes, got {trim_threshold} and {mmap_threshold}"
        )
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(M_TRIM_THRESHOLD, trim_threshold))


def retain_freed_memory_unless_disabled() -> bool:
    """:func:`retain_freed_memory`, unless the environment sets ``REGOPT_RETAIN_FREED_MEMORY=0``."""
    if os.environ.get(DISABLE_VARIABLE, "1").strip() in {"0", "false", "no", "off"}:
        return False
    return retain_freed_memory()
