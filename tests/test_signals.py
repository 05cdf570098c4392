"""The signal vocabulary: one set of granularity levels, one trainable-parameter rule, one tokenizer."""
import torch

from isegm.model import GraCoModel, ModelConfig
from isegm.model.graco import signal_of_parameter
from isegm.signals import (CLIP_CONTEXT_LENGTH, GRANULARITY_LEVELS, NUM_GRANULARITY_LEVELS, PHRASE, SLIDER,
                           tokenize_phrases)


def test_granularity_levels_are_the_ten_tenths():
    assert GRANULARITY_LEVELS == (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    assert len(GRANULARITY_LEVELS) == NUM_GRANULARITY_LEVELS


def test_parameters_by_signal_on_a_model():
    model = GraCoModel(ModelConfig(img_size=(64, 64), embed_dim=32, depth=4, num_heads=2,
                                   neck_out_dims=(8, 16, 32, 64), head_channels=8))
    names = [name for name, _ in model.named_parameters()]
    by_signal = {signal: {n for n in names if signal_of_parameter(n) == signal} for signal in (SLIDER, PHRASE)}
    assert any("gra_embed" in n for n in by_signal[SLIDER]) and any(".lora_A.slider." in n for n in by_signal[SLIDER])
    assert any("phrase2gra_proj" in n for n in by_signal[PHRASE]) and any(".lora_B.phrase." in n
                                                                        for n in by_signal[PHRASE])
    assert not any("phrase" in n for n in by_signal[SLIDER]) and not any("slider" in n for n in by_signal[PHRASE])
    assert set(model.trainable_parameters()) == by_signal[SLIDER] | by_signal[PHRASE]
    base = set(names) - set(model.trainable_parameters())
    assert "backbone.blocks.0.attn.q.base_layer.weight" in base and not any(".lora_" in n for n in base)


def test_tokenize_phrases_gives_one_row_of_77_tokens_per_phrase():
    one = tokenize_phrases("left front leg")
    both = tokenize_phrases(["left front leg", "head"])
    assert one.shape == (1, CLIP_CONTEXT_LENGTH) and one.dtype == torch.int64
    assert both.shape == (2, CLIP_CONTEXT_LENGTH) and torch.equal(both[0], one[0])
    assert not torch.equal(both[0], both[1])
