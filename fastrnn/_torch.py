"""Moving weights between fastrnn and PyTorch. torch is imported only inside these functions."""
from collections.abc import Mapping

import numpy as np

from ._errors import OptionError


def _torch():
    try:
        import torch
    except ImportError:
        raise OptionError("PyTorch is not installed: pip install torch (or fastrnn's 'bench' extra)") from None
    return torch


def _state(obj, kind):
    """(state_dict as numpy arrays, module or None) for a torch module of ``kind`` or a state_dict."""
    torch = _torch()
    cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM}[kind]
    module = None
    if isinstance(obj, torch.nn.Module):
        if not isinstance(obj, cls):
            raise OptionError(f"expected a torch.nn.{cls.__name__}, got {type(obj).__name__}")
        if obj.num_layers != 1 or obj.bidirectional or getattr(obj, "proj_size", 0):
            raise OptionError(f"fastrnn holds one unidirectional layer; this torch.nn.{cls.__name__} has "
                              f"num_layers={obj.num_layers}, bidirectional={obj.bidirectional}"
                              + (f", proj_size={obj.proj_size}" if getattr(obj, "proj_size", 0) else ""))
        module, obj = obj, obj.state_dict()
    if not isinstance(obj, Mapping):
        raise OptionError(f"expected a torch.nn.{cls.__name__} or its state_dict, got {type(obj).__name__}")
    extra = sorted(k for k in obj if not k.endswith("_l0"))
    if extra:
        raise OptionError(f"the state_dict has keys of more layers or directions ({', '.join(extra)}); "
                          "fastrnn holds one unidirectional layer")
    for key in ("weight_ih_l0", "weight_hh_l0"):
        if key not in obj:
            raise OptionError(f"the state_dict has no {key!r}: pass a torch.nn.{cls.__name__} state_dict")
    arrays = {k: v.detach().cpu().numpy().copy() if hasattr(v, "detach") else np.array(v) for k, v in obj.items()}
    return arrays, module


def _biases(arrays, rows, dtype):
    zero = np.zeros(rows, dtype=dtype)
    return arrays.get("bias_ih_l0", zero), arrays.get("bias_hh_l0", zero)


def rnn_from_torch(cls, obj, activation=None, **readout):
    arrays, module = _state(obj, "rnn")
    W_in, W_rec = arrays["weight_ih_l0"], arrays["weight_hh_l0"]
    b_ih, b_hh = _biases(arrays, W_rec.shape[0], W_rec.dtype)
    if module is not None:
        if activation is not None and activation != module.nonlinearity:
            raise OptionError(f"activation={activation!r} but the module's nonlinearity is {module.nonlinearity!r}")
        activation = module.nonlinearity
    return cls(W_in, W_rec, b_ih + b_hh, activation=activation or "tanh", **readout)


def lstm_from_torch(cls, obj, **readout):
    arrays, _ = _state(obj, "lstm")
    W_ih, W_hh = arrays["weight_ih_l0"], arrays["weight_hh_l0"]
    b_ih, b_hh = _biases(arrays, W_hh.shape[0], W_hh.dtype)
    readout.setdefault("readout", "units" if "W_out" not in readout else "linear")
    return cls(W_ih, W_hh, b_ih, b_hh, **readout)


def state_dict(net):
    """The net's recurrent layer as a torch state_dict (``*_l0`` keys; the readout is not part of it)."""
    torch = _torch()
    t = torch.from_numpy
    if net.cell == "rnn":
        return {"weight_ih_l0": t(net.W_in.copy()), "weight_hh_l0": t(net.W_rec.copy()),
                "bias_ih_l0": t(net.b.copy()), "bias_hh_l0": t(np.zeros_like(net.b))}
    return {"weight_ih_l0": t(net.W_ih.copy()), "weight_hh_l0": t(net.W_hh.copy()),
            "bias_ih_l0": t(net.b_ih.copy()), "bias_hh_l0": t(net.b_hh.copy())}
