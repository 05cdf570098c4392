"""Inference precisions: bf16 against fp32, the fused bfloat16 CPU kernels, the model left untouched, and the
automatic choice on CPUs and (with faked device properties) on CUDA devices."""
import gc
import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from isegm.inference import precision
from isegm.inference.clicker import Click, Clicker
from isegm.inference.predictors import get_predictor
from isegm.model import GraCoModel, fused

from helpers import randomize_lora, tiny_config

PRODUCT_OPS = ("aten.mm", "aten.addmm", "aten.bmm", "aten.baddbmm", "aten.convolution", "aten.mkldnn_convolution",
               "aten._convolution", "aten.linear", "aten.matmul", "mkldnn._linear_pointwise")


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


def test_bf16_against_fp32(model, rgb_image):
    dtypes = {}
    probs = {}
    for mode in ("fp32", "bf16"):
        record = ProductDtypes()
        predictor, probs[mode] = predict(model, rgb_image, mode, record)
        assert predictor.precision == mode
        dtypes[mode] = record.seen
    assert dtypes["fp32"] == {"torch.float32"}
    assert dtypes["bf16"] == {"torch.bfloat16"}, "every product of the bf16 mode sees bfloat16 operands"
    err_bf16 = np.abs(probs["bf16"] - probs["fp32"]).max()
    assert 1e-4 < err_bf16 < 0.1, "bf16 is not float32 (the products really ran in bfloat16) and stays usable"
    flipped = ((probs["bf16"] > 0.5) != (probs["fp32"] > 0.5)).mean()
    assert flipped < 0.005, f"{100 * flipped:.2f}% of the pixels change side of 0.5"


@pytest.mark.parametrize("batch, size", [(1, 224), (2, 224), (20, 224), (2, 336)])
def test_bf16_forward_matches_fp32_for_every_input_size_and_batch(model, batch, size):
    """The tools' shapes (zoom-in crop, flip pair, the strip's ten granularities with flip, a larger crop):
    bfloat16 logits stay within the mode's tolerance of float32 and are the same whatever the batch."""
    generator = torch.Generator().manual_seed(3)
    image = torch.rand(batch, 4, size, size, generator=generator)
    points = torch.tensor([[[size / 2, size / 3, 0], [size / 4, size / 2, 1]]] * batch)
    gra = torch.linspace(0.1, 1.0, batch)
    with torch.inference_mode():
        exact = model(image, points, gra)["instances"].sigmoid()
        with precision.reduced_precision(model, "bf16"):
            low = model(image, points, gra)["instances"]
            single = model(image[-1:], points[-1:], gra[-1:])["instances"]
    assert low.dtype == torch.float32 and low.shape == exact.shape
    assert (low.sigmoid() - exact).abs().max() < 0.1
    assert (single.sigmoid() - low[-1:].sigmoid()).abs().max() < 2e-2, "the batch does not change the result"


def test_the_callers_model_is_not_changed(model, rgb_image):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pointers = {k: v.data_ptr() for k, v in model.state_dict().items()}
    predict(model, rgb_image, "bf16")
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


def converted_count():
    gc.collect()
    return len(fused._BF16_WEIGHTS) + len(fused._PACKED)


def test_converted_weights_are_made_once_per_model_and_follow_weight_changes(model, rgb_image):
    count, size = converted_count(), fused.cached_nbytes()
    predict(model, rgb_image, "bf16")
    made, size = converted_count() - count, fused.cached_nbytes() - size
    assert made > 0 and 0 < size < sum(p.numel() for p in model.parameters()) * 2 * 1.2  # bfloat16, not more
    _, first = predict(model, rgb_image, "bf16")  # a second predictor reuses them
    assert converted_count() - count == made
    with torch.no_grad():
        model.head.conv_seg.bias.add_(3.0)  # changed in place: converted again
    _, shifted = predict(model, rgb_image, "bf16")
    assert shifted.mean() > first.mean() + 0.05
    with torch.no_grad():
        for block in model.backbone.blocks:
            block.mlp.fc2.weight.mul_(0.0)  # the packed weights of the fused linears
            block.attn.proj.bias.add_(1.0)
    assert not np.allclose(predict(model, rgb_image, "bf16")[1], shifted, atol=1e-3)
    assert converted_count() - count == made, "the old copies went with their versions"


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
    assert encoder.text.proj.weight not in fused._BF16_WEIGHTS
    assert encoder.phrase2gra_proj.weight not in fused._BF16_WEIGHTS


@pytest.mark.parametrize("layer, shape", [
    (torch.nn.Conv2d(24, 40, 1), (2, 24, 9, 7)),
    (torch.nn.Conv2d(24, 40, 2, stride=2), (2, 24, 8, 6)),
    (torch.nn.Conv2d(3, 32, 16, stride=16), (2, 3, 64, 48)),
    (torch.nn.ConvTranspose2d(24, 12, 2, stride=2), (2, 24, 5, 7)),
    (torch.nn.Linear(48, 72), (2, 5, 48)),
    (torch.nn.Embedding(10, 48), (2, 5)),
])
def test_bf16_layers_are_close_to_float32(layer, shape):
    torch.manual_seed(1)  # the layer's weights too: they were drawn at collection, from whatever state the RNG had
    layer.reset_parameters()
    x = torch.randn(shape) if not isinstance(layer, torch.nn.Embedding) else torch.randint(0, 10, shape)
    layer.requires_grad_(False)
    exact = layer.double()(x.double() if x.is_floating_point() else x)
    layer.float()
    with torch.inference_mode(), precision.reduced_precision(layer, "bf16"):
        low = layer(x)
    assert low.dtype == torch.bfloat16 and low.shape == exact.shape
    assert 1e-5 < (low.double() - exact).abs().max().item() / exact.abs().max().item() < 2e-2


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
    for mode in ("fp16", "bf16x3"):  # the split-bfloat16 mode was removed (slower than fp32)
        with pytest.raises(ValueError, match="precision must be one of fp32, bf16, auto"):
            get_predictor(model, "NoBRS", "cpu", predictor_params={"precision": mode})


@pytest.mark.skipif(not torch.ops.mkldnn._is_mkldnn_bf16_supported(),
                    reason="this CPU's oneDNN has no bfloat16 products (the fused path is not taken here)")
@pytest.mark.parametrize("gelu, residual", [(False, False), (True, False), (False, True)])
def test_fused_bf16_linear_matches_the_plain_calls(gelu, residual):
    torch.manual_seed(4)
    layer = torch.nn.Linear(96, 160)
    x = torch.randn(3, 50, 96).bfloat16()
    skip = torch.randn(3, 50, 160).bfloat16() if residual else None
    with torch.inference_mode():
        assert fused.fused_cpu(x)
        out = fused.linear(x, layer.weight, layer.bias, gelu=gelu, residual=skip)
        reference = F.linear(x.double(), layer.weight.double(), layer.bias.double())
        reference = F.gelu(reference) if gelu else reference
        reference = reference + skip.double() if residual else reference
    assert out.dtype == torch.bfloat16 and out.shape == reference.shape
    assert (out.double() - reference).abs().max() <= 2e-2 * reference.abs().max()


def test_fused_path_is_only_for_bfloat16_inference_on_the_cpu():
    x = torch.zeros(2, 3)
    assert not fused.fused_cpu(x) and not fused.fused_cpu(x.bfloat16()), "not with gradients on"
    with torch.inference_mode():
        assert not fused.fused_cpu(x), "not for float32"
        assert fused.fused_cpu(x.bfloat16()) == torch.ops.mkldnn._is_mkldnn_bf16_supported()


class FakeCuda:
    """Device properties of a machine with CUDA devices (CI has none): {index: (name, capability)}."""

    def __init__(self, monkeypatch, devices, current=0):
        self.devices, self.current = devices, current
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: devices[self.index(d)][1])
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: devices[self.index(d)][0])
        monkeypatch.setattr(torch.cuda, "current_device", lambda: self.current)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: pytest.fail("counts emulation"))
        monkeypatch.setattr(precision, "measure_bf16_speedup", lambda device: pytest.fail("measured on a GPU"))

    def index(self, device):
        device = torch.device("cuda") if device is None else torch.device(device)
        return self.current if device.index is None else device.index


@pytest.mark.parametrize("name, capability, expected", [
    ("Tesla V100-SXM2-16GB", (7, 0), "fp32"), ("Tesla T4", (7, 5), "fp32"), ("NVIDIA A100-SXM4-40GB", (8, 0), "bf16"),
    ("NVIDIA GeForce RTX 3090", (8, 6), "bf16"), ("NVIDIA H200", (9, 0), "bf16")])
def test_auto_on_cuda_follows_the_compute_capability(monkeypatch, fresh_choice, caplog, name, capability, expected):
    FakeCuda(monkeypatch, {0: (name, capability)})
    with caplog.at_level(logging.INFO, logger=precision.__name__):
        assert precision.resolve_precision("auto", "cuda") == expected
    message = caplog.messages[-1]
    assert f"precision auto -> {expected} on cuda:0" in message and name in message
    assert f"compute capability {capability[0]}.{capability[1]}" in message
    assert ("emulate" in message) == (expected == "fp32")


def test_auto_on_cuda_is_decided_per_device(monkeypatch, fresh_choice):
    fake = FakeCuda(monkeypatch, {0: ("Tesla T4", (7, 5)), 1: ("NVIDIA A100-SXM4-80GB", (8, 0))}, current=1)
    assert precision.resolve_precision("auto", "cuda:0") == "fp32"
    assert precision.resolve_precision("auto", "cuda:1") == "bf16"
    assert precision.resolve_precision("auto", "cuda") == "bf16", "plain 'cuda' is the current device"
    fake.current = 0
    assert precision.resolve_precision("auto", "cuda") == "fp32"
