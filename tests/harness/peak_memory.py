"""The peak RSS of a child process, for the flat-memory tests and bench/scan.py.

The child reads its own VmHWM (its address space's high-water mark) from /proc/self/status: not
getrusage's ru_maxrss, which Linux carries over the exec from the parent (subprocess starts
children with vfork), so a parent grown to 230 MB made every child "peak" at 230 MB.
"""

from __future__ import annotations

import inspect


def peak_mb() -> float:
    """This process's peak resident set size in MB (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


PEAK_MB_SOURCE = inspect.getsource(peak_mb)
"""The definition of `peak_mb`, to open the script of a child `python -c`."""
