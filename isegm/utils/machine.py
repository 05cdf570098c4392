"""A description of the machine for benchmark output: every figure is printed with the CPU that produced it."""
import os
import platform
from pathlib import Path


def cpu_name() -> str:
    """The CPU's model name (as ``lscpu`` shows it) and the number of cores this process sees."""
    name = platform.processor() or platform.machine() or "unknown CPU"
    try:
        name = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{name} ({os.cpu_count()} cores)"
