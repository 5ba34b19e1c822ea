"""Small training pieces on plain arrays, with no global state: optimizers, clipping, and two
trainers (batch BPTT/truncated BPTT/RTRL, and online RTRL with an update every step).

Parameters are the dict ``net.params()`` (updated in place); gradients are the ``Gradients``
returned by ``fastrnn.bptt``/``rtrl``/``OnlineRTRL.step`` or a dict with the same names.
"""
import time
from dataclasses import dataclass, field

import numpy as np

from . import checks as v
from .api import OnlineRTRL, bptt, forward, rtrl
from .errors import OptionError
from .kernels import update

ALGORITHMS = ("bptt", "tbptt", "rtrl", "online-rtrl")


def _grad_dict(grads, params):
    get = grads.get if isinstance(grads, dict) else (lambda k: getattr(grads, k, None))
    out = {}
    for name in params:
        g = get(name)
        if g is None:
            raise OptionError(f"the gradients have no {name!r}, which the parameters have")
        out[name] = g
    return out


def _flat_pair(param, *others):
    """Flat views of ``param`` and the arrays beside it for the one-pass updates (``kernels.update``): all
    C-contiguous, writable where written, one float32/float64 dtype and one shape; else None (NumPy's way)."""
    if not (isinstance(param, np.ndarray) and param.dtype in (np.float32, np.float64) and param.flags.c_contiguous
            and param.flags.writeable):
        return None
    for a in others:
        if not (isinstance(a, np.ndarray) and a.dtype == param.dtype and a.shape == param.shape
                and a.flags.c_contiguous):
            return None
    return (param.reshape(-1),) + tuple(a.reshape(-1) for a in others)


def _scratch(kept, name, param, g):
    """The optimizer's array for one parameter's update where NumPy takes it (``_flat_pair`` said no), kept from
    step to step: the update is computed into it instead of into new arrays. A new array of a few MB is new
    pages, which the OS maps and zeroes at the first write: in the training-step table's float32 LSTM step
    (n=512, B=1), ``p -= lr * g`` on the 4 MiB dW_hh took 481 page faults right after torch.nn's step
    (``bench/results/2026-11-29-result-pages.md``)."""
    dtype = np.result_type(param, g)
    buf = kept.get(name)
    if buf is None or buf.shape != param.shape or buf.dtype != dtype:
        buf = kept[name] = np.empty(param.shape, dtype)
    return buf


class SGD:
    """p <- p - lr * v, v <- momentum * v + g (torch.optim.SGD's form; momentum 0: plain SGD).

    ``step(params, grads)`` updates the arrays of ``params`` (a dict, e.g. ``net.params()``) in place
    from a mapping of gradients with the same names.

    Parameters
    ----------
    lr : float
        Learning rate, > 0.
    momentum : float
        0 <= momentum < 1; 0 is plain SGD.

    Raises
    ------
    OptionError
        For lr <= 0 or a momentum outside [0, 1).

    Examples
    --------
    >>> import numpy as np
    >>> from fastrnn.train import SGD
    >>> params = {"w": np.array([1.0, 2.0])}
    >>> SGD(lr=0.5).step(params, {"w": np.array([1.0, 1.0])})
    >>> params["w"].tolist()
    [0.5, 1.5]
    """

    def __init__(self, lr=0.1, momentum=0.0):
        if lr <= 0 or not 0 <= momentum < 1:
            raise OptionError(f"SGD needs lr > 0 and 0 <= momentum < 1, got lr={lr}, momentum={momentum}")
        self.lr, self.momentum = lr, momentum
        self.velocity = {}
        self._scratch = {}

    def step(self, params, grads):
        for name, g in _grad_dict(grads, params).items():
            p = params[name]
            if self.momentum:
                vel = self.velocity.setdefault(name, np.zeros_like(p))
                flat = _flat_pair(p, vel, g)
                if flat is not None:        # one pass (``kernels.update``), NumPy's arithmetic bit for bit
                    lr, mu = p.dtype.type(self.lr), p.dtype.type(self.momentum)
                    update.momentum(flat[0], flat[1], flat[2], lr, mu)
                    continue
                vel *= self.momentum
                vel += g
                g = vel
            flat = _flat_pair(p, g)
            if flat is not None:
                update.sgd(flat[0], flat[1], p.dtype.type(self.lr))
                continue
            step = _scratch(self._scratch, name, p, g)
            np.multiply(g, self.lr, out=step)
            p -= step


class Adam:
    """Adam (Kingma & Ba 2015) with bias correction, as torch.optim.Adam:
    m <- b1 m + (1 - b1) g, v <- b2 v + (1 - b2) g², p <- p - lr m̂ / (sqrt(v̂) + eps).

    ``step(params, grads)`` updates the arrays of ``params`` in place, as :class:`SGD`.

    Parameters
    ----------
    lr : float
        Learning rate, > 0.
    beta1, beta2 : float
        Decay rates of the first and second moments, in [0, 1).
    eps : float
        Added to the denominator, > 0.

    Raises
    ------
    OptionError
        For a value outside those ranges.

    Examples
    --------
    >>> import numpy as np
    >>> from fastrnn.train import Adam
    >>> params = {"w": np.array([1.0])}
    >>> Adam(lr=0.1).step(params, {"w": np.array([3.0])})     # the first step moves by lr
    >>> round(float(params["w"][0]), 6)
    0.9
    """

    def __init__(self, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8):
        if lr <= 0 or not (0 <= beta1 < 1 and 0 <= beta2 < 1) or eps <= 0:
            raise OptionError(f"Adam needs lr > 0, 0 <= beta < 1, eps > 0; got lr={lr}, "
                              f"beta1={beta1}, beta2={beta2}, eps={eps}")
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.t = 0
        self.m, self.v = {}, {}
        self._scratch, self._scratch2 = {}, {}

    def step(self, params, grads):
        self.t += 1
        c1 = 1 - self.beta1 ** self.t
        c2 = 1 - self.beta2 ** self.t
        for name, g in _grad_dict(grads, params).items():
            m = self.m.setdefault(name, np.zeros_like(params[name]))
            v = self.v.setdefault(name, np.zeros_like(params[name]))
            flat = _flat_pair(params[name], m, v, g)
            if flat is not None:            # one pass (``kernels.update``), NumPy's arithmetic bit for bit
                t = params[name].dtype.type
                update.adam(*flat, t(self.lr), t(self.beta1), t(1 - self.beta1), t(self.beta2), t(1 - self.beta2),
                            t(c1), t(c2), t(self.eps))
                continue
            a = _scratch(self._scratch, name, params[name], g)
            b = _scratch(self._scratch2, name, params[name], g)
            m *= self.beta1
            np.multiply(g, 1 - self.beta1, out=a)        # the formula's operations in its order, into kept arrays:
            m += a                                       # lr * (m / c1) / (sqrt(v / c2) + eps), bit for bit
            v *= self.beta2
            np.multiply(g, 1 - self.beta2, out=a)
            a *= g
            v += a
            np.divide(m, c1, out=a)
            a *= self.lr
            np.divide(v, c2, out=b)
            np.sqrt(b, out=b)
            b += self.eps
            a /= b
            params[name] -= a


OPTIMIZERS = {"sgd": SGD, "momentum": lambda lr: SGD(lr, momentum=0.9), "adam": Adam}


def global_norm(grads):
    """sqrt of the sum of squares of every gradient array (None fields skipped).

    Parameters
    ----------
    grads : Gradients or dict of arrays

    Returns
    -------
    float

    Raises
    ------
    AttributeError
        For an argument without ``items()``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastrnn.train import global_norm
    >>> global_norm({"w": np.array([3.0]), "b": np.array([4.0]), "h0": None})
    5.0
    """
    items = grads.items() if isinstance(grads, dict) else grads.items()
    return float(np.sqrt(sum(float(np.sum(np.square(g))) for _, g in items if g is not None)))


def clip_by_global_norm(grads, max_norm):
    """Scale every gradient by min(1, max_norm / global_norm). The input is not modified.

    Parameters
    ----------
    grads : Gradients or dict of arrays
    max_norm : float
        The largest global norm let through, > 0.

    Returns
    -------
    clipped : dict of arrays
        New arrays (None fields left out).
    norm : float
        The global norm before clipping.

    Raises
    ------
    OptionError
        For max_norm <= 0.

    Examples
    --------
    >>> import numpy as np
    >>> from fastrnn.train import clip_by_global_norm
    >>> clipped, norm = clip_by_global_norm({"w": np.array([3.0, 4.0])}, max_norm=1.0)
    >>> norm, clipped["w"].tolist()
    (5.0, [0.6000000000000001, 0.8])
    """
    if max_norm <= 0:
        raise OptionError(f"max_norm must be > 0, got {max_norm}")
    norm = global_norm(grads)
    scale = min(1.0, max_norm / norm) if norm > 0 else 1.0
    items = grads.items() if isinstance(grads, dict) else grads.items()
    return {k: g * scale for k, g in items if g is not None}, norm


@dataclass
class History:
    """What :func:`train` records. Per update: the loss per scored target; per evaluation:
    (update, accuracy).

    Parameters
    ----------
    loss : list of float
        One entry per update.
    accuracy : list of (int, float)
        (update, accuracy on fresh data) at every evaluation.
    seconds : float
        Wall time of the training.
    reports : list of (int, float, float)
        (update, mean loss since the last report, seconds), as the progress bar showed them.

    Attributes
    ----------
    final_accuracy : float
        The last evaluation's accuracy (NaN before any).
    final_loss : float
        The mean loss over the last 5 % of the updates.

    Raises
    ------
    TypeError
        For an unknown field (it is a dataclass).

    Examples
    --------
    >>> from fastrnn.train import History
    >>> h = History(loss=[1.0, 0.5, 0.25], accuracy=[(3, 0.75)])
    >>> h.final_accuracy, h.final_loss
    (0.75, 0.25)
    """
    loss: list = field(default_factory=list)
    accuracy: list = field(default_factory=list)
    seconds: float = 0.0
    reports: list = field(default_factory=list)    # (update, mean loss since the last report, seconds)

    @property
    def final_accuracy(self):
        return self.accuracy[-1][1] if self.accuracy else float("nan")

    @property
    def final_loss(self):
        tail = self.loss[-max(1, len(self.loss) // 20):]
        return float(np.mean(tail)) if tail else float("nan")


def evaluate(net, task, batch=64, seed=10_000, length=None):
    """The task's accuracy on a fresh batch (a fixed seed, so evaluations compare).

    Parameters
    ----------
    net : RNN, LSTM, LSTMP or GRU
    task : a task of ``fastrnn.tasks``
    batch : int
        Sequences to score.
    seed : int
        Seed of the batch.
    length : int, optional
        Sequence length (default: the task's).

    Returns
    -------
    float
        The task's accuracy, from 0 to 1.

    Raises
    ------
    ShapeError
        When the net's inputs do not match the task's.

    Examples
    --------
    >>> import fastrnn
    >>> task = fastrnn.tasks.get("parity")
    >>> net = fastrnn.RNN.init(task.n_in, 8, task.n_out, readout="linear", out_activation="logistic")
    >>> 0.0 <= fastrnn.train.evaluate(net, task) <= 1.0
    True
    """
    sample = task.sample(batch, seed, length)
    out = forward(net, sample.x.astype(net.dtype))
    return task.accuracy(out[1], sample)


def _targets(task, sample, dtype):
    d = sample.d if task.loss == "xent" else sample.d.astype(dtype)
    return sample.x.astype(dtype), d, sample.mask != 0


def curriculum_truncation(step, steps, k):
    """Truncation for update ``step`` of ``steps`` when growing from 1 to k over the first half
    (the seeds note that starting short speeds convergence)."""
    half = max(1, steps // 2)
    return max(1, min(k, 1 + (k - 1) * step // half))


def train(net, task, steps=500, algorithm="bptt", batch=32, length=None, optimizer=None,
          truncation=None, curriculum=False, clip=None, seed=0, eval_every=50, callback=None,
          method="exact", online_options=None):
    """Train ``net`` on ``task`` in place.

    Parameters
    ----------
    net : RNN, LSTM or GRU
    task : a task of ``fastrnn.tasks``
    steps : int
        Updates.
    algorithm : {"bptt", "tbptt", "rtrl", "online-rtrl"}
        "bptt" (exact), "tbptt" (BPTT(k; k) with ``truncation`` k, optionally growing from 1 with
        ``curriculum``), "rtrl" (the sequence gradient by RTRL), or "online-rtrl" (OnlineRTRL over
        each sequence, the weights updated after every time step — or, with ``method="fss"``, at
        every block end).
    batch, length : int
        Sequences per update and their length (default: the task's).
    optimizer : object with ``step(params, grads)``
        Default ``Adam(0.01)``.
    clip : float, optional
        Clip gradients to this global norm before each update.
    seed : int
        Seed of the data.
    eval_every : int
        Updates between evaluations on fresh data.
    callback : callable, optional
        Called as ``callback(update, history)`` after every update; return True to stop.
    method, online_options
        For "online-rtrl": OnlineRTRL's method ("exact", "fss", "snap1", "uoro", "rflo") and a dict
        of its options (block, seed, feedback, tau).

    truncation : int, optional
        k of "tbptt" (default 10).
    curriculum : bool
        With "tbptt": grow the truncation from 1 to k over the first half of the updates.

    Returns
    -------
    History

    Raises
    ------
    OptionError
        For an unknown algorithm or method, or options that do not fit them.
    ShapeError
        When the net's inputs or outputs do not match the task's.
    MemoryBudgetError
        For RTRL whose sensitivities exceed the memory budget.

    Examples
    --------
    >>> import fastrnn
    >>> task = fastrnn.tasks.get("parity")
    >>> net = fastrnn.RNN.init(task.n_in, 16, task.n_out, readout="linear", out_activation="logistic")
    >>> hist = fastrnn.train.train(net, task, steps=300, optimizer=fastrnn.train.Adam(0.03))
    >>> hist.final_accuracy >= task.success
    True
    """
    v.choice("algorithm", algorithm, ALGORITHMS)
    steps = v.positive_int("steps", steps)
    batch = v.positive_int("batch", batch)
    if algorithm == "tbptt":
        truncation = v.positive_int("truncation", truncation or 10)
    opt = optimizer or Adam(0.01)
    rng = np.random.default_rng(seed)
    params = net.params()
    hist = History()
    start = time.perf_counter()
    learner = (OnlineRTRL(net, batch=batch, loss=task.loss, method=method, **(online_options or {}))
               if algorithm == "online-rtrl" else None)

    def update(grads):
        if clip is not None:
            grads, _ = clip_by_global_norm(grads, clip)
        opt.step(params, grads)

    for step in range(1, steps + 1):
        x, d, mask = _targets(task, task.sample(batch, rng, length), net.dtype)
        scored = max(1, int(mask.sum()) * (1 if task.loss == "xent" else net.n_out))
        if algorithm == "online-rtrl":
            learner.reset()
            total = 0.0
            for t in range(x.shape[0]):
                loss_t, g, _ = learner.step(x[t], d[t], mask[t])
                total += loss_t
                if g is not None:             # fss: a gradient at block ends only
                    update(g)
            rest = learner.flush()
            if rest is not None:
                update(rest)
            loss = total
        else:
            trunc = None
            if algorithm == "tbptt":
                trunc = curriculum_truncation(step, steps, truncation) if curriculum else truncation
            fn = rtrl if algorithm == "rtrl" else bptt
            loss, g = fn(net, x, d, mask, task.loss, **({"truncation": trunc} if fn is bptt else {}))
            update(g)
        hist.loss.append(loss / scored)
        if step % eval_every == 0 or step == steps:
            hist.accuracy.append((step, evaluate(net, task, length=length)))
            since = hist.reports[-1][0] if hist.reports else 0
            hist.reports.append((step, float(np.mean(hist.loss[since:])), time.perf_counter() - start))
        hist.seconds = time.perf_counter() - start
        if callback is not None and callback(step, hist):
            break
    return hist
