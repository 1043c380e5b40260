"""vislab.testing.models: the tiny Stable Diffusion factory and its saved-folder fixture."""

from __future__ import annotations

import torch
from vislab.diffusion import SDComponents, load_sd
from vislab.testing.models import tiny_sd_components, tiny_sd_dir  # noqa: F401 - fixture


def test_tiny_sd_components_seeded_and_overridable():
    a, b = tiny_sd_components(seed=0), tiny_sd_components(seed=0)
    assert isinstance(a, SDComponents)
    assert torch.equal(a.unet.conv_in.weight, b.unet.conv_in.weight)
    small = tiny_sd_components(image_size=16, context_length=16)
    assert small.image_size == 16 and small.latent_size == 4 and small.tokenizer.model_max_length == 16
    assert sum(p.numel() for p in a.unet.parameters()) < 2_000_000
    both = tiny_sd_components(cross_attn_levels=2, vae_channels=(16, 32, 64), vae_norm_groups=8, scaling_factor=0.2)
    from vislab.diffusion import cross_attention_layers

    assert len(cross_attention_layers(both.unet)) == 2 + 1 + 4  # 2 down, mid, 2x2 up
    assert both.scaling_factor == 0.2 and both.vae_scale_factor == 4


def test_tiny_sd_dir_fixture_loads(tiny_sd_dir):  # noqa: F811 - the imported fixture
    sd = load_sd(tiny_sd_dir)
    ref = tiny_sd_components(seed=0)
    lat = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        cond = ref.encode_prompt(["a blue star"])
        torch.testing.assert_close(sd.encode_prompt(["a blue star"]), cond)
        torch.testing.assert_close(sd.unet(lat, 3, encoder_hidden_states=cond).sample,
                                   ref.unet(lat, 3, encoder_hidden_states=cond).sample)
