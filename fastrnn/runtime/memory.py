"""A budget for memory-hungry work (the RTRL sensitivities), checked before allocating."""
import os
import time

from ..errors import MemoryBudgetError, OptionError

_budget = None   # bytes; None: half of the memory available at the time of the check
FRESH = 1.0      # seconds a reading of the available memory serves requests far below it
_reading = (-FRESH, None)   # (time.monotonic() of the last reading, its bytes)


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
    """The budget in bytes now: the value set with ``set_memory_budget``, else half of available memory.

    Returns
    -------
    int or None
        None where the available memory cannot be read and no budget was set.

    Examples
    --------
    >>> import fastrnn
    >>> old = fastrnn.set_memory_budget(2**30)
    >>> fastrnn.memory_budget()
    1073741824
    >>> _ = fastrnn.set_memory_budget(old)
    """
    if _budget is not None:
        return _budget
    avail = available_bytes()
    return None if avail is None else avail // 2


def set_memory_budget(nbytes):
    """Set the budget for memory-hungry work (RTRL sensitivities, the states of long BPTT calls).

    Parameters
    ----------
    nbytes : int or None
        The budget in bytes; None: half of the memory available at each check.

    Returns
    -------
    int or None
        The previous setting.

    Raises
    ------
    OptionError
        For anything but a positive integer or None.

    Examples
    --------
    >>> import numpy as np, fastrnn
    >>> old = fastrnn.set_memory_budget(2000)
    >>> net = fastrnn.RNN.init(2, 8, 1, seed=0)
    >>> try:
    ...     fastrnn.rtrl(net, np.ones((3, 1, 2)), np.zeros((3, 1, 1)))
    ... except fastrnn.MemoryBudgetError as exc:
    ...     print(str(exc).split(" needs")[0])
    RNN RTRL with n=8, m=2, B=1 in float64 (2 buffers of B·(n+1)·n·J = 1·9·8·11 numbers of 8 bytes)
    >>> _ = fastrnn.set_memory_budget(old)
    """
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


def _recent_budget(nbytes):
    """The default budget for a request of ``nbytes``: half of the available memory, read afresh
    unless a reading under FRESH seconds old shows the request below a quarter of the budget (the
    reading costs a file read, 17 us, on every small gradient call otherwise)."""
    global _reading
    at, avail = _reading
    now = time.monotonic()
    if avail is None or now - at > FRESH or nbytes > avail // 8:
        avail = available_bytes()
        _reading = (now, avail)
    return None if avail is None else avail // 2


def check(nbytes, what, ways_out):
    """Raise MemoryBudgetError if ``nbytes`` exceeds the budget. ``what`` names the request (a
    string, or a function returning one, called only for the error)."""
    budget = _budget if _budget is not None else _recent_budget(nbytes)
    if budget is not None and nbytes > budget:
        what = what() if callable(what) else what
        raise MemoryBudgetError(f"{what} needs {_human(nbytes)} ({nbytes} bytes) but the memory budget is "
                                f"{_human(budget)} ({budget} bytes) "
                                f"(fastrnn.set_memory_budget changes it). Ways out: {ways_out}")
