"""A counter one thread publishes and another waits on: how a backward sweep tells a thread beside
it which rows of its deltas are final (``fastrnn.runtime.overlap``); and a claim, which of two threads
takes a piece of work (``claim``: compare and set), as the two threads of a batch of one's forward chain
do (``kernels.chain``).

The sweep stores the counter with release order after the rows it covers, and the waiting thread
loads it with acquire order before it reads them: on every target the rows are then visible whole.
Plain loads and stores would not do: LLVM may keep a polled value in a register (the wait never
ends) or sink a store out of the time loop (published only at the end).
Caution (``_jit``): after editing this file, delete ``kernels/__pycache__``.
"""
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._jit import _jit


def _element(context, builder, sig, args):
    ary = context.make_array(sig.args[0])(context, builder, args[0])
    return cgutils.get_item_pointer(context, builder, sig.args[0], ary, [args[1]])


@intrinsic
def load_acquire(typingctx, arr, idx):
    """arr[idx] (int64 array) read with acquire order."""
    sig = types.int64(arr, idx)

    def codegen(context, builder, sig, args):
        return builder.load_atomic(_element(context, builder, sig, args), "acquire", 8)
    return sig, codegen


@intrinsic
def store_release(typingctx, arr, idx, val):
    """arr[idx] = val (int64 array) with release order."""
    sig = types.void(arr, idx, val)

    def codegen(context, builder, sig, args):
        value = context.cast(builder, args[2], sig.args[2], types.int64)
        builder.store_atomic(value, _element(context, builder, sig, args), "release", 8)
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def claim(typingctx, arr, idx, expected, val):
    """Set arr[idx] (int64 array) to ``val`` if it holds ``expected``, at once for every thread (acquire and
    release order): whether this thread did. Of threads that claim one element from one value, one wins."""
    sig = types.boolean(arr, idx, expected, val)

    def codegen(context, builder, sig, args):
        old = context.cast(builder, args[2], sig.args[2], types.int64)
        new = context.cast(builder, args[3], sig.args[3], types.int64)
        pair = builder.cmpxchg(_element(context, builder, sig, args), old, new, "acq_rel", "acquire")
        return builder.extract_value(pair, 1)
    return sig, codegen


def _wait_at_most(counter, target, polls):
    """Poll counter[0] until it is at most ``target``, at most ``polls`` times: whether it is. Runs
    without the GIL, so the thread that publishes may be a Python thread too."""
    for _ in range(polls):
        if load_acquire(counter, 0) <= target:
            return True
    return load_acquire(counter, 0) <= target


wait_at_most = _jit(_wait_at_most)


def _publish(counter, value):
    """counter[0] = value with release order, from Python: what was written before is seen first."""
    store_release(counter, 0, value)


publish = _jit(_publish)
