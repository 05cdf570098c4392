import os
import sys
import types

import numpy as np
import pytest
import torch

from isegm.inference.clicker import Click, Clicker
from isegm.inference.predictors import get_predictor
from isegm.inference.utils import load_is_model
from isegm.model.config import config_to_published
from isegm.model.checkpoint import (CheckpointError, read_published_checkpoint, save_checkpoint,
                                    save_published_checkpoint, to_published_state)
from isegm.toy.seeded import seeded_published_base

from helpers import tiny_config


def base_and_lora_states(model):
    trainable = set(model.trainable_parameters())
    state = model.state_dict()
    return ({k: v for k, v in state.items() if k not in trainable}, {k: v for k, v in state.items() if k in trainable})


def predict(model, image):
    predictor = get_predictor(model, "NoBRS", "cpu", zoom_in_params={"skip_clicks": -1, "target_size": (224, 224)})
    predictor.set_input_image(image)
    clicker = Clicker()
    clicker.add_click(Click(True, (60, 80)))
    return predictor.get_prediction(clicker, gra=0.4)


def test_project_checkpoint_round_trip(tiny_model, rgb_image, tmp_path):
    base, lora = base_and_lora_states(tiny_model)
    base_path = save_checkpoint(base, tiny_model.cfg, tmp_path / "base", contents="base")
    lora_path = save_checkpoint(lora, tiny_model.cfg, tmp_path / "lora", contents="lora")
    assert base_path.suffix == ".safetensors" and base_path.with_suffix(".json").is_file()
    loaded = load_is_model(base_path, "cpu", False, lora_checkpoint=lora_path)
    assert np.array_equal(predict(loaded, rgb_image), predict(tiny_model, rgb_image))


def test_published_layout_export_round_trip(tiny_model, rgb_image, tmp_path):
    base, lora = base_and_lora_states(tiny_model)
    base_cfg = tiny_model.cfg.__class__.from_dict({**tiny_model.cfg.to_dict(), "granularity": False, "phrase": False})
    save_published_checkpoint(base, base_cfg, tmp_path / "base.pth")
    save_published_checkpoint(lora, tiny_model.cfg, tmp_path / "lora.pth")
    state, config = read_published_checkpoint(tmp_path / "lora.pth")
    assert config["class"].endswith("PhraseCLIPGraCoModel_lora")
    assert {k.rsplit(".", 1)[-1] for k in state if ".qkv." in k} == {"lora_A", "lora_B", "lora_A2", "lora_B2"}
    # readable by plain torch.load(weights_only=True): only builtin values
    torch.load(tmp_path / "lora.pth", weights_only=True)
    loaded = load_is_model(tmp_path / "base.pth", "cpu", False, lora_checkpoint=tmp_path / "lora.pth")
    # the published layout stores q, k and v as one fused matrix: split back, the same weights in the same process,
    # so only the products' order may differ (float32 rounding of probabilities, well below 1e-6)
    np.testing.assert_allclose(predict(loaded, rgb_image), predict(tiny_model, rgb_image), atol=1e-6)


class _Booby:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_booby_trapped_pickle_is_refused_and_does_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "config": _Booby(marker)}, path)
    with pytest.raises(CheckpointError, match="evil.pth.*refused.*system"):
        read_published_checkpoint(path)
    with pytest.raises(CheckpointError):
        load_is_model(path, "cpu", False)
    assert not marker.exists()


def test_booby_trap_disguised_as_published_class_does_not_run(tmp_path, monkeypatch):
    """A global named like the published package becomes an inert placeholder; nothing it names is called."""
    marker = tmp_path / "pwned"
    fake = types.ModuleType("isegm.fake_losses")
    fake.run = lambda command: os.system(command)
    fake.run.__module__, fake.run.__qualname__ = "isegm.fake_losses", "run"
    monkeypatch.setitem(sys.modules, "isegm.fake_losses", fake)

    class Trap:
        def __reduce__(self):
            return (fake.run, (f"touch {marker}",))

    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "config": Trap()}, path)
    monkeypatch.delitem(sys.modules, "isegm.fake_losses")
    state, config = read_published_checkpoint(path)
    assert type(config).__name__ == "run" and list(state) == ["w"]
    assert not marker.exists()


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("hello")
    with pytest.raises(CheckpointError, match="notes.pth: not a PyTorch checkpoint"):
        read_published_checkpoint(path)
    with pytest.raises(CheckpointError, match="missing.pth: no such file"):
        read_published_checkpoint(tmp_path / "missing.pth")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="list.pth: no 'state_dict'"):
        read_published_checkpoint(tmp_path / "list.pth")


def _write_published(path, state, cfg):
    torch.save({"state_dict": state, "config": config_to_published(cfg)}, path)


def test_missing_extra_and_misshapen_weights_are_refused(tmp_path):
    cfg = tiny_config(granularity=False, phrase=False)
    state = seeded_published_base(cfg)
    missing = dict(state)
    missing.pop("neck.down_4.0.weight")
    _write_published(tmp_path / "missing.pth", missing, cfg)
    with pytest.raises(CheckpointError, match="missing.pth.*missing.*neck.down_4.0.weight"):
        load_is_model(tmp_path / "missing.pth", "cpu", False)

    _write_published(tmp_path / "extra.pth", {**state, "decoder.weight": torch.zeros(3)}, cfg)
    with pytest.raises(CheckpointError, match="extra.pth.*does not have.*decoder.weight"):
        load_is_model(tmp_path / "extra.pth", "cpu", False)

    wrong = {**state, "backbone.pos_embed": torch.zeros(1, 5, 64)}
    _write_published(tmp_path / "wrong.pth", wrong, cfg)
    with pytest.raises(CheckpointError, match="wrong.pth.*pos_embed has shape"):
        load_is_model(tmp_path / "wrong.pth", "cpu", False)

    # unused published entries (class token, classifier) are accepted
    _write_published(tmp_path / "ok.pth", {**state, "backbone.cls_token": torch.zeros(1, 1, 64),
                                           "backbone.head.weight": torch.zeros(1000, 64)}, cfg)
    model = load_is_model(tmp_path / "ok.pth", "cpu", False)
    assert not any(p.requires_grad for p in model.parameters()) and not model.training


def test_graco_config_without_lora_file_is_refused(tmp_path):
    cfg = tiny_config()
    _write_published(tmp_path / "base.pth", seeded_published_base(cfg), cfg)
    with pytest.raises(CheckpointError, match="missing.*lora"):
        load_is_model(tmp_path / "base.pth", "cpu", False)


def test_real_published_lora_checkpoint(test_weights, tmp_path):
    """The released ViT-B LoRA file loads unchanged onto a SimpleClick ViT-B base in the published layout."""
    lora_path = test_weights / "GraCo_base_lora.pth"
    state, config = read_published_checkpoint(lora_path)
    assert len(state) == 51 and config["class"].endswith("PhraseCLIPGraCoModel_lora")
    from isegm.model.config import config_from_published
    cfg = config_from_published(config)
    base_cfg = cfg.__class__.from_dict({**cfg.to_dict(), "granularity": False, "phrase": False})
    _write_published(tmp_path / "base.pth", seeded_published_base(cfg), base_cfg)
    model = load_is_model(tmp_path / "base.pth", "cpu", False, lora_checkpoint=lora_path)
    assert torch.equal(model.backbone.gra_embed.weight, state["backbone.gra_embed.weight"])
    qkv_b2 = state["backbone.blocks.3.attn.qkv.lora_B2"]
    assert torch.equal(model.backbone.blocks[3].attn.v.lora_B["phrase"].weight, qkv_b2[768:])
    exported = to_published_state({k: v for k, v in model.state_dict().items() if k in model.trainable_parameters()})
    assert sorted(exported) == sorted(state)
    assert all(torch.equal(exported[k], state[k]) for k in state)


def test_clip_weights_of_another_model_or_unofficial_torchscript_are_refused(tmp_path):
    from isegm.model.phrase_encoder import PhraseEncoder, PhraseEncoderUnavailable
    encoder = PhraseEncoder(out_dim=64)
    torch.save({"token_embedding.weight": torch.zeros(10, 8)}, tmp_path / "small.pt")
    with pytest.raises(ValueError, match="small.pt: not CLIP ViT-B/32 text weights"):
        encoder.load_clip_weights(tmp_path / "small.pt")
    torch.save({"visual.proj": torch.zeros(2)}, tmp_path / "vision.pt")
    with pytest.raises(ValueError, match="no CLIP text-tower weights"):
        encoder.load_clip_weights(tmp_path / "vision.pt")

    class Text(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_final = torch.nn.LayerNorm(4)

        def forward(self, x):
            return self.ln_final(x)

    torch.jit.save(torch.jit.script(Text()), str(tmp_path / "scripted.pt"))
    with pytest.raises(ValueError, match="not OpenAI's ViT-B-32.pt release"):
        encoder.load_clip_weights(tmp_path / "scripted.pt")
    encoder.clip_source = tmp_path / "missing.pt"
    with pytest.raises(PhraseEncoderUnavailable, match="missing.pt"):
        encoder.ensure_loaded()


def test_absurd_published_config_is_refused(tmp_path):
    cfg = tiny_config(granularity=False, phrase=False)
    config = config_to_published(cfg)
    config["params"]["backbone_params"]["value"]["embed_dim"] = 10 ** 7
    torch.save({"state_dict": {"w": torch.zeros(1)}, "config": config}, tmp_path / "huge.pth")
    with pytest.raises(CheckpointError, match="huge.pth.*embed_dim"):
        load_is_model(tmp_path / "huge.pth", "cpu", False)
