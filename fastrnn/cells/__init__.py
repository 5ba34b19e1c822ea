"""The cell drivers, one module per cell, and the registry the public calls look them up in.

Adding a cell: a model class in ``fastrnn.models``, a driver module here (a ``Driver`` subclass of
``base.CellDriver``), its kernels in ``kernels/`` and its reference in ``fastrnn.reference``, and
one line below that registers the driver.
"""
from ..errors import OptionError
from . import gru, lstm, lstmp, rnn
from .base import CellDriver, OnlineCell, Run

DRIVERS = {}   # model class -> driver


def register(driver):
    """Make ``driver`` (a CellDriver instance) the one that computes for ``driver.model``."""
    DRIVERS[driver.model] = driver
    return driver


register(rnn.Driver())
register(lstm.Driver())
register(gru.Driver())
register(lstmp.Driver())


def driver_for(net):
    """The driver of ``net``'s cell; a clear error for anything that is not a fastrnn network."""
    driver = DRIVERS.get(type(net))
    if driver is None:
        for cls, candidate in DRIVERS.items():      # subclasses of a registered model
            if isinstance(net, cls):
                return candidate
        names = ", ".join(f"fastrnn.{cls.__name__}" for cls in DRIVERS)
        raise OptionError(f"net must be a fastrnn network ({names}), got {type(net).__name__}")
    return driver


__all__ = ["CellDriver", "OnlineCell", "Run", "DRIVERS", "register", "driver_for"]
