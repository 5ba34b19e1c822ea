"""fastrnn's exceptions. Every one is also a standard ValueError/TypeError/... subclass, so code
that catches the standard class keeps working; the message names the argument, what was expected
and what arrived."""


class FastRNNError(Exception):
    """Base class of every exception fastrnn raises on purpose.

    Catch it to handle any refusal of fastrnn's at once; a bug inside fastrnn would surface as
    another exception.

    Examples
    --------
    >>> import numpy as np, fastrnn
    >>> net = fastrnn.RNN.init(n_in=2, n_hidden=3, n_out=1, seed=0)
    >>> try:
    ...     fastrnn.forward(net, np.zeros((5, 1, 4)))
    ... except fastrnn.FastRNNError as e:
    ...     print(type(e).__name__)
    ShapeError
    """


class ShapeError(FastRNNError, ValueError):
    """An array has the wrong number of dimensions or the wrong shape.

    Examples
    --------
    >>> import numpy as np, fastrnn
    >>> net = fastrnn.RNN.init(n_in=2, n_hidden=3, n_out=1, seed=0)
    >>> fastrnn.forward(net, np.zeros((5, 1, 4)))
    Traceback (most recent call last):
    ...
    fastrnn.errors.ShapeError: x has shape (5, 1, 4) but must be (T, B, m) = (…, …, 2): pass a time-major array (steps, batch, inputs)
    """


class DTypeError(FastRNNError, TypeError):
    """An array has a dtype fastrnn does not compute in, or dtypes are mixed.

    fastrnn computes in float64 or float32 and never casts silently.

    Examples
    --------
    >>> import numpy as np, fastrnn
    >>> net = fastrnn.RNN.init(n_in=2, n_hidden=3, n_out=1, seed=0)
    >>> fastrnn.forward(net, np.zeros((5, 1, 2), dtype=np.int64))
    Traceback (most recent call last):
    ...
    fastrnn.errors.DTypeError: x has dtype int64 but must be float64 or float32: use x.astype(np.float64)
    """


class NonFiniteError(FastRNNError, ValueError):
    """An input, target or weight holds NaN or infinity.

    Examples
    --------
    >>> import numpy as np, fastrnn
    >>> net = fastrnn.RNN.init(n_in=2, n_hidden=3, n_out=1, seed=0)
    >>> fastrnn.forward(net, np.full((5, 1, 2), np.nan))
    Traceback (most recent call last):
    ...
    fastrnn.errors.NonFiniteError: x holds NaN or infinity (first at index (0, 0, 0)): fastrnn computes only with finite values
    """


class OptionError(FastRNNError, ValueError):
    """An unknown name (activation, readout, loss) or an invalid option value.

    Examples
    --------
    >>> import numpy as np, fastrnn
    >>> net = fastrnn.RNN.init(n_in=2, n_hidden=3, n_out=1, seed=0)
    >>> fastrnn.bptt(net, np.zeros((5, 1, 2)), np.zeros((5, 1, 1)), loss="hinge")
    Traceback (most recent call last):
    ...
    fastrnn.errors.OptionError: loss='hinge' is not known: choose one of 'mse', 'xent', 'bce'
    """


class ValidationError(FastRNNError, RuntimeError):
    """A kernel result differs from ``fastrnn.reference`` by more than SPEC §7's tolerance.

    Raised by calls made with ``validate=True``, which recompute the result with the NumPy
    reference; it means a defect in fastrnn, not in the caller's data.

    Examples
    --------
    >>> import numpy as np, fastrnn
    >>> net = fastrnn.RNN.init(n_in=2, n_hidden=3, n_out=1, seed=0)
    >>> x, d = np.zeros((5, 1, 2)), np.ones((5, 1, 1))
    >>> try:
    ...     loss, grads = fastrnn.bptt(net, x, d, validate=True)    # checked: no error
    ... except fastrnn.ValidationError as e:
    ...     print("report this:", e)
    >>> round(float(loss), 6) > 0
    True
    """


class MemoryBudgetError(FastRNNError, MemoryError):
    """The work would need more memory than the configured budget allows.

    Checked before anything is allocated (RTRL's sensitivities grow as B·n²·J); the message says
    how much the call needs and what would make it fit.

    Examples
    --------
    >>> import numpy as np, fastrnn
    >>> net = fastrnn.RNN.init(n_in=2, n_hidden=3, n_out=1, seed=0)
    >>> old = fastrnn.set_memory_budget(1000)                       # 1000 bytes
    >>> try:
    ...     fastrnn.rtrl(net, np.zeros((5, 1, 2)), np.zeros((5, 1, 1)))
    ... except fastrnn.MemoryBudgetError as e:
    ...     print(str(e)[:60])
    RNN RTRL with n=3, m=2, B=1 in float64 (2 buffers of B·(n+1)
    >>> _ = fastrnn.set_memory_budget(old)
    """
