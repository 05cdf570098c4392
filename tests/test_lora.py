import numpy as np
import torch
import torch.nn.functional as F

from isegm.inference.clicker import Click, Clicker
from isegm.inference.predictors import get_predictor
from isegm.model.lora import peft_to_published, published_to_peft
from isegm.signals import PHRASE, SLIDER
from isegm.model.checkpoint import convert_published_state, to_published_state

from helpers import randomize_lora, tiny_config
from isegm.model import GraCoModel


def published_lora_state(dim=64, rank=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {f"backbone.blocks.0.attn.qkv.{name}": torch.randn(shape, generator=g)
            for name, shape in [("lora_A", (2 * rank, dim)), ("lora_B", (2 * dim, rank)),
                                ("lora_A2", (2 * rank, dim)), ("lora_B2", (2 * dim, rank))]}


def test_published_layout_to_adapters_and_back():
    published = published_lora_state()
    adapters = published_to_peft(published, embed_dim=64, rank=8)
    assert sorted(adapters) == sorted(f"backbone.blocks.0.attn.{p}.lora_{m}.{b}.weight"
                                      for p in "qv" for m in "AB" for b in (SLIDER, PHRASE))
    a = published["backbone.blocks.0.attn.qkv.lora_A"]
    b2 = published["backbone.blocks.0.attn.qkv.lora_B2"]
    assert torch.equal(adapters["backbone.blocks.0.attn.q.lora_A.slider.weight"], a[:8])
    assert torch.equal(adapters["backbone.blocks.0.attn.v.lora_A.slider.weight"], a[8:])
    assert torch.equal(adapters["backbone.blocks.0.attn.v.lora_B.phrase.weight"], b2[64:])
    back = peft_to_published(adapters)
    assert sorted(back) == sorted(published)
    assert all(torch.equal(back[k], published[k]) for k in published)


def test_attention_equals_published_fused_lora_formula():
    """q/k/v from our adapters equal the published fused qkv + zero-padded grouped LoRA update (scale alpha/r)."""
    torch.manual_seed(0)
    model = GraCoModel(tiny_config()).eval()
    randomize_lora(model)
    published = to_published_state(model.state_dict())
    attn = model.backbone.blocks[0].attn
    x = torch.randn(2, 10, 64)
    for branch, (name_a, name_b) in ((SLIDER, ("lora_A", "lora_B")), (PHRASE, ("lora_A2", "lora_B2"))):
        model.set_branch(branch)
        a = published[f"backbone.blocks.0.attn.qkv.{name_a}"]
        b = published[f"backbone.blocks.0.attn.qkv.{name_b}"]
        delta = torch.cat([b[:64] @ a[:8], torch.zeros(64, 64), b[64:] @ a[8:]])  # rows q, k, v
        expected = F.linear(x, published["backbone.blocks.0.attn.qkv.weight"],
                            published["backbone.blocks.0.attn.qkv.bias"]) + x @ delta.T * (1.0 / 8)
        with torch.no_grad():
            fused = torch.cat([attn.q(x), attn.k(x), attn.v(x)], dim=-1)  # peft path
            weight, bias = attn._fused_qkv()  # merged inference path
            merged = F.linear(x, weight, bias)
        # the same products summed in another order (float32, 64-term sums of O(1) values: about 1e-6); a wrong
        # scale, branch or row layout changes the LoRA term, which is of the order of 1e-1 here
        assert float((x @ delta.T * (1.0 / 8)).abs().max()) > 1e-2
        torch.testing.assert_close(fused, expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(merged, expected, atol=1e-5, rtol=1e-5)


def test_published_base_state_round_trip():
    torch.manual_seed(0)
    model = GraCoModel(tiny_config())
    state = model.state_dict()
    published = to_published_state(state)
    assert "backbone.blocks.0.attn.qkv.weight" in published and published["backbone.blocks.0.attn.qkv.weight"].shape == (192, 64)
    back = convert_published_state(published, state.keys(), model.cfg)
    assert sorted(back) == sorted(state)
    assert all(torch.equal(back[k], state[k]) for k in state)


def _slider_probs(predictor, image, gra):
    predictor.set_input_image(image)
    clicker = Clicker()
    clicker.add_click(Click(True, (60, 80)))
    return predictor.get_prediction(clicker, gra=gra)


def test_branches_are_independent(tiny_model, rgb_image, tmp_path):
    """Slider outputs are bit-identical before and after a phrase call (the published code re-points the slider
    parameters at the phrase ones after the first phrase call)."""
    from isegm.toy.seeded import seeded_clip_text_state
    clip_path = tmp_path / "clip.pt"
    torch.save(seeded_clip_text_state(), clip_path)
    tiny_model.phrase_encoder.load_clip_weights(clip_path)
    predictor = get_predictor(tiny_model, "NoBRS", "cpu", zoom_in_params={"skip_clicks": -1, "target_size": (224, 224)})
    before = {g: _slider_probs(predictor, rgb_image, g) for g in (None, 0.3, 1.0)}

    predictor.set_input_image(rgb_image)
    clicker = Clicker()
    clicker.add_click(Click(True, (60, 80)))
    phrase = predictor.get_prediction(clicker, phrase="head")
    assert np.abs(phrase - before[None]).max() > 1e-4  # the phrase branch really differs

    for g, probs in before.items():
        assert np.array_equal(_slider_probs(predictor, rgb_image, g), probs), g


def test_merged_qkv_follows_weight_changes(tiny_model):
    attn = tiny_model.backbone.blocks[0].attn
    x = torch.randn(1, 5, 64)
    with torch.no_grad():
        before = attn(x)
        attn.q.base_layer.weight.mul_(2)  # in-place update: seen through the version counter
        after = attn(x)
        assert not torch.allclose(before, after)
        attn.v.lora_B["slider"].weight.data.zero_()  # a .data write bypasses it: clear_cache is the documented way
        attn.clear_cache()
        fused = F.linear(x, *attn._fused_qkv())
        torch.testing.assert_close(fused[..., 128:], attn.v.base_layer(x))  # no slider update on v any more
