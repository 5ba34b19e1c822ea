"""A budget for memory-hungry work (the RTRL sensitivities), checked before allocating."""
import os

from ..errors import MemoryBudgetError, OptionError

_budget = None   # bytes; None: half of the memory available at the time of the check


def available_bytes():
    """Memory available now (Linux MemAvailable; elsewhere free physical pages)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def memory_budget():
    """The budget in bytes now: the value set with ``set_memory_budget``, else half of available memory."""
    if _budget is not None:
        return _budget
    avail = available_bytes()
    return None if avail is None else avail // 2


def set_memory_budget(nbytes):
    """Set the budget for RTRL sensitivities in bytes (None: half of available memory). Returns the old setting."""
    global _budget
    if nbytes is not None and (isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 1):
        raise OptionError(f"the memory budget must be a positive number of bytes or None, got {nbytes!r}")
    old, _budget = _budget, nbytes
    return old


def _human(n):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024


def check(nbytes, what, ways_out):
    """Raise MemoryBudgetError if ``nbytes`` exceeds the budget."""
    budget = memory_budget()
    if budget is not None and nbytes > budget:
        raise MemoryBudgetError(f"{what} needs {_human(nbytes)} ({nbytes} bytes) but the memory budget is "
                                f"{_human(budget)} ({budget} bytes) "
                                f"(fastrnn.set_memory_budget changes it). Ways out: {ways_out}")
