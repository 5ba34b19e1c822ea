"""fastrnn's exceptions. Every one is also a standard ValueError/TypeError/... subclass."""


class FastRNNError(Exception):
    """Base class of every exception fastrnn raises on purpose."""


class ShapeError(FastRNNError, ValueError):
    """An array has the wrong number of dimensions or the wrong shape."""


class DTypeError(FastRNNError, TypeError):
    """An array has a dtype fastrnn does not compute in, or dtypes are mixed."""


class NonFiniteError(FastRNNError, ValueError):
    """An input, target or weight holds NaN or infinity."""


class OptionError(FastRNNError, ValueError):
    """An unknown name (activation, readout, loss) or an invalid option value."""


class ValidationError(FastRNNError, RuntimeError):
    """A kernel result differs from ``fastrnn.reference`` by more than SPEC §7's tolerance."""


class MemoryBudgetError(FastRNNError, MemoryError):
    """The work would need more memory than the configured budget allows."""
