"""fastrnn inside PyTorch: ``fastrnn.torch.RNN``, ``fastrnn.torch.LSTM`` and ``fastrnn.torch.GRU``.

Modules with the constructor arguments, forward signature, parameter names, ``state_dict`` keys
and initialisation of ``torch.nn.RNN`` / ``torch.nn.LSTM`` / ``torch.nn.GRU``; their forward and backward passes
run fastrnn's kernels (``fastrnn.forward`` and ``fastrnn.vjp``) as two operators registered with
``torch.library`` (``fastrnn::layer``, ``fastrnn::layer_backward``), one call per layer and
direction, so gradients reach the inputs, the initial
states and every parameter, and the rest of the model stays ordinary PyTorch. Changing
``torch.nn.LSTM`` to ``fastrnn.torch.LSTM`` is the whole port for the arguments supported here.

fastrnn runs here on at most ``torch.get_num_threads()`` threads, with the BLAS libraries held to
one thread. torch's threads spin for a while after each torch operation (8.5 ms measured), and a parallel call
would share the cores with them: where torch runs GNU OpenMP on every CPU (its Linux wheels by default), a call of
5·10^7 multiply-adds or more that pays on parallel threads first puts them to sleep (``_quiet_torch``) and then
runs with fastrnn's usual thresholds; shorter calls stay on one thread, and their products over all T·B rows
(weight gradients, dL/dx) run on torch's own awake pool (``torch.mm``; float32 at torch's "highest" matmul
precision only). Without that way (another OpenMP runtime, fewer torch threads than CPUs), the parallel kernels
run only for calls of 2.5·10^8 multiply-adds or more (``runtime.dispatch.beside``). With
``OMP_WAIT_POLICY=PASSIVE`` in the environment before torch is imported, torch's threads sleep
instead, and fastrnn's usual thresholds apply. Layers are stacked and directions run in PyTorch (``torch.cat``, ``torch.flip``, dropout between
layers from torch's generator); each layer and direction is one fastrnn call. What is not
supported raises an error that says what to do instead: CUDA tensors, double
backward, dtypes other than float32 and float64. ``PackedSequence`` input runs each sequence for its
own length only. The operators are opaque to ``torch.compile``: models with fastrnn layers compile
with ``fullgraph=True``.

PyTorch is an optional dependency: ``pip install 'fastrnn[torch]'``.
"""
import copy
import math
import os

try:
    import torch
except ImportError as exc:                    # pragma: no cover - only without the extra
    raise ImportError("fastrnn.torch needs PyTorch: pip install 'fastrnn[torch]' "
                      "(the CPU wheel: pip install torch==2.13.0)") from exc

import numpy as np

from torch._C import _functions as _torch_functions

from . import api, models
from ._docs import fill
from .errors import DTypeError, OptionError, ShapeError
from .runtime import overlap as _overlap
from .runtime.dispatch import beside, gomp_threads_spin

__all__ = ["RNN", "LSTM", "GRU", "beside_torch"]

_DTYPES = (torch.float32, torch.float64)
_AUTOCAST_DTYPES = (torch.bfloat16, torch.float16)   # taken in the parameters' dtype inside torch.autocast
_DOUBLE_BACKWARD = ("fastrnn.torch computes first derivatives only: double backward (create_graph=True "
                    "through a fastrnn layer, then differentiating the gradients) is not supported; use "
                    "torch.nn's module for higher-order gradients")


def _numpy(t):
    """A NumPy view of a CPU tensor (no copy; fastrnn never writes its inputs)."""
    return t.detach().numpy()


# -- one layer in one direction, as two opaque operators -------------------------------------------
# ``fastrnn::layer`` runs the forward pass and ``fastrnn::layer_backward`` the vector-Jacobian
# product, both through fastrnn's kernels; registered with torch.library so that autograd, and
# torch.compile(fullgraph=True), see one operation per call instead of Python and NumPy code.
# Truncation travels as two ints (h, h'), 0 meaning exact.

_SPINNING = gomp_threads_spin()     # read once: torch's OpenMP runtime read the variables when it loaded


def _gnu_openmp():
    """Whether this process has GNU OpenMP (libgomp) loaded: torch's runtime in the Linux wheels."""
    try:
        with open("/proc/self/maps") as maps:
            return any("libgomp" in line for line in maps)
    except OSError:                       # pragma: no cover - no /proc (not Linux)
        return False


_CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
_GOMP = _gnu_openmp()
_GRAIN = 32768                      # at::internal::GRAIN_SIZE: elements per thread of an elementwise operation
_WAKE = None                        # (CPUs + 1) · _GRAIN bytes: one more thread than CPUs


PIN_QUIET = True        # the quiet's extra thread starts on this thread's CPU (a switch for bench/quiet_stalls.py)


def _sched_getcpu():
    """The C library's ``sched_getcpu`` (the CPU the calling thread runs on), or None where there is none."""
    try:
        import ctypes
        fn = ctypes.CDLL(None).sched_getcpu
    except (OSError, AttributeError, ImportError):      # pragma: no cover - not glibc / musl
        return None
    fn.argtypes, fn.restype = [], ctypes.c_int
    return fn


_GETCPU = _sched_getcpu() if hasattr(os, "sched_setaffinity") else None


_TASKS_DIR = "/proc/self/task"


def _pin_to_this_cpu():
    """Hold the calling thread to the CPU it runs on, so that a thread it starts starts there too (a new thread
    inherits its creator's CPU mask). Returns what ``_unpin`` needs (the mask, this process's threads now), or None
    where that cannot be done."""
    if _GETCPU is None:
        return None
    try:
        mask = os.sched_getaffinity(0)
        cpu = _GETCPU()
        if cpu < 0 or cpu not in mask or len(mask) < 2:
            return None
        threads = set(os.listdir(_TASKS_DIR))
        os.sched_setaffinity(0, {cpu})
        return mask, threads
    except OSError:                     # a mask this process may not set (a container's policy), no /proc: no pin
        return None


def _unpin(mask, threads):
    """The calling thread's mask back, and every thread started since ``_pin_to_this_cpu`` given it too: the mask it
    would have had. The quiet's extra thread ends at torch's next operation, but the first parallel operation in a
    process starts the whole pool, whose threads stay: held to one CPU, they would run torch's every operation
    there."""
    try:
        os.sched_setaffinity(0, mask)
    except OSError:                     # pragma: no cover - the mask it had a moment ago
        pass
    try:
        started = set(os.listdir(_TASKS_DIR)) - threads
    except OSError:                     # pragma: no cover - read a moment ago
        return
    for tid in started:
        try:
            os.sched_setaffinity(int(tid), mask)
        except OSError:                 # a thread that has ended since
            pass


def _quiet_torch():
    """Put torch's spinning OpenMP threads to sleep now. libgomp spins only 100 iterations, instead of
    its usual 300 000 (8.5 ms measured), while it manages more threads than the process has CPUs (its
    manual, ``GOMP_SPINCOUNT``): one elementwise operation on CPUs + 1 threads ends with every thread
    of the pool asleep. torch's next parallel operation, back on its own count, wakes them (tens of
    microseconds) and lets the extra thread exit. Measured in a float32 training step (T=100, two
    cores): fastrnn.torch.LSTM n=128 B=32 32.5 ms -> 24.2 (torch.nn 24.3), n=128 B=8 7.9 -> 6.7.

    It runs every time: waking a pool that already sleeps costs more (270-350 us here, KVM, against
    about 75 while it spins), but telling the two apart from outside failed. Skipping while every
    thread the last call started still ran (no torch operation on its own count since) made steps
    slower (2-layer bidirectional LSTM n=128 B=32 122.7 -> 139.8 ms, n=128 B=8 7.50 -> 8.05): at those
    moments torch's threads were found running all the same.

    The operation starts a new thread each time (torch's next operation on its own count ends it), and the new
    thread must get a CPU before the operation can end. Started from a thread free to run anywhere, the kernel
    queued it behind a thread of torch's still spinning on the other CPU, while this thread's CPU went idle, and
    it waited for the scheduler's next tick: the quiet took 3-4 ms in a fifth to two thirds of the calls right after
    torch's parallel operations (perf sched: the new thread's scheduling delay 1.5-3.3 ms, its CPU's tick 4 ms). So
    the calling thread is held to its own CPU while the operation runs (``PIN_QUIET``): the new thread starts there,
    and runs as soon as this thread waits for it. After the operation this thread's mask is put back, and every
    thread it started gets that mask too (``_unpin``). 2 cores, torch on 2 threads, 300 quiets right after a
    ``torch.mm`` and 300 after an LSTM step (``python bench/quiet_stalls.py``): 2 over 1 ms against 191, mean
    0.09-0.13 ms against 0.56-1.33."""
    global _WAKE
    if _WAKE is None:
        with torch.inference_mode(False):     # a normal tensor even when first made under inference_mode
            _WAKE = torch.empty((_CPUS + 1) * _GRAIN, dtype=torch.uint8)
    count = torch.get_num_threads()
    pinned = _pin_to_this_cpu() if PIN_QUIET else None
    torch.set_num_threads(_CPUS + 1)
    try:
        _WAKE.fill_(0)
    finally:
        torch.set_num_threads(count)
        if pinned is not None:
            _unpin(*pinned)
    if hasattr(os, "sched_yield"):
        # The pool's threads reach their sleep only once they run again: while this thread keeps its CPU, they
        # are still counted running (``runtime.overlap._idle_core``, from /proc/loadavg) for hundreds of
        # microseconds, and the call that quieted them found no CPU free for its helper (a batch of one's pair,
        # ``runtime.pair``, the products beside a sweep). Yielding lets them park: after torch.nn.LSTM's float32
        # training step (n=512, B=1, 2 cores, KVM) the count read 2-3 in 8 of 10 tries after one yield, 1 in 10
        # of 10 after two (20-25 us; ad hoc).
        for _ in range(2):
            os.sched_yield()


def _plain_call_quiet():
    """For fastrnn calls outside fastrnn.torch's operators (``runtime.dispatch._quiet_plain``):
    ``_quiet_torch`` where torch's threads spin after its operations and hold the cores a parallel
    call would use (GNU OpenMP, torch on every CPU, libgomp's default wait policy), and where no CPU is
    left (``_cpu_left``), else None."""
    if not (_SPINNING and _GOMP and torch.get_num_threads() >= _CPUS) or _cpu_left():
        return None
    return _quiet_torch


def _cpu_left():
    """Whether a CPU is left beside the calling thread and every thread ready to run (/proc/loadavg's count,
    ``runtime.overlap._runnable``; False where it cannot be read): then torch's pool is not spinning, and putting
    it to sleep would only wake it, some 0.1 ms a call (a float64 B=1 call at n = 128, T = 1000, beside JAX's, in
    a process that had imported torch without using it: 2.41-2.52 ms against 2.34-2.36 without torch imported,
    ``bench/bptt_jax.py``; with the check 2.27-2.37)."""
    count = _overlap._runnable()
    return count is not None and count < _overlap._cpus()


def _beside_torch():
    """fastrnn's threads inside a torch operator: torch's intra-op count. While torch's threads spin,
    a call long enough to pay on parallel threads first puts them to sleep where that helps (GNU
    OpenMP, torch on every CPU: ``_quiet_torch``); else long calls only, and the products over all
    T·B rows (weight gradients, dL/dx) on torch's pool (``runtime.dispatch.borrowed_gemm``)."""
    count = torch.get_num_threads()
    quiet = _quiet_torch if _GOMP and count >= _CPUS else None
    return beside(count, spinning=_SPINNING, gemm=_torch_gemm, quiet=quiet)


def beside_torch():
    """Run the enclosed fastrnn calls as fastrnn.torch's own operators run theirs: for fastrnn called
    from torch code (a ``torch.autograd.Function`` around ``fastrnn.vjp``, a training loop that mixes
    torch operations with ``fastrnn.bptt``).

    Inside the block fastrnn uses at most ``torch.get_num_threads()`` threads, with every BLAS on one.
    torch's threads spin for a while after each of its operations (8.5 ms measured), and a parallel
    call would share the cores with them: where torch runs GNU OpenMP on every CPU (its Linux wheels),
    a call of ``runtime.dispatch.QUIET_MIN_WORK`` multiply-adds or more that pays on parallel threads
    first puts them to sleep, then runs with fastrnn's usual thresholds; shorter calls run on one
    thread, and their products over all T·B rows on torch's threads. Outside the block a plain call
    of that size puts torch's spinning threads to sleep too (``runtime.dispatch._quiet_plain``), but
    takes every thread fastrnn has and runs shorter calls parallel beside them. Results are those of
    the same calls outside the block (sums split over threads may round differently in the last bits).
    Per calling thread; the previous setting comes back on exit.

    Returns
    -------
    context manager
        Use it in a ``with`` statement; it yields nothing.

    Examples
    --------
    >>> import numpy as np, torch, fastrnn, fastrnn.torch
    >>> rng = np.random.default_rng(0)
    >>> net = fastrnn.RNN(rng.standard_normal((4, 2)), 0.5 * rng.standard_normal((4, 4)), np.zeros(4))
    >>> x = rng.standard_normal((6, 1, 2))                  # (T, B, m)
    >>> with fastrnn.torch.beside_torch():
    ...     inside = fastrnn.forward(net, x)
    >>> h, y = fastrnn.forward(net, x)
    >>> bool(np.array_equal(inside.h, h) and np.array_equal(inside.y, y))
    True
    """
    return _beside_torch()


def _torch_gemm(a, b, out):
    """out = a @ b (NumPy arrays, one dtype) by torch.mm on torch's threads, writing into ``out``'s
    memory; float32 only at torch's "highest" matmul precision (another setting lets torch compute a
    float32 product in lower precision), else, and for read-only inputs, NumPy's product (one thread
    here)."""
    if (a.dtype == np.float32 and torch.get_float32_matmul_precision() != "highest") or not (
            a.flags.writeable and b.flags.writeable):       # (torch.from_numpy warns on read-only arrays)
        np.matmul(a, b, out=out)
        return
    torch.mm(torch.from_numpy(a), torch.from_numpy(b), out=torch.from_numpy(out))


def _spec(kind, nonlinearity, bias, trunc_h, trunc_hp, n_weights):
    truncation = None if trunc_h == 0 else (trunc_h, trunc_hp)
    return _LayerSpec(kind, bias, nonlinearity, truncation, proj=n_weights == (5 if bias else 3))


@torch.library.custom_op("fastrnn::layer", mutates_args=())
def _layer(x: torch.Tensor, states0: list[torch.Tensor], weights: list[torch.Tensor], kind: str,
           nonlinearity: str, bias: bool, trunc_h: int, trunc_hp: int) -> list[torch.Tensor]:
    """[output (T, B, H), final state(s) (B, H)…, full state(s) (T + 1, B, H)…]."""
    layer = _spec(kind, nonlinearity, bias, trunc_h, trunc_hp, len(weights))
    net = layer.build([_numpy(w) for w in weights])
    h0 = tuple(_numpy(s) for s in states0)
    with _beside_torch():
        out = api.states_only(net, _numpy(x), h0 if len(h0) > 1 else h0[0])
    states = [getattr(out, name) for name in net.state_names]
    return ([torch.from_numpy(out.h[1:].copy())] + [torch.from_numpy(s[-1].copy()) for s in states]
            + [torch.from_numpy(s) for s in states])


def _state_sizes(weights, count):
    """The units of a layer's ``count`` states: h's (the projection's p for a projected LSTM), then
    an LSTM's c (its 4n gate rows / 4)."""
    return [weights[1].shape[1], weights[0].shape[0] // 4][:count]


@_layer.register_fake
def _(x, states0, weights, kind, nonlinearity, bias, trunc_h, trunc_hp):
    T, B = x.shape[0], x.shape[1]
    H = weights[1].shape[1]
    sizes = _state_sizes(weights, len(states0))
    return ([x.new_empty((T, B, H))] + [x.new_empty((B, size)) for size in sizes]
            + [x.new_empty((T + 1, B, size)) for size in sizes])


@torch.library.custom_op("fastrnn::layer_backward", mutates_args=())
def _layer_backward(x: torch.Tensor, states0: list[torch.Tensor], weights: list[torch.Tensor],
                    states: list[torch.Tensor], d_output: torch.Tensor, d_finals: list[torch.Tensor], kind: str,
                    nonlinearity: str, bias: bool, trunc_h: int, trunc_hp: int) -> list[torch.Tensor]:
    """[dx, d state0…, d weight…] by fastrnn.vjp on the saved forward pass."""
    layer = _spec(kind, nonlinearity, bias, trunc_h, trunc_hp, len(weights))
    net = layer.build([_numpy(w) for w in weights])
    h0 = tuple(_numpy(s) for s in states0)
    finals = [_numpy(g.contiguous()) for g in d_finals]
    extra = {"dc_T": finals[1]} if len(finals) > 1 else {}
    with _beside_torch():
        grads, dx, dstate0 = api.vjp(net, _numpy(x), _numpy(d_output.contiguous()), h0 if len(h0) > 1 else h0[0],
                                     dh_T=finals[0], states=tuple(_numpy(s) for s in states),
                                     truncation=layer.truncation, **extra)
    dstate0 = dstate0 if isinstance(dstate0, tuple) else (dstate0,)
    return ([torch.from_numpy(dx)] + [torch.from_numpy(d) for d in dstate0]
            + [torch.from_numpy(g) for g in layer.weight_grads(grads)])


@_layer_backward.register_fake
def _(x, states0, weights, states, d_output, d_finals, kind, nonlinearity, bias, trunc_h, trunc_hp):
    # the real operator returns fresh contiguous tensors whatever the inputs' strides
    return [x.new_empty(x.shape)] + [s.new_empty(s.shape) for s in states0] + [w.new_empty(w.shape) for w in weights]


def _setup_context(ctx, inputs, output):
    x, states0, weights, kind, nonlinearity, bias, trunc_h, trunc_hp = inputs
    count = len(states0)
    ctx.options = (kind, nonlinearity, bias, trunc_h, trunc_hp)
    ctx.counts = (count, len(weights))
    ctx.save_for_backward(x, *states0, *weights, *output[1 + count:])


def _layer_grad(ctx, grads):
    count, n_weights = ctx.counts
    saved = ctx.saved_tensors
    x, states0 = saved[0], list(saved[1:1 + count])
    weights = list(saved[1 + count:1 + count + n_weights])
    states = list(saved[1 + count + n_weights:])
    d_output = grads[0] if grads[0] is not None else torch.zeros_like(states[0][1:])
    d_finals = [g if g is not None else torch.zeros_like(s[-1]) for g, s in zip(grads[1:1 + count], states)]
    out = _layer_backward(x, states0, weights, states, d_output, d_finals, *ctx.options)
    return out[0], list(out[1:1 + count]), list(out[1 + count:]), None, None, None, None, None


_layer.register_autograd(_layer_grad, setup_context=_setup_context)


def _no_double_backward(ctx, grads):
    raise RuntimeError(_DOUBLE_BACKWARD)


def _setup_nothing(ctx, inputs, output):
    pass


_layer_backward.register_autograd(_no_double_backward, setup_context=_setup_nothing)


class _LayerFunction(torch.autograd.Function):
    """The eager path of one layer in one direction: ``(output, *final states) = f(x, *initial
    states, *weights)``. It keeps fastrnn's forward result (with the gate values) for the backward
    pass, which the opaque operators cannot: measured 0.66 against 1.39 ms per step for an LSTM
    with n = 32, T = 100, B = 1. Backward is ``api.vjp_checked`` on the saved forward pass: what
    the forward call checked is not checked again. The forward pass's arrays are views of the
    tensors, so the tensors are also saved for backward: autograd then refuses, as it does for
    torch.nn, a backward pass after any of them was modified in place.

    The output is the forward pass's own memory (its states h_1..h_T), not a copy: the copy took
    0.13-0.15 ms of a float32 LSTM training step at n=128, B=32, T=100 (7.5-8 ms; the copy alone,
    outside the step, 0.03; ``bench/layer_copies.py``: the step 1.2-1.9 % faster without it). The
    output shares its version counter with a tensor kept here (``detach``: the same memory and
    counter, and no reference to the output, so no cycle through its graph node), so an in-place
    change of the output (``out.mul_(2)``, ``dropout(inplace=True)``) is seen in backward, which
    then runs the forward pass again for the states it needs: the gradients are those of the
    forward pass, as torch.nn's float64 layers give (its float32 LSTM refuses such a backward
    pass). Changes torch does not count (through ``.data`` or ``.numpy()``) are not seen.
    """

    @staticmethod
    def forward(ctx, layer, slot, count, x, *tensors):
        with _beside_torch():
            fwd = _LayerFunction._pass(layer, slot, count, x, tensors)
        ctx.save_for_backward(x, *tensors)
        ctx.set_materialize_grads(False)    # an unused output's gradient arrives as None, not a tensor of zeros
        ctx.layer, ctx.slot, ctx.fwd, ctx.count = layer, slot, fwd, count
        output, finals = _outputs(fwd.run.states)
        ctx.states = output         # (under inference_mode no backward pass follows, and tensors keep no version)
        ctx.version = None if torch.is_inference_mode_enabled() else output._version
        return (output.detach(),) + finals

    @staticmethod
    def _pass(layer, slot, count, x, tensors):
        """The checked forward pass over x from the ``count`` initial states that lead ``tensors`` (0: zero
        states, the module got no hx), then the layer's weights."""
        h0 = tuple(_numpy(s) for s in tensors[:count]) if count else None
        return api.Checked(layer.net_for(tensors[count:], slot), _numpy(x), h0 if count != 1 else h0[0])

    @staticmethod
    def backward(ctx, d_output, *d_finals):
        if not torch.is_grad_enabled():         # the usual backward pass (no create_graph)
            with _beside_torch():
                return _LayerFunction._backward(ctx, d_output, *d_finals)
        with torch.no_grad(), _beside_torch():
            grads = _LayerFunction._backward(ctx, d_output, *d_finals)
        # create_graph=True: the gradients are plain values to fastrnn; differentiating them again
        # must fail loudly, never silently give zero (as torch's own once_differentiable does).
        tensors = [g for g in grads if isinstance(g, torch.Tensor)]
        err = _torch_functions.DelayedError(_DOUBLE_BACKWARD.encode(), len(tensors))
        flagged = iter(err(*[g.detach().requires_grad_(True) for g in tensors]))
        return tuple(next(flagged) if isinstance(g, torch.Tensor) else g for g in grads)

    @staticmethod
    def _backward(ctx, d_output, *d_finals):
        saved = ctx.saved_tensors   # raises if x, a state or a weight was modified in place since forward
        layer = ctx.layer
        if ctx.states._version != ctx.version:      # the output, the forward pass's states, changed in place
            ctx.fwd = _LayerFunction._pass(layer, ctx.slot, ctx.count, saved[0], saved[1:])
            ctx.version = ctx.states._version       # (a second backward pass, retain_graph=True: not again)
        finals = [None if g is None else _numpy(g.contiguous())[0] for g in d_finals]
        extra = {"dc_T": finals[1]} if len(finals) > 1 else {}
        wanted = ctx.needs_input_grad     # (layer, slot, count, x, *initial states, *weights)
        want_dx = wanted[3]
        dh = np.zeros_like(ctx.fwd.run.states[0][1:]) if d_output is None else _numpy(d_output.contiguous())
        grads, dx, dstate0 = api.vjp_checked(ctx.fwd, dh, dh_T=finals[0],
                                             truncation=layer.truncation, input_grad=want_dx, **extra)
        dstate0 = dstate0 if isinstance(dstate0, tuple) else (dstate0,)
        count = ctx.count
        weight_grads = layer.weight_grads(grads)
        return ((None, None, None, torch.from_numpy(dx) if want_dx else None)
                + tuple(torch.from_numpy(d) for d in dstate0[:count])
                + tuple(torch.from_numpy(g) if want else None for g, want in zip(weight_grads, wanted[4 + count:])))


def _outputs(run_states):
    """(output, final states) of one layer from its forward pass's states (T + 1, B, size) each, h first: the output
    the states h_1..h_T themselves (the forward pass's memory), each final state (1, B, H) as the module returns it
    for one layer, a copy of its last row (no autograd view to add)."""
    return (torch.from_numpy(run_states[0][1:]), tuple(torch.from_numpy(s[-1:].copy()) for s in run_states))


def _forward_only(spec, slot, count, x, tensors):
    """``_LayerFunction``'s outputs where no backward pass can follow (grad mode off): the same checked forward
    pass and the same tensors, without the autograd Function's bookkeeping (8-10 us of a 70 us call that
    generates one step at a time, LSTM n=32, B=1, ad hoc)."""
    with _beside_torch():
        output, finals = _outputs(_LayerFunction._pass(spec, slot, count, x, tensors).run.states)
    return (output,) + finals


def _run_layer(spec, slot, x, states0, weights):
    """(output, *final states, each (1, B, H)) of one layer in one direction (``slot``: its row in h_0): the autograd
    Function in eager mode, the registered operators under torch.compile (which cannot trace into
    Python and NumPy). ``states0`` None: zero initial states, which the eager path leaves to fastrnn."""
    if x.shape[1] == 0:
        return _empty_batch(spec, x, states0, weights)
    if not torch.compiler.is_compiling():
        if _PEEK_TRANSFORMS is not None and _PEEK_TRANSFORMS() is not None:
            raise OptionError(_FUNC_TRANSFORMS)
        count = 0 if states0 is None else len(states0)
        tensors = tuple(weights) if states0 is None else (*states0, *weights)
        if not torch.is_grad_enabled():     # no_grad, inference_mode: no graph to record, no Function to build
            return _forward_only(spec, slot, count, x, tensors)
        return _LayerFunction.apply(spec, slot, count, x, *tensors)
    if states0 is None:
        states0 = [x.new_zeros((x.shape[1], size)) for size in _state_sizes(weights, spec.n_states)]
    trunc = spec.truncation
    if trunc is None:
        trunc_h = trunc_hp = 0
    elif isinstance(trunc, tuple):
        trunc_h, trunc_hp = trunc
    else:
        trunc_h = trunc_hp = trunc
    out = _layer(x, list(states0), list(weights), spec.kind, spec.nonlinearity, spec.bias, int(trunc_h), int(trunc_hp))
    return [out[0]] + [f.unsqueeze(0) for f in out[1:1 + len(states0)]]


def _empty_batch(spec, x, states0, weights):
    """What torch.nn's layers give for a batch of no sequences: an output and final states with no rows, and
    gradients of zero for the weights (of no rows for x and the initial states). fastrnn's calls take no empty
    batch; these come from torch's own operations, with every input kept in the graph by a term of zero."""
    link = sum(t.sum() for t in [x, *(states0 or ()), *weights]) * 0
    out = x.new_zeros((x.shape[0], 0, weights[1].shape[1])) + link
    return [out] + [x.new_zeros((1, 0, size)) + link for size in _state_sizes(weights, spec.n_states)]


_NO_TORCHSCRIPT = ("fastrnn.torch layers cannot be captured by {how}: they run Python and NumPy. "
                   "torch.export.export(model, args) and torch.compile capture them (as the operators fastrnn::layer "
                   "and fastrnn::layer_backward); for TorchScript or ONNX, load the state_dict into torch.nn's module "
                   "(the names and layouts are the same)")


# Inside a torch.func transform (grad, vmap, jacrev, ...): the layer's autograd Function hands NumPy arrays to
# fastrnn, which those transforms' wrapped tensors do not have (torch.nn's LSTM does not run under vmap either).
_PEEK_TRANSFORMS = getattr(getattr(torch._C, "_functorch", None), "peek_interpreter_stack", None)
_FUNC_TRANSFORMS = ("fastrnn.torch layers do not run inside torch.func transforms (grad, vmap, jacrev, "
                    "functional_call under grad, ...): take gradients with loss.backward() or torch.autograd.grad "
                    "(torch.func.functional_call alone works), or use torch.nn's module under torch.func")


class _LayerSpec:
    """How one layer's weight tensors (weight_ih, weight_hh[, bias_ih, bias_hh]) become a fastrnn
    network, and its gradients go back in the same order."""

    def __init__(self, kind, bias, nonlinearity, truncation, proj=False):
        self.kind, self.bias, self.nonlinearity, self.truncation = kind, bias, nonlinearity, truncation
        self.proj = proj
        self.model = models.LSTMP if proj else models.MODELS[kind.lower()]
        self.n_states = len(self.model.state_names)
        self._nets = {}

    def __getstate__(self):             # copies and pickles of a module do not carry the networks
        state = dict(self.__dict__)
        state["_nets"] = {}
        return state

    def net_for(self, weights, slot):
        """The network over the memory of these weight tensors, built once per set of tensors: an
        optimizer's step changes their values in place, which the network's views see (and every
        call checks), while other tensors, shapes or strides build anew. Building took 40 us of a
        fastrnn.torch.LSTM step of about 1 ms at n=32, B=1, T=100 (``bench/overhead.py``). One
        network is kept per ``slot`` (layer and direction): it keeps its tensors' memory alive, so
        tensors that replace the weights (``torch.func.functional_call``) hold the last set only,
        until the next call. The simple cell's one bias is the sum of torch's two, taken again at
        every call."""
        key = tuple((w.data_ptr(), w.shape, w.stride(), w.dtype) for w in weights)
        kept = self._nets.get(slot)
        if kept is None or kept[0] != key:
            net = self.build([_numpy(w) for w in weights])
            self._nets[slot] = (key, net)
            return net
        net = kept[1]
        if self.model is models.RNN and self.bias:
            net = copy.copy(net)
            net.b = _numpy(weights[2]) + _numpy(weights[3])
        return net

    def build(self, weights):
        w_ih, w_hh = weights[0], weights[1]
        rows = w_hh.shape[0]
        b_ih, b_hh = (weights[2], weights[3]) if self.bias else (np.zeros(rows, w_hh.dtype),) * 2
        if self.model is models.RNN:            # one bias: torch's two enter as a sum
            return models.RNN._over(w_ih, w_hh, b_ih + b_hh, activation=self.nonlinearity, readout="units")
        if self.proj:                           # weight_hr comes last, after the biases
            return models.LSTMP._over(w_ih, w_hh, b_ih, b_hh, weights[-1], readout="units")
        return self.model._over(w_ih, w_hh, b_ih, b_hh, readout="units")

    def weight_grads(self, grads):
        """Gradients in the order of the layer's weight tensors."""
        names = ("W_in", "W_rec", "b", "b") if self.model is models.RNN else ("W_ih", "W_hh", "b_ih", "b_hh")
        names = names[:4 if self.bias else 2] + (("W_hr",) if self.proj else ())
        return [grads[k].copy() if k == "b" else grads[k] for k in names]


class _Recurrent(torch.nn.Module):
    """What fastrnn.torch.RNN and LSTM share: torch.nn.RNNBase's arguments and parameters."""

    _kind = ""
    _gates = 1

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, nonlinearity="tanh", device=None, dtype=None, truncation=None):
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise OptionError(f"{name} must be an integer >= 1, got {value!r}")
        if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0 <= dropout <= 1:
            raise OptionError(f"dropout must be a number in [0, 1], got {dropout!r}")
        if isinstance(proj_size, bool) or not isinstance(proj_size, int) or proj_size < 0:
            raise OptionError(f"proj_size must be an integer >= 0, got {proj_size!r}")
        if proj_size and self._kind != "LSTM":
            raise OptionError(f"proj_size={proj_size}: only LSTM has a projection (as in torch.nn.{self._kind})")
        if proj_size >= hidden_size:
            raise OptionError(f"proj_size={proj_size} must be smaller than hidden_size={hidden_size}")
        if device is not None and torch.device(device).type != "cpu":
            raise OptionError(f"device={device!r}: fastrnn runs on the CPU: use device='cpu' (or leave it out)")
        dtype = torch.get_default_dtype() if dtype is None else dtype
        if dtype not in _DTYPES:
            raise DTypeError(f"dtype={dtype}: fastrnn computes in torch.float32 or torch.float64")
        if truncation is not None and (isinstance(truncation, bool) or not isinstance(truncation, (int, tuple))):
            raise OptionError(f"truncation must be None, an int k or a pair (h, h_prime), got {truncation!r}")
        # torch.nn's names: "LSTM", "GRU", and the simple cell's "RNN_TANH" or "RNN_RELU"
        self.mode = f"RNN_{nonlinearity.upper()}" if self._kind == "RNN" else self._kind
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bool(bias), bool(batch_first), float(dropout)
        self.bidirectional, self.proj_size, self.nonlinearity = bool(bidirectional), proj_size, nonlinearity
        self.truncation = truncation
        self._spec = _LayerSpec(self._kind, self.bias, nonlinearity, truncation, proj=proj_size > 0)
        directions = 2 if bidirectional else 1
        rows = self._gates * hidden_size
        out_size = proj_size or hidden_size             # the units of h (torch's real_hidden_size)
        self._flat_weights_names = []
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else out_size * directions
            for direction in range(directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                shapes = [("weight_ih", (rows, layer_input)), ("weight_hh", (rows, out_size))]
                if self.bias:
                    shapes += [("bias_ih", (rows,)), ("bias_hh", (rows,))]
                if proj_size:
                    shapes += [("weight_hr", (proj_size, hidden_size))]
                for name, shape in shapes:
                    self.register_parameter(name + suffix, torch.nn.Parameter(torch.empty(shape, dtype=dtype)))
                    self._flat_weights_names.append(name + suffix)
        self.reset_parameters()

    def reset_parameters(self):
        """torch.nn.RNNBase's initialisation: every parameter ~ U(-1/sqrt(H), 1/sqrt(H)), drawn in
        the same order, so ``torch.manual_seed`` gives the weights torch's module would have."""
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            torch.nn.init.uniform_(weight, -stdv, stdv)

    def flatten_parameters(self):
        """A no-op (the parameters are used as they are); kept for torch.nn.RNNBase's callers."""

    @property
    def all_weights(self):
        return [[getattr(self, name) for name in self._layer_weight_names(suffix)] for suffix in self._suffixes()]

    @property
    def _flat_weights(self):
        """The weight tensors in ``_flat_weights_names``' order (None for one that is missing), the list
        torch.nn.RNNBase keeps: read from the module's attributes at every access, so always current."""
        return [getattr(self, name, None) for name in self._flat_weights_names]

    @_flat_weights.setter
    def _flat_weights(self, weights):
        # Recipes that set a layer's weights as attributes assign the list anew to keep torch's copy current: that
        # list is what the module holds already. Another list would be weights torch.nn would compute with and
        # this module would not: refused.
        current = self._flat_weights
        if len(weights) != len(current) or any(w is not c for w, c in zip(weights, current)):
            raise OptionError("fastrnn.torch reads a layer's weights from the module's attributes at every call: "
                              "set them there (module.weight_hh_l0 = ...) instead of assigning _flat_weights")

    # -- torch.nn.RNNBase's argument checks, for code that calls them on a module ---------------------
    def check_input(self, input, batch_sizes):
        """Raise if ``input`` (3-d, or 2-d packed data where ``batch_sizes`` is given) does not fit the module:
        its number of dimensions, its last axis (input_size) and, outside autocast, its dtype."""
        want = 2 if batch_sizes is not None else 3
        if input.dim() != want:
            raise ShapeError(f"input must have {want} dimensions, got {input.dim()} (shape {tuple(input.shape)})")
        self._check_features(input)
        if not torch.is_autocast_enabled("cpu"):
            self._check_same_dtype(input, self.weight_ih_l0.dtype)

    def get_expected_hidden_size(self, input, batch_sizes):
        """(num_layers · num_directions, B, H_out): the shape of h_0 for ``input`` (B from ``batch_sizes[0]`` for
        packed data), H_out = proj_size or hidden_size."""
        return self._expected_state_size(input, batch_sizes, self.proj_size or self.hidden_size)

    def _expected_state_size(self, input, batch_sizes, size):
        if batch_sizes is not None:
            batch = int(batch_sizes[0])
        else:
            batch = input.shape[0] if self.batch_first else input.shape[1]
        return (self.num_layers * (2 if self.bidirectional else 1), batch, size)

    def check_hidden_size(self, hx, expected_hidden_size, msg="Expected hidden size {}, got {}"):
        """Raise ShapeError (``msg`` formatted with the expected and the actual size) unless hx has the expected
        shape."""
        if tuple(hx.shape) != tuple(expected_hidden_size):
            raise ShapeError(msg.format(tuple(expected_hidden_size), list(hx.shape)))

    def check_forward_args(self, input, hidden, batch_sizes):
        """``check_input``, then h_0's shape (for the LSTM, c_0's too: ``LSTM.check_forward_args``)."""
        self.check_input(input, batch_sizes)
        self.check_hidden_size(hidden, self.get_expected_hidden_size(input, batch_sizes))

    def permute_hidden(self, hx, permutation):
        """hx with its batch axis (1) reordered by ``permutation`` (None: hx as it is), as a PackedSequence's
        sorted order needs."""
        return hx if permutation is None else hx.index_select(1, permutation)

    def _suffixes(self):
        directions = 2 if self.bidirectional else 1
        return [f"_l{layer}" + ("_reverse" if d else "") for layer in range(self.num_layers) for d in range(directions)]

    def extra_repr(self):
        """torch.nn.RNNBase's text (which leaves out nonlinearity), plus truncation if set."""
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        if self.truncation is not None:
            s += f", truncation={self.truncation!r}"
        return s

    # -- forward ---------------------------------------------------------------------------------
    def _check_input(self, input):
        if not isinstance(input, torch.Tensor):
            raise DTypeError(f"input must be a torch.Tensor, got {type(input).__name__}")
        if not input.is_cpu:            # (is_cpu: a flag; .device builds an object, 1 us a call)
            raise OptionError(f"input is on {input.device}: fastrnn runs on the CPU: call .cpu() on the "
                              "input (and the module)")
        weight = self.weight_ih_l0
        if not weight.is_cpu:
            raise OptionError("the module's parameters are not on the CPU: fastrnn runs on the CPU: call .cpu()")
        if weight.dtype not in _DTYPES:
            raise DTypeError(f"the parameters have dtype {weight.dtype}: fastrnn computes in float32 or "
                             "float64: call .float() or .double() on the module")
        if input.dtype not in _DTYPES:
            raise DTypeError(f"input has dtype {input.dtype}: fastrnn computes in float32 or float64: call "
                             f".to({weight.dtype}) on the input (inside torch.autocast the layer takes a "
                             "bfloat16 or float16 input in its parameters' dtype itself)")
        self._check_same_dtype(input, weight.dtype)
        if input.dim() not in (2, 3):
            raise ShapeError(f"input has shape {tuple(input.shape)} ({input.dim()}-d) but must be "
                             f"{'(B, T, m)' if self.batch_first else '(T, B, m)'} or unbatched (T, m)")
        steps = input.shape[1] if self.batch_first and input.dim() == 3 else input.shape[0]
        if steps == 0:
            raise ShapeError(f"input has shape {tuple(input.shape)}: no time steps (T = 0); a sequence needs at "
                             "least one step (torch.nn refuses it too)")
        self._check_features(input)

    def _check_features(self, input):
        if input.shape[-1] != self.input_size:
            raise ShapeError(f"input has {input.shape[-1]} features in its last axis but the module has "
                             f"input_size={self.input_size}")

    @staticmethod
    def _check_same_dtype(input, dtype):
        if input.dtype != dtype:
            raise DTypeError(f"input has dtype {input.dtype} but the parameters are {dtype}: "
                             f"call .to({dtype}) on the input or .to({input.dtype}) on the module")

    def _initial(self, hx, batch, unbatched, dtype):
        """One (L·D, B, H) tensor per state (h: H_out = proj_size or hidden_size); None where hx is
        None (zero states, which each layer's fastrnn call starts from without tensors)."""
        if hx is None:
            return None
        count = self._spec.n_states
        rows = self.num_layers * (2 if self.bidirectional else 1)
        sizes = [self.proj_size or self.hidden_size, self.hidden_size][:count]
        parts = list(hx) if count > 1 else [hx]
        if count > 1 and (not isinstance(hx, (tuple, list)) or len(hx) != count):
            raise OptionError("hx for an LSTM is None or a pair (h_0, c_0)")
        out = []
        for name, t, size in zip(("h_0", "c_0"), parts, sizes):
            want = (rows, size) if unbatched else (rows, batch, size)
            if not isinstance(t, torch.Tensor):
                raise DTypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
            if not t.is_cpu:
                raise OptionError(f"{name} is on {t.device}: fastrnn runs on the CPU: call .cpu()")
            if t.dtype != dtype:
                raise DTypeError(f"{name} has dtype {t.dtype} but the input is {dtype}")
            if tuple(t.shape) != want:
                raise ShapeError(f"{name} has shape {tuple(t.shape)} but must be (num_layers·num_directions, "
                                 f"{'' if unbatched else 'B, '}{'H_out' if name == 'h_0' else 'H_cell'}) = {want}")
            out.append(t.unsqueeze(1) if unbatched else t)
        return out

    def _autocast(self, input, hx):
        """(input, hx) with, inside ``torch.autocast`` on the CPU, each bfloat16 or float16 tensor (what the autocast
        layers before this one hand on) in the parameters' dtype: fastrnn has no kernels in those dtypes, so the
        layer runs as one of autocast's float32 operations, in its parameters' precision, and hands on its output
        in that dtype (torch.nn's layers would run in bfloat16). Anything else, and every tensor outside autocast,
        as given (``_check_input`` then names what is wrong)."""
        if not torch.is_autocast_enabled("cpu") or self.weight_ih_l0.dtype not in _DTYPES:
            return input, hx

        def cast(t):
            return t.to(self.weight_ih_l0.dtype) if isinstance(t, torch.Tensor) and t.dtype in _AUTOCAST_DTYPES else t
        return cast(input), (type(hx)(cast(t) for t in hx) if isinstance(hx, (tuple, list)) else cast(hx))

    def __prepare_scriptable__(self):
        """``torch.jit.script`` asks a module for its scriptable form first: there is none (the layers run Python and
        NumPy), so it gets an error that names the ways that work."""
        raise OptionError(_NO_TORCHSCRIPT.format(how="torch.jit.script"))

    def forward(self, input, hx=None):
        if torch.jit.is_tracing():
            raise OptionError(_NO_TORCHSCRIPT.format(how="torch.jit.trace (and torch.onnx.export's TorchScript path)"))
        if isinstance(input, torch.nn.utils.rnn.PackedSequence):
            return self._forward_packed(input, hx)
        input, hx = self._autocast(input, hx)
        self._check_input(input)
        unbatched = input.dim() == 2
        x = input.unsqueeze(1) if unbatched else (input.transpose(0, 1) if self.batch_first else input)
        states0 = self._initial(hx, x.shape[1], unbatched, x.dtype)
        output, finals = self._layers(x, states0)
        if unbatched:
            output = output.squeeze(1)
            finals = [f.squeeze(1) for f in finals]
        elif self.batch_first:
            output = output.transpose(0, 1)
        return output, (finals[0] if len(finals) == 1 else tuple(finals))

    def _forward_packed(self, packed, hx):
        """A PackedSequence: every sequence runs for its own length only (sequences of equal length
        share one call per layer and direction), so no padding passes through the recurrence, h_n
        is the state at each sequence's last real step, and padded steps get no gradient."""
        pack = torch.nn.utils.rnn
        padded, lengths = pack.pad_packed_sequence(packed)          # (T, B, m), original batch order
        padded, hx = self._autocast(padded, hx)
        self._check_input(padded)
        B = padded.shape[1]
        states0 = self._initial(hx, B, False, padded.dtype)
        pieces, order = [], []
        finals_parts = [[] for _ in range(self._spec.n_states)]
        for L in sorted(set(lengths.tolist()), reverse=True):
            idx = torch.nonzero(lengths == L).flatten()
            out, finals = self._layers(padded[:L, idx], None if states0 is None else [s[:, idx] for s in states0])
            pieces.append(torch.nn.functional.pad(out, (0, 0, 0, 0, 0, padded.shape[0] - L)))
            order.append(idx)
            for k, f in enumerate(finals):
                finals_parts[k].append(f)
        inverse = torch.argsort(torch.cat(order))
        output = torch.cat(pieces, dim=1)[:, inverse]
        finals = [torch.cat(parts, dim=1)[:, inverse] for parts in finals_parts]
        out_packed = pack.pack_padded_sequence(output, lengths, enforce_sorted=packed.sorted_indices is None)
        return out_packed, (finals[0] if len(finals) == 1 else tuple(finals))

    def _layers(self, x, states0):
        """The stacked layers and directions over time-major x (T, B, m) from ``states0`` (None: zeros):
        (output, final states)."""
        directions = 2 if self.bidirectional else 1
        finals = [[] for _ in range(self._spec.n_states)]
        layer_input = x
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(directions):
                row = layer * directions + direction
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                weights = self._weights(suffix)
                seq = layer_input.flip(0) if direction else layer_input
                given = None if states0 is None else [s[row] for s in states0]
                result = _run_layer(self._spec, row, seq, given, weights)
                out = result[0].flip(0) if direction else result[0]
                outputs.append(out)
                for k, final in enumerate(result[1:]):
                    finals[k].append(final)
            layer_output = outputs[0] if directions == 1 else torch.cat(outputs, dim=2)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_output = torch.nn.functional.dropout(layer_output, p=self.dropout, training=True)
            layer_input = layer_output
        return layer_input, [f[0] if len(f) == 1 else torch.cat(f, dim=0) for f in finals]

    def _weights(self, suffix):
        """One layer's weight tensors in torch's order: from the module's parameters where they are there (0.3 us
        against 2 through ``getattr``), else as ``getattr`` finds them (a parametrization, or a tensor that replaced
        a parameter, as weight-drop recipes do)."""
        params = self._parameters
        out = []
        for name in self._layer_weight_names(suffix):
            w = params.get(name)
            out.append(getattr(self, name) if w is None else w)
        return out

    def _layer_weight_names(self, suffix):
        """The names of one layer's weights in torch's order (``_flat_weights_names`` ending with
        ``suffix``), looked up once per module."""
        names = self.__dict__.setdefault("_names_by_suffix", {})
        if suffix not in names:
            names[suffix] = [name for name in self._flat_weights_names if name.endswith(suffix)]
        return names[suffix]


class RNN(_Recurrent):
    """Drop-in for ``torch.nn.RNN`` (``nonlinearity`` "tanh" or "relu"), computed by fastrnn.

    ``output, h_n = rnn(input, h_0)`` with torch's shapes; parameters ``weight_ih_l{k}``,
    ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}`` (``_reverse`` for the second direction).
    ``truncation=k`` (or ``(h, h_prime)``) makes the backward pass BPTT(k; k) (or BPTT(h; h')).

    {constructor}

    Examples
    --------
    >>> import torch, fastrnn.torch
    >>> rnn = fastrnn.torch.RNN(input_size=3, hidden_size=4, nonlinearity="relu", dtype=torch.float64)
    >>> output, h_n = rnn(torch.randn(5, 2, 3, dtype=torch.float64))
    >>> tuple(output.shape), tuple(h_n.shape)
    ((5, 2, 4), (1, 2, 4))
    >>> sorted(rnn.state_dict())
    ['bias_hh_l0', 'bias_ih_l0', 'weight_hh_l0', 'weight_ih_l0']
    """

    _kind = "RNN"
    _gates = 1

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device=None, dtype=None, *, truncation=None):
        if nonlinearity not in ("tanh", "relu"):
            raise OptionError(f"nonlinearity={nonlinearity!r} is not known: choose 'tanh' or 'relu' "
                              "(torch.nn.RNN's choices; fastrnn.RNN also has 'logistic' and 'identity')")
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         nonlinearity=nonlinearity, device=device, dtype=dtype, truncation=truncation)


class LSTM(_Recurrent):
    """Drop-in for ``torch.nn.LSTM`` (gate order i, f, g, o), computed by fastrnn.

    ``output, (h_n, c_n) = lstm(input, (h_0, c_0))`` with torch's shapes and parameter names.
    ``truncation=k`` (or ``(h, h_prime)``) makes the backward pass BPTT(k; k) (or BPTT(h; h')).

    {constructor}

    Examples
    --------
    >>> import torch, fastrnn.torch
    >>> lstm = fastrnn.torch.LSTM(input_size=3, hidden_size=4, num_layers=2, batch_first=True)
    >>> output, (h_n, c_n) = lstm(torch.randn(2, 5, 3))
    >>> tuple(output.shape), tuple(h_n.shape)
    ((2, 5, 4), (2, 2, 4))
    >>> output.sum().backward()
    >>> tuple(lstm.weight_hh_l1.grad.shape)
    (16, 4)
    """

    _kind = "LSTM"
    _gates = 4

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None, *, truncation=None):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size=proj_size, device=device, dtype=dtype, truncation=truncation)

    def get_expected_cell_size(self, input, batch_sizes):
        """(num_layers · num_directions, B, hidden_size): the shape of c_0 for ``input``."""
        return self._expected_state_size(input, batch_sizes, self.hidden_size)

    def check_forward_args(self, input, hidden, batch_sizes):
        """``check_input``, then the shapes of h_0 and c_0 (``hidden`` the pair)."""
        self.check_input(input, batch_sizes)
        self.check_hidden_size(hidden[0], self.get_expected_hidden_size(input, batch_sizes),
                               "Expected hidden[0] size {}, got {}")
        self.check_hidden_size(hidden[1], self.get_expected_cell_size(input, batch_sizes),
                               "Expected hidden[1] size {}, got {}")

    def permute_hidden(self, hx, permutation):
        """(h, c) with the batch axis of each reordered by ``permutation`` (None: as they are)."""
        if permutation is None:
            return hx
        return hx[0].index_select(1, permutation), hx[1].index_select(1, permutation)


class GRU(_Recurrent):
    """Drop-in for ``torch.nn.GRU`` (gate order r, z, n), computed by fastrnn.

    ``output, h_n = gru(input, h_0)`` with torch's shapes and parameter names.
    ``truncation=k`` (or ``(h, h_prime)``) makes the backward pass BPTT(k; k) (or BPTT(h; h')).

    {constructor}

    Examples
    --------
    >>> import torch, fastrnn.torch
    >>> gru = fastrnn.torch.GRU(input_size=3, hidden_size=4, bidirectional=True)
    >>> output, h_n = gru(torch.randn(5, 2, 3))
    >>> tuple(output.shape), tuple(h_n.shape)          # two directions
    ((5, 2, 8), (2, 2, 4))
    >>> reference = torch.nn.GRU(3, 4, bidirectional=True)
    >>> _ = reference.load_state_dict(gru.state_dict())   # the same parameter names
    """

    _kind = "GRU"
    _gates = 3

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, device=None, dtype=None, *, truncation=None):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device=device, dtype=dtype, truncation=truncation)


# The constructor arguments, documented once for the three modules (their docstrings hold
# ``{constructor}``): torch.nn's names and meanings, with what each module adds or refuses.
_CONSTRUCTOR = """Parameters
    ----------
    input_size : int
        Features of the input, m.
    hidden_size : int
        Units of the state{state}.
    num_layers : int
        Stacked layers; layer k + 1 reads layer k's output.{nonlinearity}
    bias : bool
        With ``bias_ih_l{{k}}`` and ``bias_hh_l{{k}}``.
    batch_first : bool
        Input and output as (B, T, features) instead of (T, B, features).
    dropout : float
        Dropout on the outputs of every layer but the last, in training mode.
    bidirectional : bool
        A second direction per layer, reading the sequence backwards (``_reverse`` parameters).{proj}
    device : None or "cpu"
        fastrnn runs on the CPU only.
    dtype : torch.float32 or torch.float64, optional
        Of the parameters (torch's default dtype when None).
    truncation : None, int k or (h, h_prime)
        Keyword only: the backward pass as BPTT(k; k) or BPTT(h; h') instead of exact BPTT.

    Raises
    ------
    OptionError
        For an option outside torch's ranges{refused},
        a device other than the CPU, or a bad truncation.
    DTypeError
        For a dtype other than float32 and float64.
    ShapeError, DTypeError, OptionError
        When called: for an input or initial state of the wrong shape, dtype or device (the message
        names it)."""

fill(RNN, "{constructor}", _CONSTRUCTOR.format(
    state="", nonlinearity='\n    nonlinearity : {"tanh", "relu"}', proj="",
    refused=" (a nonlinearity other than 'tanh' or 'relu')"))
fill(LSTM, "{constructor}", _CONSTRUCTOR.format(
    state=" (and of the cell state c with a projection)", nonlinearity="",
    proj="\n    proj_size : int\n        0: none; p < hidden_size: h = W_hr (o ⊙ tanh c) has p units (``weight_hr_l{k}``).",
    refused=" (proj_size >= hidden_size)"))
fill(GRU, "{constructor}", _CONSTRUCTOR.format(state="", nonlinearity="", proj="", refused=""))
