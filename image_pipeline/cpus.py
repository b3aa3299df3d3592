"""How many CPUs this process may really use. Standard library only."""

from __future__ import annotations

import os
from pathlib import Path

_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def available_cpus() -> int:
    """The cgroup's CPU quota, else the CPUs this process may run on (at least 1).

    `os.cpu_count()` and the affinity mask count the host's CPUs: on a 1-vCPU Cloud Run instance they can say 4 or
    more, and that many encoder or onnxruntime threads would only contend for one CPU's worth of quota.
    """
    try:
        quota, period = _CPU_MAX.read_text().split()[:2]
        if quota != "max":
            return max(1, int(quota) // int(period))
    except (OSError, ValueError):
        pass
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not every platform has affinity (macOS)
        return os.cpu_count() or 1
