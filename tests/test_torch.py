"""fastrnn against PyTorch: torch.nn.RNN and torch.nn.LSTM forward passes and gradients, and
moving weights both ways. Skipped, with the reason, where torch is not installed."""
import numpy as np
import pytest

import fastrnn

from conftest import assert_close

torch = pytest.importorskip("torch", reason="PyTorch is not installed; the torch comparisons need it")


def test_lstm_equals_torch_forward_and_gradients():
    torch.manual_seed(0)
    T, B, m, n = 9, 3, 4, 6
    module = torch.nn.LSTM(m, n).double()
    net = fastrnn.LSTM.from_torch(module)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, m))
    d = rng.standard_normal((T, B, n))
    h0, c0 = 0.3 * rng.standard_normal((B, n)), 0.3 * rng.standard_normal((B, n))
    th0 = torch.tensor(h0[None], requires_grad=True)
    tc0 = torch.tensor(c0[None], requires_grad=True)
    out, (hn, cn) = module(torch.from_numpy(x), (th0, tc0))
    loss = 0.5 * ((out - torch.from_numpy(d)) ** 2).sum()
    loss.backward()
    h, y, c = fastrnn.forward(net, x, (h0, c0))
    assert_close(h[1:], out.detach().numpy(), np.float64, "h vs torch")
    assert_close(c[-1], cn.detach().numpy()[0], np.float64, "c_T vs torch")
    for algo in (fastrnn.bptt, fastrnn.rtrl):
        L, g = algo(net, x, d, h0=(h0, c0))
        assert_close(L, float(loss.detach()), np.float64, "loss vs torch")
        assert_close(g.W_ih, module.weight_ih_l0.grad.numpy(), np.float64, f"{algo.__name__} dW_ih vs torch")
        assert_close(g.W_hh, module.weight_hh_l0.grad.numpy(), np.float64, f"{algo.__name__} dW_hh vs torch")
        assert_close(g.b_ih, module.bias_ih_l0.grad.numpy(), np.float64, f"{algo.__name__} db_ih vs torch")
        assert_close(g.b_hh, module.bias_hh_l0.grad.numpy(), np.float64, f"{algo.__name__} db_hh vs torch")
    _, g = fastrnn.bptt(net, x, d, h0=(h0, c0))
    assert_close(g.h0, th0.grad.numpy()[0], np.float64, "dh0 vs torch")
    assert_close(g.c0, tc0.grad.numpy()[0], np.float64, "dc0 vs torch")


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_rnn_equals_torch(nonlinearity):
    torch.manual_seed(1)
    T, B, m, n = 8, 2, 3, 5
    module = torch.nn.RNN(m, n, nonlinearity=nonlinearity).double()
    net = fastrnn.RNN.from_torch(module)
    assert net.activation == nonlinearity
    rng = np.random.default_rng(1)
    x, d = rng.standard_normal((T, B, m)), rng.standard_normal((T, B, n))
    out, _ = module(torch.from_numpy(x))
    loss = 0.5 * ((out - torch.from_numpy(d)) ** 2).sum()
    loss.backward()
    assert_close(fastrnn.forward(net, x)[0][1:], out.detach().numpy(), np.float64, "h vs torch")
    L, g = fastrnn.bptt(net, x, d)
    assert_close(L, float(loss.detach()), np.float64, "loss vs torch")
    assert_close(g.W_in, module.weight_ih_l0.grad.numpy(), np.float64, "dW_in vs torch")
    assert_close(g.W_rec, module.weight_hh_l0.grad.numpy(), np.float64, "dW_rec vs torch")
    assert_close(g.b, module.bias_hh_l0.grad.numpy(), np.float64, "db vs torch")


def test_state_dict_round_trips():
    rnn = fastrnn.RNN.init(3, 4, 2, readout="linear", seed=2)
    lstm = fastrnn.LSTM.init(3, 4, 2, seed=2)
    for net, cls, module in [(rnn, fastrnn.RNN, torch.nn.RNN(3, 4).double()),
                             (lstm, fastrnn.LSTM, torch.nn.LSTM(3, 4).double())]:
        module.load_state_dict(net.to_torch_state_dict())
        x = np.random.default_rng(3).standard_normal((6, 2, 3))
        out = module(torch.from_numpy(x))[0].detach().numpy()
        assert_close(fastrnn.forward(net, x)[0][1:], out, np.float64, f"{cls.__name__} via state_dict")
        back = cls.from_torch(module.state_dict(), W_out=net.W_out, b_out=net.b_out, readout="linear")
        for name in ("W_out", "b_out"):
            np.testing.assert_array_equal(getattr(back, name), getattr(net, name))
        assert_close(fastrnn.forward(back, x)[1], fastrnn.forward(net, x)[1], np.float64, "round trip y")
    f32 = fastrnn.RNN.from_torch(torch.nn.RNN(2, 3))
    assert f32.dtype == np.float32


def test_from_torch_errors():
    with pytest.raises(fastrnn.OptionError, match="num_layers=2"):
        fastrnn.RNN.from_torch(torch.nn.RNN(2, 3, num_layers=2))
    with pytest.raises(fastrnn.OptionError, match="expected a torch.nn.LSTM, got RNN"):
        fastrnn.LSTM.from_torch(torch.nn.RNN(2, 3))
    with pytest.raises(fastrnn.OptionError, match="no 'weight_hh_l0'"):
        fastrnn.RNN.from_torch({"weight_ih_l0": torch.zeros(3, 2)})
    with pytest.raises(fastrnn.OptionError, match="activation='tanh' but the module's nonlinearity is 'relu'"):
        fastrnn.RNN.from_torch(torch.nn.RNN(2, 3, nonlinearity="relu"), activation="tanh")


@pytest.mark.slow
def test_ddp_with_gloo_equals_one_process_on_the_whole_batch():
    """examples/ddp_lstm.py: 2 processes on 127.0.0.1, fastrnn.torch.LSTM under DDP, float64."""
    import json
    import pathlib
    import subprocess
    import sys
    script = pathlib.Path(__file__).resolve().parents[1] / "examples" / "ddp_lstm.py"
    if not script.exists():
        pytest.skip("not running from a source checkout")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["max_relative_difference"] <= 1e-10, result
    assert result["without_averaging"] > 1e-3, result          # the comparison can fail
    assert result["parameters"] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]


def test_gru_from_torch_equals_torch_forward_and_gradients():
    torch.manual_seed(4)
    module = torch.nn.GRU(3, 5, dtype=torch.float64)
    net = fastrnn.GRU.from_torch(module)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((7, 2, 3))
    h0 = rng.standard_normal((2, 5))
    d = rng.standard_normal((7, 2, 5))
    xt = torch.from_numpy(x).requires_grad_(True)
    h0t = torch.from_numpy(h0)[None].requires_grad_(True)
    out, _ = module(xt, h0t)
    loss = 0.5 * ((out - torch.from_numpy(d)) ** 2).sum()
    loss.backward()
    L, g = fastrnn.bptt(net, x, d, h0=h0)
    assert_close(fastrnn.forward(net, x, h0).h[1:], out.detach().numpy(), np.float64, "h")
    assert_close(L, loss.item(), np.float64, "loss")
    for name, param in (("W_ih", module.weight_ih_l0), ("W_hh", module.weight_hh_l0),
                        ("b_ih", module.bias_ih_l0), ("b_hh", module.bias_hh_l0)):
        assert_close(g[name], param.grad.numpy(), np.float64, name)
    assert_close(g.h0, h0t.grad.numpy()[0], np.float64, "h0")
    back = torch.nn.GRU(3, 5, dtype=torch.float64)
    back.load_state_dict(net.to_torch_state_dict())
    for a, b in zip(back.state_dict().values(), module.state_dict().values()):
        assert torch.equal(a, b)
