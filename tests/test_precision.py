"""Inference precisions: bf16 and bf16x3 against fp32, the model left untouched, and the automatic choice."""
import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from isegm.inference import precision
from isegm.inference.clicker import Click, Clicker
from isegm.inference.predictors import get_predictor
from isegm.model import GraCoModel

from helpers import randomize_lora, tiny_config

PRODUCT_OPS = ("aten.mm", "aten.addmm", "aten.bmm", "aten.baddbmm", "aten.convolution", "aten.mkldnn_convolution",
               "aten._convolution", "aten.linear", "aten.matmul")


class ProductDtypes(TorchDispatchMode):
    """Record the dtypes of the operands of every matrix product and convolution that reaches the kernels."""

    def __init__(self):
        super().__init__()
        self.seen = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func.overloadpacket)
        if name in PRODUCT_OPS:
            self.seen.update(str(a.dtype) for a in args[:3] if isinstance(a, torch.Tensor) and a.ndim >= 2)
        return func(*args, **(kwargs or {}))


@pytest.fixture
def model():
    torch.manual_seed(0)
    net = GraCoModel(tiny_config(depth=4))
    randomize_lora(net)
    net.requires_grad_(False)  # as load_is_model: the cast cache of autocast would not help here
    return net.eval()


def predict(model, image, mode, record=None):
    predictor = get_predictor(model, "NoBRS", "cpu", with_flip=True,
                              zoom_in_params={"skip_clicks": -1, "target_size": (224, 224)},
                              predictor_params={"precision": mode})
    predictor.set_input_image(image)
    clicker, out = Clicker(), []
    for positive, coords in ((True, (60, 80)), (False, (20, 30)), (True, (70, 100))):
        clicker.add_click(Click(positive, coords))
        if record is None:
            out.append(predictor.get_prediction(clicker, gra=0.4))
        else:
            with record:
                out.append(predictor.get_prediction(clicker, gra=0.4))
    return predictor, np.stack(out)


def test_bf16_and_bf16x3_against_fp32(model, rgb_image):
    dtypes = {}
    probs = {}
    for mode in ("fp32", "bf16", "bf16x3"):
        record = ProductDtypes()
        predictor, probs[mode] = predict(model, rgb_image, mode, record)
        assert predictor.precision == mode
        dtypes[mode] = record.seen
    assert dtypes["fp32"] == {"torch.float32"}
    assert dtypes["bf16"] == {"torch.bfloat16"}, "every product of the bf16 mode sees bfloat16 operands"
    assert dtypes["bf16x3"] == {"torch.bfloat16"}, "every product of the bf16x3 mode is split into bfloat16 parts"
    err_bf16 = np.abs(probs["bf16"] - probs["fp32"]).max()
    err_x3 = np.abs(probs["bf16x3"] - probs["fp32"]).max()
    assert 1e-4 < err_bf16 < 0.1, "bf16 is not float32 (the products really ran in bfloat16) and stays usable"
    assert err_x3 < 1e-3, "bf16x3 within the parity bound"
    assert err_x3 * 10 < err_bf16, f"bf16x3 error {err_x3:.1e} not 10x below bf16 error {err_bf16:.1e}"


def test_the_callers_model_is_not_changed(model, rgb_image):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pointers = {k: v.data_ptr() for k, v in model.state_dict().items()}
    for mode in ("bf16", "bf16x3"):
        predict(model, rgb_image, mode)
    after = model.state_dict()
    assert after.keys() == before.keys()
    for key, value in before.items():
        assert after[key].dtype == value.dtype and after[key].data_ptr() == pointers[key], key
        assert torch.equal(after[key], value), key
    _, fp32_after = predict(model, rgb_image, "fp32")
    fresh = GraCoModel(tiny_config(depth=4))
    fresh.load_state_dict(before)
    _, fp32_fresh = predict(fresh.eval(), rgb_image, "fp32")
    np.testing.assert_array_equal(fp32_after, fp32_fresh)


def test_converted_weights_are_made_once_per_model_and_follow_weight_changes(model, rgb_image):
    predict(model, rgb_image, "bf16")
    cache = precision.weight_cache(model, "bf16")
    size = cache.nbytes()
    assert 0 < size < sum(p.numel() for p in model.parameters()) * 2 * 1.2  # bfloat16 copies, not more
    _, first = predict(model, rgb_image, "bf16")  # a second predictor reuses them
    assert precision.weight_cache(model, "bf16") is cache and cache.nbytes() == size
    with torch.no_grad():
        model.head.conv_seg.bias.add_(3.0)  # changed in place: converted again
    _, shifted = predict(model, rgb_image, "bf16")
    assert shifted.mean() > first.mean() + 0.05


def test_phrase_path_stays_float32(model, rgb_image):
    encoder = model.phrase_encoder
    seen = []

    class Text(torch.nn.Module):  # a stand-in text tower: records what it is given and computes in float32
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(77, 512)

        def forward(self, tokens):
            out = self.proj(tokens.float())
            seen.append(out.dtype)
            return out

    encoder.text = Text()
    predictor = get_predictor(model, "NoBRS", "cpu", zoom_in_params={"skip_clicks": -1, "target_size": (224, 224)},
                              predictor_params={"precision": "bf16"})
    predictor.set_input_image(rgb_image)
    clicker = Clicker()
    clicker.add_click(Click(True, (60, 80)))
    predictor.get_prediction(clicker, phrase="head")
    assert seen == [torch.float32]
    assert all(v.dtype == torch.float32 for v in encoder._features.values())
    assert encoder.text.proj.weight not in precision.weight_cache(model, "bf16")._entries
    assert encoder.phrase2gra_proj.weight not in precision.weight_cache(model, "bf16")._entries


@pytest.mark.parametrize("layer, shape", [
    (torch.nn.Conv2d(24, 40, 1), (2, 24, 9, 7)),
    (torch.nn.Conv2d(24, 40, 2, stride=2), (2, 24, 8, 6)),
    (torch.nn.Conv2d(3, 32, 16, stride=16), (2, 3, 64, 48)),
    (torch.nn.ConvTranspose2d(24, 12, 2, stride=2), (2, 24, 5, 7)),
    (torch.nn.Linear(48, 72), (2, 5, 48)),
])
def test_bf16x3_layers_match_float32(layer, shape):
    torch.manual_seed(1)  # the layer's weights too: they were drawn at collection, from whatever state the RNG had
    layer.reset_parameters()
    x = torch.randn(shape)
    layer.requires_grad_(False)
    exact = layer.double()(x.double())
    layer.float()
    with torch.inference_mode():
        with precision.reduced_precision(layer, "bf16x3"):
            split = layer(x)
        with precision.reduced_precision(layer, "bf16"):
            low = layer(x).float()
    assert split.dtype == torch.float32 and split.shape == exact.shape
    scale = exact.abs().max().item()
    err_x3 = (split.double() - exact).abs().max().item() / scale
    err_bf16 = (low.double() - exact).abs().max().item() / scale
    assert err_x3 < 2e-5 and err_x3 * 50 < err_bf16


def test_matmul_bf16x3_is_near_float32():
    torch.manual_seed(2)
    a, b = torch.randn(300, 500), torch.randn(500, 200)
    exact = a.double() @ b.double()
    split = precision.matmul_bf16x3(precision.split_bf16(a), precision.split_bf16(b))
    plain = (a.bfloat16() @ b.bfloat16()).double()
    scale = exact.abs().max().item()
    err_x3 = (split.double() - exact).abs().max().item() / scale
    assert err_x3 < 5e-5 and err_x3 * 100 < (plain - exact).abs().max().item() / scale


@pytest.fixture
def fresh_choice():
    precision.choose_precision.cache_clear()
    yield
    precision.choose_precision.cache_clear()


def test_auto_falls_back_to_fp32_without_bfloat16(model, monkeypatch, fresh_choice):
    monkeypatch.setattr(precision, "bf16_matmul_support", lambda device: (False, "simulated: no AVX-512-BF16/AMX"))
    monkeypatch.setattr(precision, "measure_bf16_speedup", lambda device: pytest.fail("measured without support"))
    predictor = get_predictor(model, "NoBRS", "cpu", predictor_params={"precision": "auto"})
    assert predictor.precision == "fp32"


@pytest.mark.parametrize("speedup, expected", [(4.2, "bf16"), (1.05, "fp32")])
def test_auto_takes_bf16_only_when_measured_faster(model, monkeypatch, fresh_choice, speedup, expected):
    monkeypatch.setattr(precision, "bf16_matmul_support", lambda device: (True, "simulated"))
    monkeypatch.setattr(precision, "measure_bf16_speedup", lambda device: speedup)
    assert get_predictor(model, "NoBRS", "cpu", predictor_params={"precision": "auto"}).precision == expected


def test_cpu_support_follows_the_cpu_flags(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2", "avx512f"}))
    assert not precision.bf16_matmul_support(cpu)[0]
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx512f", "amx_bf16", "amx_tile"}))
    supported, reason = precision.bf16_matmul_support(cpu)
    assert supported == torch.backends.mkldnn.is_available() and ("amx_bf16" in reason or not supported)


def test_start_up_measurement_stops_at_its_time_budget(monkeypatch):
    """The measurement runs its rounds until the budget is spent (a clock in the test, not the wall clock)."""
    calls, now, step = [], [0.0], [1e-6]
    real_linear = precision.F.linear
    monkeypatch.setattr(precision.F, "linear", lambda a, b: calls.append(a.dtype) or real_linear(a, b))

    def clock():
        now[0] += step[0]
        return now[0]
    monkeypatch.setattr(precision.time, "perf_counter", clock)
    assert precision.measure_bf16_speedup(torch.device("cpu"), repeats=8, budget_s=0.4) > 0
    assert len(calls) == 2 * 9, "a clock far from the budget: every round runs"
    calls.clear()
    step[0] = 0.1
    precision.measure_bf16_speedup(torch.device("cpu"), repeats=8, budget_s=0.4)
    assert 2 * 2 <= len(calls) < 2 * 9, "the budget ends the rounds early (after the warm-up and one timed round)"
    assert calls[:2] == [torch.float32, torch.bfloat16]


def test_unknown_precision_is_refused(model):
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, bf16x3, auto"):
        get_predictor(model, "NoBRS", "cpu", predictor_params={"precision": "fp16"})
