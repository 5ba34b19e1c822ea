"""fastrnn.torch.RNN / LSTM against torch.nn.RNN / LSTM: same parameters, outputs, final states
and gradients of inputs, initial states and every parameter."""
import contextlib
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed; the torch bridge needs it")
ft = pytest.importorskip("fastrnn.torch", reason="fastrnn.torch did not import (it needs PyTorch)")

import fastrnn  # noqa: E402

# torch.nn.LSTM's own notice when it runs a projected LSTM without oneDNN (the reference side)
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN:UserWarning")

OPTIONS = [
    {},
    {"batch_first": True},
    {"num_layers": 2},
    {"bidirectional": True},
    {"num_layers": 2, "bidirectional": True, "batch_first": True},
    {"bias": False},
    {"num_layers": 3, "dropout": 0.5},          # dropout is off in eval mode, as in torch
]
PROJECTED = [                                   # LSTM only: h has proj_size units, c hidden_size
    {"proj_size": 2},
    {"proj_size": 3, "num_layers": 2, "bidirectional": True, "batch_first": True},
    {"proj_size": 1, "bias": False, "num_layers": 3, "dropout": 0.5},
]
CASES = [(kind, o) for kind in ("RNN", "LSTM", "GRU") for o in OPTIONS] + [("LSTM", o) for o in PROJECTED]


def pair(kind, dtype, **options):
    """torch's module and fastrnn's, built from the same seed: the same parameters."""
    torch.manual_seed(3)
    ref = getattr(torch.nn, kind)(3, 5, dtype=dtype, **options)
    torch.manual_seed(3)
    ours = getattr(ft, kind)(3, 5, dtype=dtype, **options)
    return ref, ours


def run(module, x, hx):
    """Outputs, final states and the gradients of x, the initial states and every parameter of a
    loss that uses the outputs and the final states nonlinearly."""
    x = x.detach().clone().requires_grad_(True)
    hx = None if hx is None else tuple(h.detach().clone().requires_grad_(True) for h in hx)
    arg = None if hx is None else (hx[0] if len(hx) == 1 else hx)
    out, final = module(x, arg)
    finals = final if isinstance(final, tuple) else (final,)
    loss = (out ** 3).sum() + sum(torch.sin(f).sum() for f in finals)
    inputs = [x] + ([] if hx is None else list(hx)) + list(module.parameters())
    grads = torch.autograd.grad(loss, inputs)
    return [out.detach()] + [f.detach() for f in finals] + list(grads)


def rel(a, b):
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / max(float(b.abs().max()), 1e-300))


def inputs(module, kind, dtype, T=7, B=4, unbatched=False, with_state=True):
    g = torch.Generator().manual_seed(5)
    rows = module.num_layers * (2 if module.bidirectional else 1)
    if unbatched:
        x = torch.randn(T, 3, generator=g, dtype=dtype)
        lead = (rows,)
    else:
        x = torch.randn(B, T, 3, generator=g, dtype=dtype) if module.batch_first else torch.randn(T, B, 3, generator=g, dtype=dtype)
        lead = (rows, B)
    if not with_state:
        return x, None
    sizes = [getattr(module, "proj_size", 0) or 5, 5][:2 if kind == "LSTM" else 1]
    hx = tuple(0.5 * torch.randn(lead + (size,), generator=g, dtype=dtype) for size in sizes)
    return x, hx


@pytest.mark.parametrize("kind, options", CASES,
                         ids=[f"{k}-" + (",".join(f"{a}={b}" for a, b in o.items()) or "defaults") for k, o in CASES])
def test_float64_equals_torch(kind, options):
    ref, ours = pair(kind, torch.float64, **options)
    ref.eval(), ours.eval()
    assert list(ref.state_dict()) == list(ours.state_dict())
    for a, b in zip(ref.state_dict().values(), ours.state_dict().values()):
        assert torch.equal(a, b)
    for with_state in (True, False):
        x, hx = inputs(ours, kind, torch.float64, with_state=with_state)
        for k, (a, b) in enumerate(zip(run(ours, x, hx), run(ref, x, hx))):
            assert a.shape == b.shape, (k, a.shape, b.shape)
            assert rel(a, b) <= 1e-10, (k, rel(a, b))


@pytest.mark.parametrize("kind, options", [
    ("RNN", {"nonlinearity": "relu"}), ("LSTM", {"num_layers": 2}), ("GRU", {"num_layers": 2, "bidirectional": True}),
    ("LSTM", {"num_layers": 2, "bidirectional": True, "proj_size": 2})], ids=["RNN", "LSTM", "GRU", "LSTM-proj"])
def test_unbatched_input_and_relu(kind, options):
    ref, ours = pair(kind, torch.float64, **options)
    x, hx = inputs(ours, kind, torch.float64, unbatched=True)
    for a, b in zip(run(ours, x, hx), run(ref, x, hx)):
        assert a.shape == b.shape and rel(a, b) <= 1e-10


def test_load_state_dict_both_ways_and_repr():
    ref, ours = pair("LSTM", torch.float32, num_layers=2, bidirectional=True)
    with torch.no_grad():
        for p in ref.parameters():
            p.mul_(1.5)
    ours.load_state_dict(ref.state_dict())
    back = torch.nn.LSTM(3, 5, num_layers=2, bidirectional=True)
    back.load_state_dict(ours.state_dict())
    for a, b in zip(back.state_dict().values(), ref.state_dict().values()):
        assert torch.equal(a, b)
    assert repr(ours) == "LSTM(3, 5, num_layers=2, bidirectional=True)" == repr(ref)
    assert repr(ft.LSTM(3, 5, proj_size=2, num_layers=2)) == repr(torch.nn.LSTM(3, 5, proj_size=2, num_layers=2))
    assert repr(ft.RNN(2, 4, nonlinearity="relu", bias=False, batch_first=True)) == repr(
        torch.nn.RNN(2, 4, nonlinearity="relu", bias=False, batch_first=True))
    ours.flatten_parameters()
    assert ours.double().weight_hh_l1_reverse.dtype == torch.float64


@pytest.mark.parametrize("kind, options", [("RNN", {}), ("LSTM", {}), ("GRU", {}), ("LSTM", {"proj_size": 3})],
                         ids=["RNN", "LSTM", "GRU", "LSTM-proj"])
def test_float32_is_as_precise_as_torch(kind, options):
    """Each result's relative error against a float64 computation with the same weights is at
    most 2x torch's own float32 error."""
    ref64, _ = pair(kind, torch.float64, num_layers=2, **options)
    weights32 = {k: v.float() for k, v in ref64.state_dict().items()}
    ours32 = getattr(ft, kind)(3, 5, num_layers=2, dtype=torch.float32, **options)
    ref32 = getattr(torch.nn, kind)(3, 5, num_layers=2, dtype=torch.float32, **options)
    ours32.load_state_dict(weights32)
    ref32.load_state_dict(weights32)
    exact64 = getattr(torch.nn, kind)(3, 5, num_layers=2, dtype=torch.float64, **options)
    exact64.load_state_dict({k: v.double() for k, v in weights32.items()})   # the float32 weights, exactly
    g = torch.Generator().manual_seed(9)
    x = torch.randn(60, 8, 3, generator=g, dtype=torch.float64).float()
    exact = run(exact64, x.double(), None)
    ours = run(ours32, x, None)
    theirs = run(ref32, x, None)
    # SPEC §7's relative error, max|a - b| / max|b|, of each result: the outputs, each final state,
    # dx, and the gradient of all parameters as one vector (per tensor, a 15-number bias can land
    # below one ulp by luck on either side)
    count = 2 if kind == "LSTM" else 1

    def results(r):
        return r[:2 + count] + [torch.cat([t.detach().double().flatten() for t in r[2 + count:]])]
    names = ["output"] + ["final state"] * count + ["dx", "all parameter gradients"]
    worst = 0.0
    for name, e, a, b in zip(names, results(exact), results(ours), results(theirs)):
        ours_err, torch_err = rel(a.double(), e), rel(b.double(), e)
        assert ours_err <= 2 * torch_err, f"{name}: fastrnn {ours_err:.3g} vs torch {torch_err:.3g}"
        worst = max(worst, ours_err)
    assert worst < 1e-4, worst                    # and small: the weights really are the same


@pytest.mark.parametrize("k", [1, 3, 5])
def test_truncation_equals_detach_every_k_steps(k):
    torch.manual_seed(0)
    ours = ft.LSTM(3, 4, dtype=torch.float64, truncation=k)
    ref = torch.nn.LSTM(3, 4, dtype=torch.float64)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(11, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    out, _ = ours(x)
    (out ** 2).sum().backward()
    state, outs = None, []
    for start in range(0, 11, k):
        o, state = ref(x[start:start + k], state)
        state = tuple(s.detach() for s in state)
        outs.append(o)
    (torch.cat(outs) ** 2).sum().backward()
    for (name, a), b in zip(ours.named_parameters(), ref.parameters()):
        assert rel(a.grad, b.grad) <= 1e-10, name


def test_training_step_with_an_optimizer_matches_torch():
    ref, ours = pair("LSTM", torch.float64, batch_first=True)
    x, _ = inputs(ours, "LSTM", torch.float64)
    for module in (ref, ours):
        opt = torch.optim.Adam(module.parameters(), lr=0.01)
        for _ in range(3):
            opt.zero_grad()
            out, (h, c) = module(x)
            (out.pow(2).mean() + c.pow(2).mean()).backward()
            opt.step()
    for a, b in zip(ours.parameters(), ref.parameters()):
        assert rel(a, b) <= 1e-10


@pytest.mark.parametrize("kind, options", [("RNN", {}), ("RNN", {"nonlinearity": "relu"}), ("LSTM", {"proj_size": 2}),
                                             ("GRU", {"num_layers": 2, "bidirectional": True, "dropout": 0.25})])
def test_the_modules_attributes_are_torch_nns(kind, options):
    """Code that reads a recurrent module's attributes (``mode`` included: torch.nn's simple cell says "RNN_TANH"
    or "RNN_RELU") reads the same from a fastrnn.torch module, and its repr is torch.nn's."""
    ref, ours = pair(kind, torch.float32, **options)
    for name in ("mode", "input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout", "bidirectional",
                 "proj_size"):
        assert getattr(ours, name) == getattr(ref, name), name
    assert repr(ours) == repr(ref)


def test_what_is_not_supported_says_what_to_do():
    lstm = ft.LSTM(3, 5)
    x = torch.randn(4, 2, 3)
    with pytest.raises(fastrnn.OptionError, match=r"fastrnn runs on the CPU: call \.cpu\(\)"):
        lstm(x.to("meta"))
    with pytest.raises(fastrnn.OptionError, match="fastrnn runs on the CPU"):
        ft.LSTM(3, 5, device="cuda")
    with pytest.raises(fastrnn.OptionError, match="proj_size=5 must be smaller than hidden_size=5"):
        ft.LSTM(3, 5, proj_size=5)
    with pytest.raises(fastrnn.ShapeError, match=r"c_0 has shape \(1, 2, 2\) .* = \(1, 2, 5\)"):
        ft.LSTM(3, 5, proj_size=2)(x, (torch.zeros(1, 2, 2), torch.zeros(1, 2, 2)))
    with pytest.raises(fastrnn.DTypeError, match=r"input has dtype torch.float64 but the parameters are torch.float32"):
        lstm(x.double())
    with pytest.raises(fastrnn.DTypeError, match="float32 or torch.float64"):
        ft.RNN(3, 5, dtype=torch.float16)
    with pytest.raises(fastrnn.ShapeError, match="input_size=3"):
        lstm(torch.randn(4, 2, 2))
    with pytest.raises(fastrnn.ShapeError, match=r"h_0 has shape \(2, 2, 5\)"):
        lstm(x, (torch.zeros(2, 2, 5), torch.zeros(2, 2, 5)))
    with pytest.raises(fastrnn.OptionError, match="nonlinearity='gelu'"):
        ft.RNN(3, 5, nonlinearity="gelu")
    xg = x.clone().requires_grad_(True)
    out, _ = lstm(xg)
    (dx,) = torch.autograd.grad(out.sum(), xg, create_graph=True)
    with pytest.raises(RuntimeError, match="fastrnn.torch computes first derivatives only"):
        dx.sum().backward()


@pytest.mark.parametrize("kind, options", [(k, o) for k in ("RNN", "LSTM", "GRU")
                                             for o in ({}, {"num_layers": 2, "bidirectional": True},
                                                       {"batch_first": True})] + [("LSTM", {"proj_size": 2})])
@pytest.mark.parametrize("with_state", [True, False])
def test_an_empty_batch_gives_torchs_empty_outputs_and_zero_gradients(kind, options, with_state):
    """A batch of no sequences (B = 0, as a bucketing loader can hand over): torch.nn returns an output and final
    states with no rows, and its backward pass gives every parameter a gradient of zeros; so must the layer."""
    ref, ours = pair(kind, torch.float64, **options)
    x, hx = inputs(ours, kind, torch.float64, B=0, with_state=with_state)
    got, want = run(ours, x, hx), run(ref, x, hx)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a.shape == b.shape and a.dtype == b.dtype
        assert torch.equal(a, b)
    assert any(b.numel() for b in want)        # the parameters' gradients: zeros, not empty


@pytest.mark.parametrize("kind, options", [("RNN", {}), ("LSTM", {"num_layers": 2, "bidirectional": True}),
                                             ("GRU", {"batch_first": True}), ("LSTM", {"proj_size": 2})])
def test_without_grad_mode_the_outputs_are_the_graphs_own_and_a_state_fed_back_step_by_step_equals_one_call(
        kind, options):
    """Under no_grad and inference_mode a layer runs its forward pass without an autograd Function
    (``_forward_only``): the outputs must be the values the grad-mode call gives, bit for bit, and not require
    grad; generating step by step, each call's final states fed to the next, must equal one call over the whole
    sequence and torch.nn's step-by-step states."""
    ref, ours = pair(kind, torch.float64, **options)
    x, hx = inputs(ours, kind, torch.float64)
    arg = hx[0] if len(hx) == 1 else hx
    want_out, want_final = ours(x, arg)
    for mode in (torch.no_grad, torch.inference_mode):
        with mode():
            out, final = ours(x, arg)
        assert not out.requires_grad
        assert torch.equal(out, want_out.detach())
        for a, b in zip(final if isinstance(final, tuple) else (final,),
                        want_final if isinstance(want_final, tuple) else (want_final,)):
            assert torch.equal(a, b.detach()) and not a.requires_grad
    if options.get("bidirectional"):
        return                          # a reverse direction sees the whole sequence: no step-by-step equality
    steps = x.shape[1] if ours.batch_first else x.shape[0]
    state, ref_state = arg, arg
    with torch.no_grad():
        for t in range(steps):
            xt = x[:, t:t + 1] if ours.batch_first else x[t:t + 1]
            out_t, state = ours(xt, state)
            ref_t, ref_state = ref(xt, ref_state)
            whole = want_out[:, t:t + 1] if ours.batch_first else want_out[t:t + 1]
            torch.testing.assert_close(out_t, whole.detach(), rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(out_t, ref_t, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind, options", [("RNN", {}), ("GRU", {"num_layers": 2, "bidirectional": True}),
                                             ("LSTM", {"batch_first": True}), ("LSTM", {"proj_size": 2, "num_layers": 2})])
def test_torch_nns_argument_checks_and_flat_weights_answer_as_torch_nns(kind, options):
    """torch.nn.RNNBase's methods that code calls on a module (``_flat_weights``, ``check_input``,
    ``get_expected_hidden_size``, ``check_hidden_size``, ``check_forward_args``, ``permute_hidden``, the LSTM's
    ``get_expected_cell_size``): the same answers and the same inputs refused, with fastrnn's errors."""
    ref, ours = pair(kind, torch.float64, **options)
    assert ours._flat_weights_names == ref._flat_weights_names
    for a, b in zip(ours._flat_weights, ref._flat_weights):
        assert torch.equal(a, b)
    ours._flat_weights = [getattr(ours, name) for name in ours._flat_weights_names]   # a recipe's refresh: accepted
    with pytest.raises(fastrnn.OptionError, match="set them there"):
        ours._flat_weights = [w.detach().clone() for w in ours._flat_weights]
    x, hx = inputs(ours, kind, torch.float64, B=3)
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, torch.tensor([7, 5, 2]), batch_first=ours.batch_first)
    for data, sizes in ((x, None), (packed.data, packed.batch_sizes)):
        assert ours.get_expected_hidden_size(data, sizes) == ref.get_expected_hidden_size(data, sizes)
        if kind == "LSTM":
            assert ours.get_expected_cell_size(data, sizes) == ref.get_expected_cell_size(data, sizes)
        hidden = hx if kind == "LSTM" else hx[0]
        ours.check_forward_args(data, hidden, sizes)
        ref.check_forward_args(data, hidden, sizes)
    permutation = torch.tensor([2, 0, 1])
    hidden = hx if kind == "LSTM" else hx[0]
    for a, b in zip(*(m.permute_hidden(hidden, permutation) for m in (ours, ref))) if kind == "LSTM" else [
            (ours.permute_hidden(hidden, permutation), ref.permute_hidden(hidden, permutation))]:
        assert torch.equal(a, b)
    assert ours.permute_hidden(hidden, None) is hidden
    bad = [(x[..., :2], None), (x[0], None), (x.float(), None), (packed.data, None)]
    for data, sizes in bad:
        with pytest.raises((RuntimeError, ValueError)):
            ref.check_input(data, sizes)
        with pytest.raises((fastrnn.ShapeError, fastrnn.DTypeError)):
            ours.check_input(data, sizes)
    wrong = hx[0][:, :2]
    with pytest.raises(RuntimeError, match="Expected hidden size"):
        ref.check_hidden_size(wrong, ref.get_expected_hidden_size(x, None))
    with pytest.raises(fastrnn.ShapeError, match="Expected hidden size"):
        ours.check_hidden_size(wrong, ours.get_expected_hidden_size(x, None))
    if kind == "LSTM":
        with pytest.raises(fastrnn.ShapeError, match=r"Expected hidden\[1\] size"):
            ours.check_forward_args(x, (hx[0], hx[1][:, :2]), None)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning")
def test_torchscript_capture_is_refused_and_torch_export_captures_the_layers():
    """torch.jit.script and torch.jit.trace (and torch.onnx.export's TorchScript path) cannot capture layers that
    run NumPy: an error that names what works, not TorchScript's internals; torch.export captures them through
    the registered operators, and the exported program computes the eager module's outputs."""
    lstm = ft.LSTM(3, 4, num_layers=2, bidirectional=True)
    model = torch.nn.Sequential(lstm)
    x = torch.randn(5, 2, 3)
    with pytest.raises(fastrnn.OptionError, match=r"torch.jit.script.*torch.export"):
        torch.jit.script(model)
    with pytest.raises(fastrnn.OptionError, match=r"torch.jit.trace.*torch.export"):
        torch.jit.trace(lstm, x)
    program = torch.export.export(lstm, (x,))
    got, want = program.module()(x), lstm(x)
    torch.testing.assert_close(got[0], want[0], rtol=0, atol=0)
    for a, b in zip(got[1], want[1]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_torch_func_transforms_and_no_steps_are_refused_with_what_to_do():
    """torch.func's transforms hand the layer wrapped tensors that fastrnn cannot read: a clear error, not
    torch's own about autograd.Function internals; an input with no time steps names the input."""
    lstm = ft.LSTM(3, 4)
    x = torch.randn(5, 2, 3)
    params = dict(lstm.named_parameters())

    def loss(p):
        return torch.func.functional_call(lstm, p, (x,))[0].sum()
    with pytest.raises(fastrnn.OptionError, match="do not run inside torch.func transforms"):
        torch.func.grad(loss)(params)
    with pytest.raises(fastrnn.OptionError, match="do not run inside torch.func transforms"):
        torch.func.vmap(lambda xx: lstm(xx)[0])(torch.randn(2, 5, 2, 3))
    for module, bad in ((lstm, torch.randn(0, 2, 3)), (ft.GRU(3, 4, batch_first=True), torch.randn(2, 0, 3)),
                        (ft.RNN(3, 4), torch.randn(0, 3))):
        with pytest.raises(fastrnn.ShapeError, match=r"no time steps \(T = 0\)"):
            module(bad)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("low", [torch.bfloat16, torch.float16])
def test_inside_autocast_a_layer_takes_a_low_precision_input_in_its_parameters_dtype(kind, low):
    """Inside ``torch.autocast`` on the CPU, the layer before hands on a bfloat16 (or float16) tensor. fastrnn has
    no kernels in those dtypes, so the layer takes the input and hx in its parameters' dtype (float32 here) and
    hands on a float32 output: the outputs, final states and gradients of torch.nn's float32 layer given the same
    tensors cast to float32, and the gradient reaches the layer before. Outside autocast such an input is an error
    that says what to do (the module cannot run in that dtype)."""
    ref, ours = pair(kind, torch.float32, num_layers=2)
    head = torch.nn.Linear(4, 3)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(6, 2, 4, generator=g)
    states = [torch.randn(2, 2, 5, generator=g).to(low) for _ in range(2 if kind == "LSTM" else 1)]
    hx = tuple(states) if kind == "LSTM" else states[0]
    with torch.autocast("cpu", dtype=low):
        z = head(x).to(low)                          # what an autocast layer hands on (float16: cast here)
        out, finals = ours(z, hx)
    assert z.dtype == low and out.dtype == torch.float32
    (out.sum() + sum(f.sum() for f in (finals if kind == "LSTM" else (finals,)))).backward()
    zf = z.detach().float().requires_grad_(True)
    hxf = tuple(t.float() for t in states) if kind == "LSTM" else states[0].float()
    out_ref, finals_ref = ref(zf, hxf)
    (out_ref.sum() + sum(f.sum() for f in (finals_ref if kind == "LSTM" else (finals_ref,)))).backward()
    torch.testing.assert_close(out, out_ref, rtol=1e-5, atol=1e-6)
    for a, b in zip(finals if kind == "LSTM" else (finals,), finals_ref if kind == "LSTM" else (finals_ref,)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for (name, a), b in zip(ours.named_parameters(), ref.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-5, msg=name)
    assert head.weight.grad is not None and torch.isfinite(head.weight.grad).all()
    with pytest.raises(fastrnn.DTypeError, match=r"input has dtype torch\.(bfloat16|float16): fastrnn computes in "
                                                 r"float32 or float64: call \.to\(torch\.float32\) on the input"):
        ours(z.detach())


@pytest.mark.parametrize("kind, options", [("RNN", {}), ("LSTM", {}), ("GRU", {}), ("LSTM", {"proj_size": 3})],
                         ids=["RNN", "LSTM", "GRU", "LSTM-proj"])
@pytest.mark.parametrize("enforce_sorted", [True, False])
@pytest.mark.parametrize("with_state", [True, False])
def test_packed_sequences_equal_torch(kind, options, enforce_sorted, with_state):
    pack = torch.nn.utils.rnn
    ref, ours = pair(kind, torch.float64, num_layers=2, bidirectional=True, **options)
    lengths = torch.tensor([6, 6, 4, 1]) if enforce_sorted else torch.tensor([4, 6, 1, 6])
    g = torch.Generator().manual_seed(11)
    x = torch.randn(6, 4, 3, generator=g, dtype=torch.float64)
    sizes = [options.get("proj_size", 5), 5][:2 if kind == "LSTM" else 1]
    hx = tuple(0.5 * torch.randn(4, 4, size, generator=g, dtype=torch.float64) for size in sizes) if with_state else None
    results = []
    for module in (ours, ref):
        xx = x.clone().requires_grad_(True)
        hh = None if hx is None else tuple(h.clone().requires_grad_(True) for h in hx)
        packed = pack.pack_padded_sequence(xx, lengths, enforce_sorted=enforce_sorted)
        out, final = module(packed, None if hh is None else (hh if kind == "LSTM" else hh[0]))
        assert isinstance(out, pack.PackedSequence) and torch.equal(out.batch_sizes, packed.batch_sizes)
        padded, _ = pack.pad_packed_sequence(out)
        finals = final if isinstance(final, tuple) else (final,)
        loss = (padded ** 3).sum() + sum(torch.sin(f).sum() for f in finals)
        grads = torch.autograd.grad(loss, [xx] + ([] if hh is None else list(hh)) + list(module.parameters()))
        results.append([padded.detach()] + [f.detach() for f in finals] + list(grads))
    for k, (a, b) in enumerate(zip(*results)):
        assert rel(a, b) <= 1e-10, (k, rel(a, b))
    assert float(results[0][len(finals) + 1][4:, 2].abs().max()) == 0.0     # padded steps: no gradient


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")  # torch's own
def test_torch_compile_fullgraph_equals_eager():
    """A model with all three cells compiles with fullgraph=True (torch.nn's RNNs cannot): outputs
    and gradients equal eager mode. Traced by Dynamo and AOTAutograd as under the default backend, run
    without Inductor's code generation, which the float32 test below takes (and which cost this test
    27 s on an empty Inductor cache, against 20 s for the float32 test's)."""
    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = ft.LSTM(3, 5, num_layers=2, bidirectional=True, batch_first=True, dtype=torch.float64)
            self.proj = ft.LSTM(10, 6, proj_size=2, batch_first=True, dtype=torch.float64)
            self.gru = ft.GRU(2, 4, batch_first=True, dtype=torch.float64, truncation=3)
            self.rnn = ft.RNN(4, 3, nonlinearity="relu", batch_first=True, dtype=torch.float64)
            self.head = torch.nn.Linear(3, 1, dtype=torch.float64)

        def forward(self, x):
            out, (h, c) = self.lstm(x)
            out, (hp, cp) = self.proj(out)
            out, _ = self.gru(out)
            out, h_n = self.rnn(out)
            return self.head(out).pow(2).sum() + c.pow(2).sum() + h_n.sum() + hp.sum() * cp.sin().sum()

    torch.manual_seed(0)
    model = Model()
    x = torch.randn(4, 7, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    params = [x] + list(model.parameters())
    eager = model(x)
    g_eager = torch.autograd.grad(eager, params)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    comp = compiled(x)
    g_comp = torch.autograd.grad(comp, params)
    assert rel(comp, eager) <= 1e-12
    for a, b in zip(g_comp, g_eager):
        assert rel(a, b) <= 1e-12


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")  # torch's own
def test_torch_compile_float32_equals_eager():
    """float32 under torch.compile(fullgraph=True): the same operators, so the same numbers as eager
    mode to float32 rounding (1e-5 relative), projected LSTM included."""
    torch.manual_seed(2)
    lstm = ft.LSTM(3, 6, proj_size=2, num_layers=2, batch_first=True)
    gru = ft.GRU(2, 4, batch_first=True)

    def loss(x):
        out, (h, c) = lstm(x)
        out, h_n = gru(out)
        return out.pow(2).sum() + c.sin().sum() + h_n.sum()

    x = torch.randn(3, 9, 3, generator=torch.Generator().manual_seed(4)).requires_grad_(True)
    params = [x] + list(lstm.parameters()) + list(gru.parameters())
    eager = loss(x)
    g_eager = torch.autograd.grad(eager, params)
    comp = torch.compile(loss, fullgraph=True)(x)
    g_comp = torch.autograd.grad(comp, params)
    assert comp.dtype == torch.float32 and rel(comp, eager) <= 1e-5
    for a, b in zip(g_comp, g_eager):
        assert a.dtype == torch.float32 and rel(a, b) <= 1e-5


def test_custom_operators_pass_opcheck():
    weights = [torch.randn(4, 3), torch.randn(4, 4), torch.randn(4), torch.randn(4)]
    torch.library.opcheck(torch.ops.fastrnn.layer.default,
                          (torch.randn(5, 2, 3), [torch.zeros(2, 4)], weights, "RNN", "tanh", True, 0, 0))
    projected = [torch.randn(12, 3), torch.randn(12, 2), torch.randn(12), torch.randn(12), torch.randn(2, 3)]
    torch.library.opcheck(torch.ops.fastrnn.layer.default,
                          (torch.randn(5, 2, 3), [torch.zeros(2, 2), torch.zeros(2, 3)], projected, "LSTM", "tanh",
                           True, 0, 0))


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_an_input_without_grad_gets_none_and_the_same_weight_gradients(kind):
    """As torch.nn's modules, fastrnn's skip dL/dx when x does not require a gradient (a product
    less per layer); the weights' gradients are unchanged, and against torch's."""
    ref, ours = pair(kind, torch.float64, num_layers=2)
    x, hx = inputs(ours, kind, torch.float64)
    results = []
    for module, x_in in ((ours, x), (ref, x), (ours, x.clone().requires_grad_(True))):
        module.zero_grad()
        out, _ = module(x_in)
        (out ** 3).sum().backward()
        assert (x_in.grad is None) == (x_in is x)
        results.append([p.grad.clone() for p in module.parameters()])
    for a, b, c in zip(*results):
        assert rel(a, b) <= 1e-10 and rel(a, c) <= 1e-12


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_backward_after_an_in_place_change_is_refused_as_in_torch(kind):
    """fastrnn's backward reads the forward pass's arrays, which are views of the tensors: a weight
    or the input modified in place between forward and backward must fail as torch.nn's does, not
    give gradients of another network."""
    for module in pair(kind, torch.float64):
        x, hx = inputs(module, kind, torch.float64)
        for change in ("weight", "input"):
            x_in = x.clone()
            out, _ = module(x_in)
            with torch.no_grad():
                (module.weight_hh_l0 if change == "weight" else x_in).mul_(1.5)
            with pytest.raises(RuntimeError, match="modified by an inplace operation"):
                out.sum().backward()


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("options", [{}, {"num_layers": 2, "bidirectional": True}, {"batch_first": True}],
                         ids=["one-layer", "2-layers-bidirectional", "batch-first"])
def test_an_output_changed_in_place_still_gets_the_forward_pass_gradients(kind, options):
    """The output is the forward pass's own memory (no copy), which backward reads as the states: an
    in-place change of the output before backward (once, then again before a second backward pass
    with ``retain_graph``) must give the gradients torch.nn's float64 modules give for the same
    program, and a backward pass must leave the output's values as they were."""
    ref, ours = pair(kind, torch.float64, **options)
    x, hx = inputs(ours, kind, torch.float64)
    results = []
    for module in (ref, ours):
        module.zero_grad()
        xi = x.clone().requires_grad_(True)
        out, _ = module(xi, hx if kind == "LSTM" else hx[0])
        before = out.detach().clone()
        loss = (out ** 2).sum()              # saves the output as it is now
        loss.backward(retain_graph=True)
        assert torch.equal(out.detach(), before)
        out.mul_(1.5)                        # then changed in place: the states themselves in fastrnn
        (out ** 3).sum().backward(retain_graph=True)
        out.add_(0.25)
        (out.sin()).sum().backward()
        results.append([before, xi.grad.clone()] + [p.grad.clone() for p in module.parameters()])
    for got, want in zip(results[1], results[0]):
        assert rel(got, want) <= 1e-10


def test_an_output_the_step_changes_in_place_trains_as_torch_nn():
    """dropout(inplace=True) on the output, as models write it: float64 LSTM, three SGD steps, the
    parameters after them against torch.nn.LSTM's with the same dropout masks."""
    ref, ours = pair("LSTM", torch.float64)
    x, _ = inputs(ours, "LSTM", torch.float64)
    after = []
    for module in (ref, ours):
        opt = torch.optim.SGD(module.parameters(), lr=0.1)
        g = torch.Generator().manual_seed(9)
        for _ in range(3):
            opt.zero_grad()
            out, _ = module(x)
            mask = (torch.rand(out.shape, generator=g, dtype=out.dtype) > 0.3).to(out.dtype)
            out.mul_(mask)
            (out.tanh() ** 2).sum().backward()
            opt.step()
        after.append([p.detach().clone() for p in module.parameters()])
    for got, want in zip(after[1], after[0]):
        assert rel(got, want) <= 1e-10


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_the_layer_computes_with_the_parameters_themselves_and_still_refuses_non_finite_ones(kind):
    """The network a forward call builds is a view of the parameters (no copy of the weights per
    call), and an optimizer's in-place update is what the next call computes with; a NaN in a
    parameter is refused by name, as before."""
    ref, ours = pair(kind, torch.float64)
    x, hx = inputs(ours, kind, torch.float64)
    weights = [ours.weight_ih_l0, ours.weight_hh_l0, ours.bias_ih_l0, ours.bias_hh_l0]
    net = ours._spec.build([w.detach().numpy() for w in weights])
    assert np.shares_memory(net.params()["W_ih" if kind != "RNN" else "W_in"], weights[0].detach().numpy())
    with torch.no_grad():
        for a, b in zip(ref.parameters(), ours.parameters()):
            a.mul_(0.9)
            b.mul_(0.9)
    for got, want in zip(run(ours, x, hx), run(ref, x, hx)):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    with torch.no_grad():
        ours.weight_hh_l0[0, 0] = float("nan")
    with pytest.raises(fastrnn.NonFiniteError, match=r"net\.W_(hh|rec) holds NaN"):
        ours(x)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_the_network_kept_between_calls_follows_updates_and_new_parameters(kind):
    """A module keeps the network it built over a layer's weight tensors between calls
    (``_LayerSpec.net_for``): an optimizer's in-place update (the biases too: the simple cell's one
    bias is their sum), a parameter replaced by another tensor and ``.data`` set to new memory must
    each be what the next call computes with, with and without initial states; copies and pickles
    of the module carry no network."""
    import copy
    import pickle
    ref, ours = pair(kind, torch.float64, num_layers=2)
    x, hx = inputs(ours, kind, torch.float64)

    def same():
        for state in (hx, None):
            for got, want in zip(run(ours, x, state), run(ref, x, state)):
                torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)

    same()
    assert len(ours._spec._nets) == 2          # one network per layer
    assert not copy.deepcopy(ours)._spec._nets and not pickle.loads(pickle.dumps(ours))._spec._nets
    with torch.no_grad():
        for a, b in zip(ref.parameters(), ours.parameters()):
            a.add_(0.1)
            b.add_(0.1)
    same()
    g = torch.Generator().manual_seed(11)
    for name, p in list(ours.named_parameters()):
        value = 0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype)
        for module in (ref, ours):
            setattr(module, name, torch.nn.Parameter(value.clone()))
    same()
    for module in (ref, ours):
        module.bias_hh_l1.data = 2 * module.bias_hh_l1.data
        module.weight_hh_l0.data = module.weight_hh_l0.data.t().contiguous().t()     # new memory and strides
    same()


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_weights_that_are_not_the_modules_parameters_are_the_ones_computed_with(kind):
    """A layer reads its weights from the module's parameters where they are there, else as an attribute
    (``_Recurrent._weights``): a parametrization (the weight computed from another tensor), a plain tensor that
    replaced a parameter (weight-drop recipes delete it and set a tensor) and ``torch.func.functional_call``
    must each be what the call computes with, and the gradients reach the tensors they came from."""
    from torch.nn.utils import parametrize

    class Scaled(torch.nn.Module):
        def forward(self, w):
            return 0.5 * w

    ref, ours = pair(kind, torch.float64)
    x, hx = inputs(ours, kind, torch.float64)
    for module in (ref, ours):
        parametrize.register_parametrization(module, "weight_hh_l0", Scaled())
    assert "weight_hh_l0" not in ours._parameters
    for got, want in zip(run(ours, x, hx), run(ref, x, hx)):       # the gradients include the original's
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    ref, ours = pair(kind, torch.float64)
    g = torch.Generator().manual_seed(12)
    dropped = 0.3 * torch.randn(ours.weight_ih_l0.shape, generator=g, dtype=torch.float64)
    for module in (ref, ours):
        del module._parameters["weight_ih_l0"]
        module.weight_ih_l0 = dropped.clone().requires_grad_(True)
    for got, want in zip(run(ours, x, hx), run(ref, x, hx)):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    ref, ours = pair(kind, torch.float64)
    given = {name: 0.2 * torch.randn(p.shape, generator=g, dtype=p.dtype) for name, p in ours.named_parameters()}
    arg = hx[0] if len(hx) == 1 else hx
    got = torch.func.functional_call(ours, given, (x, arg))
    want = torch.func.functional_call(ref, given, (x, arg))
    torch.testing.assert_close(got[0], want[0], rtol=1e-10, atol=1e-12)
    assert not torch.equal(got[0], ours(x, arg)[0])                # not the module's own parameters


@pytest.mark.parametrize("kind, uses", [(k, u) for k in ("RNN", "LSTM", "GRU") for u in ("output", "final")]
                         + [("LSTM", "cell")])
def test_a_loss_on_some_outputs_only_gets_torchs_gradients(kind, uses):
    """Outputs a loss does not use send no gradient (None, not zeros, reaches the backward pass):
    a loss on the output sequence only, on h_n only, or on the LSTM's c_n only."""
    grads = []
    for module in pair(kind, torch.float64):
        x, hx = inputs(module, kind, torch.float64)
        x = x.clone().requires_grad_(True)
        out, final = module(x)
        finals = final if isinstance(final, tuple) else (final,)
        loss = {"output": lambda: (out ** 2).sum(), "final": lambda: torch.sin(finals[0]).sum(),
                "cell": lambda: (finals[-1] ** 3).sum()}[uses]()
        grads.append(torch.autograd.grad(loss, [x] + list(module.parameters())))
    for ours, ref in zip(grads[1], grads[0]):
        torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-12)


def _new_threads_of(fn):
    """The ids of this process's threads that ``fn()`` started and that are still there after it."""
    before = set(os.listdir("/proc/self/task"))
    fn()
    return [int(t) for t in set(os.listdir("/proc/self/task")) - before]


def _pinnable(test):
    """Skip ``test`` where the quiet pins nothing: no GNU OpenMP, one CPU, or no sched_getcpu."""
    for reason, absent in (("torch's OpenMP runtime here is not GNU OpenMP (libgomp): fastrnn.torch starts no thread "
                            "of its pool", not ft._GOMP),
                           ("one CPU: nothing to pin to", ft._CPUS < 2),
                           ("no sched_getcpu or CPU masks here: the quiet is not pinned", ft._GETCPU is None)):
        test = pytest.mark.skipif(absent, reason=reason)(test)
    return test


@_pinnable
@pytest.mark.parametrize("pin", [True, False])
def test_the_quiets_new_thread_starts_on_the_callers_cpu_and_every_mask_comes_back(monkeypatch, pin):
    """The quiet's operation on CPUs + 1 threads starts a thread (torch's operations on its own count end it). With
    ``PIN_QUIET`` the caller is held to the CPU it ran on while the thread starts, then the caller's mask comes back
    and the new thread is given it too; without, no mask is set. A caller held to one CPU keeps its mask."""
    monkeypatch.setattr(ft, "PIN_QUIET", pin)
    cpus = []
    getcpu = ft._GETCPU
    monkeypatch.setattr(ft, "_GETCPU", lambda: cpus.append(getcpu()) or cpus[-1])
    calls = []
    setaffinity = os.sched_setaffinity
    monkeypatch.setattr(ft.os, "sched_setaffinity", lambda pid, mask: (calls.append((pid, set(mask))),
                                                                        setaffinity(pid, mask))[1])
    work = torch.empty(ft._CPUS * ft._GRAIN * 4, dtype=torch.uint8)
    everywhere = os.sched_getaffinity(0)
    with _torch_on_every_cpu():
        work.fill_(1)                               # the pool at torch's own count: the extra thread gone
        started = _new_threads_of(ft._quiet_torch)
        assert os.sched_getaffinity(0) == everywhere
        assert len(started) == 1, started
        assert os.sched_getaffinity(started[0]) == everywhere
        assert calls == ([(0, {cpus[0]}), (0, everywhere), (started[0], everywhere)] if pin else [])
        one = {sorted(everywhere)[-1]}
        setaffinity(0, one)
        try:
            work.fill_(1)
            ft._quiet_torch()
            assert os.sched_getaffinity(0) == one
        finally:
            setaffinity(0, everywhere)
        work.fill_(1)
    assert len(cpus) == (2 if pin else 0)


@_pinnable
def test_a_first_quiet_in_a_process_leaves_no_thread_of_torchs_pool_held_to_one_cpu():
    """In a process whose first parallel torch operation is the quiet, that operation starts torch's whole pool,
    whose threads stay after the quiet's extra one has ended: every one of them has the caller's mask."""
    import subprocess
    import sys
    code = """
import os, torch
import fastrnn.torch as ft
torch.set_num_threads(ft._CPUS)
before = set(os.listdir("/proc/self/task"))
ft._quiet_torch()
torch.empty(ft._CPUS * ft._GRAIN * 4, dtype=torch.uint8).fill_(1)
started = set(os.listdir("/proc/self/task")) - before
assert started, "no thread started"
masks = {t: os.sched_getaffinity(int(t)) for t in started}
assert all(m == os.sched_getaffinity(0) for m in masks.values()), masks
print("ok", len(started))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.startswith("ok"), done.stdout + done.stderr


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no CPU masks on this platform")
def test_a_quiet_that_may_not_pin_its_caller_runs_unpinned(monkeypatch):
    """Where the CPU mask cannot be set (a container's policy) or the CPU cannot be read, the quiet runs as it did
    before pinning, and the caller's mask is untouched."""
    everywhere = os.sched_getaffinity(0)

    def refused(pid, mask):
        raise PermissionError("not here")
    monkeypatch.setattr(ft.os, "sched_setaffinity", refused)
    assert ft._pin_to_this_cpu() is None
    with _torch_on_every_cpu():
        ft._quiet_torch()
    monkeypatch.undo()
    monkeypatch.setattr(ft, "_GETCPU", None)
    assert ft._pin_to_this_cpu() is None
    with _torch_on_every_cpu():
        ft._quiet_torch()
    assert os.sched_getaffinity(0) == everywhere


@contextlib.contextmanager
def _torch_threads(count):
    """torch's thread count at ``count`` inside the block, restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _torch_on_every_cpu():
    """torch on the machine's CPUs inside the block (the quieting rules' condition), restored after."""
    return _torch_threads(ft._CPUS)


def _equals_torch_in_float64_on(threads, kind, options):
    """With torch on ``threads`` threads: fastrnn's module and torch.nn's give the same outputs, final
    states and gradients in float64 (1e-10), and torch's thread count is the same after the calls.
    Returns fastrnn's module and the input."""
    with _torch_threads(threads):
        ref, ours = pair(kind, torch.float64, **options)
        x, hx = inputs(ours, kind, torch.float64)
        for k, (a, b) in enumerate(zip(run(ours, x, hx), run(ref, x, hx))):
            assert a.shape == b.shape, (k, a.shape, b.shape)
            assert rel(a, b) <= 1e-10, (k, rel(a, b))
        assert torch.get_num_threads() == threads
    return ours, x


BORROWED = [("RNN", {}), ("LSTM", {}), ("GRU", {}), ("LSTM", {"proj_size": 3}),
            ("GRU", {"num_layers": 2, "bidirectional": True, "batch_first": True})]


@pytest.mark.parametrize("kind, options", BORROWED,
                         ids=[f"{k}-" + (",".join(f"{a}={b}" for a, b in o.items()) or "defaults") for k, o in BORROWED])
def test_products_on_torchs_spinning_pool_equal_torch(kind, options, monkeypatch):
    """Beside torch's spinning threads the products over all T·B rows (weight gradients, dL/dx) go
    through torch.mm on torch's pool (``runtime.dispatch.borrowed_gemm``): outputs, final states and
    every gradient as torch.nn's in float64, and the lent product did run."""
    from fastrnn.runtime import dispatch
    monkeypatch.setattr(ft, "_SPINNING", True)
    monkeypatch.setattr(dispatch, "FORCE_PARALLEL", True)     # these small products would not pay otherwise
    calls = []
    lent = ft._torch_gemm

    def counted(a, b, out):
        calls.append((a.shape, b.shape))
        lent(a, b, out)

    monkeypatch.setattr(ft, "_torch_gemm", counted)
    ours, x = _equals_torch_in_float64_on(2, kind, options)
    T, B = x.shape[:2] if not ours.batch_first else x.shape[1::-1]
    assert any(a[1] == T * B for a, _ in calls)                 # a weight-gradient product, D^T [x | h]
    assert any(a[0] == T * B for a, _ in calls)                 # dL/dx = D W_ih


def test_the_lent_product_keeps_float32_exact_under_a_lower_matmul_precision_and_reads_read_only_arrays():
    """torch may compute float32 products in lower precision when asked to (``set_float32_matmul_precision``):
    then, and for read-only inputs, the lent product is NumPy's own, bit for bit, and warns of nothing."""
    import warnings
    rng = np.random.default_rng(2)
    a = rng.standard_normal((64, 48)).astype(np.float32)
    b = rng.standard_normal((48, 40)).astype(np.float32)
    expected = np.matmul(a, b)
    precision = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("medium")
        out = np.full((64, 40), np.nan, np.float32)
        ft._torch_gemm(a, b, out)
        assert np.array_equal(out, expected)
    finally:
        torch.set_float32_matmul_precision(precision)
    frozen = a.copy()
    frozen.flags.writeable = False
    out = np.full((64, 40), np.nan, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ft._torch_gemm(frozen, b, out)
    assert np.array_equal(out, expected)
    out = np.full((64, 40), np.nan, np.float32)
    ft._torch_gemm(a, b, out)                                   # torch.mm: the same product to float32 rounding
    assert np.abs(out - expected).max() <= 1e-5 * np.abs(expected).max()


def _running_threads():
    """The ids of this process's threads, other than the calling one, that are running (state R)."""
    import os
    import threading
    me = threading.get_native_id()
    running = set()
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as stat:
                state = stat.read().rsplit(")", 1)[1].split()[0]
        except OSError:                      # the thread ended meanwhile
            continue
        if state == "R" and int(tid) != me:
            running.add(int(tid))
    return running


def _running_threads_after(action, wait):
    """The threads running ``wait`` seconds after ``action()`` returns, less those that were running
    before it (after 30 ms of quiet, longer than torch's threads spin: other threads of the process,
    such as a test runner's, that run all the time)."""
    import time
    time.sleep(0.03)
    before = _running_threads()
    action()
    time.sleep(wait)              # leaves the cores to the other threads: one that is about to sleep gets there
    return _running_threads() - before


@pytest.mark.skipif(not ft._GOMP, reason="torch's OpenMP runtime here is not GNU OpenMP (libgomp): its threads "
                    "are not put to sleep by fastrnn.torch")
@pytest.mark.skipif(ft._CPUS < 2, reason="one CPU: torch runs no OpenMP worker threads to put to sleep")
@pytest.mark.skipif(not ft._SPINNING, reason="OMP_WAIT_POLICY / GOMP_SPINCOUNT make torch's threads sleep at once")
def test_quieting_torchs_threads_puts_them_to_sleep_at_once():
    """After a torch.mm on every CPU torch's worker threads go on running (libgomp spins 300 000
    iterations, 8.5 ms measured, about 3 by libgomp's estimate); after ``_quiet_torch`` none is running
    1 ms later."""
    a = torch.randn(512, 512)
    with _torch_on_every_cpu():
        spinning = [len(_running_threads_after(lambda: torch.mm(a, a), 1e-3)) for _ in range(7)]
        quieted = [len(_running_threads_after(lambda: (torch.mm(a, a), ft._quiet_torch()), 1e-3)) for _ in range(7)]
        assert torch.get_num_threads() == ft._CPUS
    assert sorted(spinning)[3] >= 1, spinning
    assert sorted(quieted)[3] == 0, quieted


@pytest.fixture
def quieting(monkeypatch):
    """fastrnn.torch's quieting path taken by every call, however small: torch's threads counted as
    spinning under GNU OpenMP, every call paying on parallel threads, no least size for quieting.
    Yields the list that gets one entry per ``_quiet_torch`` call."""
    from fastrnn.runtime import dispatch
    if fastrnn.get_threads() < 2:
        pytest.skip("Numba runs one thread here: no call goes parallel, so none puts torch's pool to sleep")
    monkeypatch.setattr(ft, "_SPINNING", True)
    monkeypatch.setattr(ft, "_GOMP", True)
    monkeypatch.setitem(dispatch.PAYS, "batch", (1, 1))      # these small calls would not pay otherwise
    monkeypatch.setitem(dispatch.PAYS, "batch tiles", (1, 1))
    monkeypatch.setattr(dispatch, "TILE_ROWS", 1)            # B=4 in two blocks too
    monkeypatch.setitem(dispatch.PAYS, "rows", (0, 1))
    monkeypatch.setattr(dispatch, "QUIET_MIN_WORK", 0)
    monkeypatch.setattr(ft, "_cpu_left", lambda: False)          # every CPU held: torch's threads may spin
    quiet, calls = ft._quiet_torch, []
    monkeypatch.setattr(ft, "_quiet_torch", lambda: (calls.append(1), quiet()))
    yield calls


@pytest.mark.parametrize("kind, options", BORROWED,
                         ids=[f"{k}-" + (",".join(f"{a}={b}" for a, b in o.items()) or "defaults") for k, o in BORROWED])
def test_calls_that_put_torchs_threads_to_sleep_equal_torch(kind, options, monkeypatch, quieting):
    """A call that pays on parallel threads beside torch's spinning pool first puts that pool to sleep
    (``_quiet_torch``, once in each forward and backward call) and then runs fastrnn's own parallel
    kernels, lending torch no product: outputs, final states and every gradient as torch.nn's in
    float64, torch's thread count unchanged."""
    calls = quieting
    lent = []
    monkeypatch.setattr(ft, "_torch_gemm", lambda a, b, out: (lent.append(1), np.matmul(a, b, out=out)))
    ours, _ = _equals_torch_in_float64_on(ft._CPUS, kind, options)
    calls_each = ours.num_layers * (2 if ours.bidirectional else 1)
    assert len(calls) == 2 * calls_each, (len(calls), calls_each)       # forward and backward, each layer
    assert lent == []


def test_putting_torchs_threads_to_sleep_first_under_inference_mode_leaves_training_working(monkeypatch,
                                                                                           quieting):
    """The quieting operation's buffer, made on first use, is a normal tensor even when that use is
    under torch.inference_mode: a later training step (outside it) writes it without error, and both
    calls equal torch.nn's."""
    monkeypatch.setattr(ft, "_WAKE", None)
    with _torch_on_every_cpu():
        ref, ours = pair("LSTM", torch.float64)
        x, hx = inputs(ours, "LSTM", torch.float64)
        with torch.inference_mode():
            assert rel(ours(x, hx)[0], ref(x, hx)[0]) <= 1e-12
        assert quieting and ft._WAKE is not None and not ft._WAKE.is_inference()
        for k, (a, b) in enumerate(zip(run(ours, x, hx), run(ref, x, hx))):
            assert rel(a, b) <= 1e-10, (k, rel(a, b))


def test_beside_torch_runs_plain_fastrnn_calls_as_the_operators_run_theirs(quieting):
    """``fastrnn.torch.beside_torch``: inside it fastrnn takes at most torch's thread count, a call that
    pays on parallel threads puts torch's spinning threads to sleep first (once in the block), the
    gradients are those of the same call outside, and Numba's count comes back on exit."""
    import numba
    calls = quieting
    rng = np.random.default_rng(4)
    net = fastrnn.LSTM(0.4 * rng.standard_normal((12, 3)), 0.4 * rng.standard_normal((12, 3)), np.zeros(12),
                       np.zeros(12), W_out=rng.standard_normal((2, 3)), readout="linear")
    x, d = rng.standard_normal((9, 4, 3)), rng.standard_normal((9, 4, 2))
    before = numba.get_num_threads()
    with _torch_threads(1):
        loss, grads = fastrnn.bptt(net, x, d)        # torch on one thread: its pool holds no other core
        with ft.beside_torch():
            assert fastrnn.get_threads() == 1
        torch.set_num_threads(ft._CPUS)
        with ft.beside_torch():
            assert fastrnn.get_threads() == min(ft._CPUS, before)
            inside_loss, inside = fastrnn.bptt(net, x, d)
            fastrnn.bptt(net, x, d)
    assert numba.get_num_threads() == before
    assert calls == [1]
    assert abs(inside_loss - loss) <= 1e-12 * abs(loss)
    for name, g in grads.items():
        np.testing.assert_allclose(inside[name], g, rtol=1e-10, atol=1e-13, err_msg=name)


def _plain_problem():
    rng = np.random.default_rng(5)
    net = fastrnn.LSTM(0.4 * rng.standard_normal((12, 3)), 0.4 * rng.standard_normal((12, 3)), np.zeros(12),
                       np.zeros(12), W_out=rng.standard_normal((2, 3)), readout="linear")
    return net, rng.standard_normal((9, 4, 3)), rng.standard_normal((9, 4, 2))


def test_a_plain_call_that_pays_on_parallel_threads_puts_torchs_spinning_threads_to_sleep_once(quieting):
    """fastrnn called on arrays (outside fastrnn.torch's operators) in a process that has imported
    torch: a call that pays on parallel threads first puts torch's spinning threads to sleep, once per
    call though its forward pass and its sweep both run parallel, and its results are those of the
    same call that leaves them alone. Not with torch on fewer threads than CPUs, not on one fastrnn
    thread, not for calls under QUIET_MIN_WORK, and inside ``beside_torch`` only by its own rule
    (once in the block)."""
    from fastrnn.runtime import dispatch
    calls = quieting
    net, x, d = _plain_problem()
    with _torch_on_every_cpu():
        loss, grads = fastrnn.bptt(net, x, d)
        assert calls == [1]
        y = fastrnn.forward(net, x).y
        assert calls == [1, 1]
        dispatch._NO_BRIDGE.append("left alone")       # as before the rule: torch's threads untouched
        try:
            alone_loss, alone = fastrnn.bptt(net, x, d)
            alone_y = fastrnn.forward(net, x).y
        finally:
            dispatch._NO_BRIDGE.pop()
        assert calls == [1, 1]
        with fastrnn.threads(1):
            fastrnn.bptt(net, x, d)
        with ft.beside_torch():
            fastrnn.bptt(net, x, d)
            fastrnn.bptt(net, x, d)
        assert calls == [1, 1, 1]
        torch.set_num_threads(1)
        fastrnn.bptt(net, x, d)
        torch.set_num_threads(ft._CPUS)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(dispatch, "QUIET_MIN_WORK", 10 ** 12)
            fastrnn.bptt(net, x, d)
        assert calls == [1, 1, 1]
    assert loss == alone_loss and np.array_equal(y, alone_y)
    for name, g in grads.items():
        assert np.array_equal(g, alone[name]), name



def test_the_quieting_rule_counts_a_calls_kernels_together(quieting, monkeypatch):
    """A plain call whose kernels each stay under QUIET_MIN_WORK but together reach it puts torch's
    spinning threads to sleep, once; a call whose kernels together stay under it does not; inside
    ``beside_torch`` the same. ``call_work``
    counts two multiply-adds a weight, batch row and step for each pass (forward 1, bptt 3)."""
    from fastrnn import checks
    from fastrnn.runtime import dispatch
    calls = quieting
    net, x, d = _plain_problem()
    T, B, m = x.shape
    n = net.n_hidden
    W = checks.problem(net, x, d).W
    weights = sum(w.size for w in W.values())
    assert dispatch.call_work(W, T, B, 3) == 3 * 2 * T * B * weights
    largest_kernel = max(8 * B * n * n * T, 2 * T * B * 4 * n * (m + n))     # forward and sweep, weight gradients
    threshold = (largest_kernel + dispatch.call_work(W, T, B, 3)) // 2
    assert largest_kernel < threshold < dispatch.call_work(W, T, B, 3)
    assert dispatch.call_work(W, T, B, 1) < threshold
    with _torch_on_every_cpu():
        monkeypatch.setattr(dispatch, "QUIET_MIN_WORK", threshold)
        loss, grads = fastrnn.bptt(net, x, d)
        assert calls == [1]
        fastrnn.forward(net, x)                                 # the forward pass alone stays under
        assert calls == [1]
        monkeypatch.setattr(dispatch, "QUIET_MIN_WORK", dispatch.call_work(W, T, B, 3) + 1)
        again_loss, again = fastrnn.bptt(net, x, d)
        assert calls == [1]
        with ft.beside_torch():                                 # fastrnn.torch's own rule counts the same way
            fastrnn.bptt(net, x, d)
            assert calls == [1]
        monkeypatch.setattr(dispatch, "QUIET_MIN_WORK", threshold)
        with ft.beside_torch():
            fastrnn.bptt(net, x, d)
            assert calls == [1, 1]
    assert loss == again_loss
    for name, g in grads.items():
        assert np.array_equal(g, again[name]), name


def test_a_plain_call_leaves_torchs_threads_alone_where_a_cpu_is_left(quieting, monkeypatch):
    """With a CPU left beside the calling thread and every thread ready to run, no pool is spinning: a plain
    call does not wake torch's sleeping pool to put it to sleep again, and its results are the same."""
    calls = quieting
    net, x, d = _plain_problem()
    with _torch_on_every_cpu():
        loss, grads = fastrnn.bptt(net, x, d)
        assert calls == [1]
        monkeypatch.setattr(ft, "_cpu_left", lambda: True)
        again_loss, again = fastrnn.bptt(net, x, d)
        assert calls == [1]
    assert again_loss == loss
    for name, g in grads.items():
        assert np.array_equal(g, again[name]), name


def test_a_cpu_is_left_where_fewer_threads_are_ready_to_run_than_cpus(monkeypatch):
    from fastrnn.runtime import overlap
    monkeypatch.setattr(overlap, "_cpus", lambda: 4)
    for count, left in ((1, True), (3, True), (4, False), (9, False), (None, False)):   # None: no count to read
        monkeypatch.setattr(overlap, "_runnable", lambda count=count: count)
        assert ft._cpu_left() is left, count


def test_a_plain_call_whose_quieting_fails_runs_on_and_says_so_once(quieting, monkeypatch):
    """If the quieting operation raises, the plain call still returns the gradients it returns without
    the rule, one RuntimeWarning names the failure, and later calls no longer try."""
    from fastrnn.runtime import dispatch
    monkeypatch.setattr(dispatch, "_NO_BRIDGE", [])
    tries = []

    def broken():
        tries.append(1)
        raise RuntimeError("no pool here")
    monkeypatch.setattr(ft, "_quiet_torch", broken)
    net, x, d = _plain_problem()
    with _torch_on_every_cpu():
        with pytest.warns(RuntimeWarning, match="no pool here"):
            loss, grads = fastrnn.bptt(net, x, d)
        again_loss, again = fastrnn.bptt(net, x, d)       # no second try, no second warning (warnings are errors)
    assert tries == [1] and len(dispatch._NO_BRIDGE) == 1
    assert loss == again_loss
    for name, g in grads.items():
        assert np.array_equal(g, again[name]), name


def test_gradient_tensors_held_from_earlier_steps_keep_their_values():
    """The layer's weight gradients come from memory fastrnn recycles once nothing refers to it
    (``runtime.workspace.result``, from 256 KB): .grad tensors kept from earlier steps (set to None between
    steps, so each step makes new ones) and a clipped, accumulated .grad stay as they were, and each step's
    equals torch.nn's."""
    torch.manual_seed(5)
    ref = torch.nn.LSTM(6, 96, dtype=torch.float64)          # weight_hh's gradient: 384 x 96 float64, 288 KB
    torch.manual_seed(5)
    ours = ft.LSTM(6, 96, dtype=torch.float64)
    g = torch.Generator().manual_seed(6)
    xs = [torch.randn(9, 3, 6, generator=g, dtype=torch.float64) for _ in range(4)]
    held = []
    for x in xs:
        for module in (ref, ours):
            module.zero_grad(set_to_none=True)
            (module(x)[0] ** 2).sum().backward()
        grads = {name: p.grad for name, p in ours.named_parameters()}
        for name, p in ref.named_parameters():
            torch.testing.assert_close(grads[name], p.grad, rtol=1e-10, atol=1e-12)
        held.append((grads, {k: v.clone() for k, v in grads.items()}))
    for grads, copy in held:
        for k in grads:
            assert torch.equal(grads[k], copy[k]), k
    # accumulated across two backward passes, then scaled in place by clipping: the memory is the .grad's own
    ours.zero_grad(set_to_none=True)
    (ours(xs[0])[0] ** 2).sum().backward()
    (ours(xs[1])[0] ** 2).sum().backward()
    total = {k: v.clone() for k, v in ((n, p.grad) for n, p in ours.named_parameters())}
    torch.nn.utils.clip_grad_norm_(ours.parameters(), 1e-3)
    clipped = {n: p.grad.clone() for n, p in ours.named_parameters()}
    (ours(xs[2])[0] ** 2).sum().backward()          # a third pass adds into .grad: no earlier memory reused
    for n, p in ours.named_parameters():
        step = held[2][1][n]
        torch.testing.assert_close(p.grad, clipped[n] + step, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(total[n], held[0][1][n] + held[1][1][n], rtol=1e-10, atol=1e-12)
