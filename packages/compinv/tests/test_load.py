"""``vislab.models.load_run`` restores a compinv run's SD with its learned token rows through ``compinv.load``."""

from __future__ import annotations

import pytest
import torch


def _learned(sd_dir, path, seed):
    """Save two learned vectors of ``<pink-star>`` (random rows, as after training) to ``path``; return them."""
    from vislab.diffusion import add_placeholder_tokens, load_sd, save_learned_embeds

    sd = load_sd(sd_dir)
    ids = add_placeholder_tokens(sd.tokenizer, sd.text_encoder, "<pink-star>", 2, None)
    rows = torch.randn(2, sd.text_encoder.get_input_embeddings().weight.shape[1], generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        sd.text_encoder.get_input_embeddings().weight[ids] = rows
    save_learned_embeds(path, sd.tokenizer, sd.text_encoder, ids, "<pink-star>")
    return rows


def test_load_run_adds_learned_rows(small_cfg, tiny_dirs, tmp_path):
    from vislab.errors import ConfigError, InputError
    from vislab.models import load_run
    from vislab.testing import make_run

    out = tmp_path / "runs" / "compinv" / "20260101-000000"  # the package comes from the folder's place
    make_run("compinv", out, small_cfg())
    comp = _learned(tiny_dirs["sd"], out / "learned_embeds.safetensors", 1)
    (out / "plain_ti").mkdir()
    plain = _learned(tiny_dirs["sd"], out / "plain_ti" / "learned_embeds.safetensors", 2)

    sd = load_run(out)
    assert sd.tokens == ["<pink-star>", "<pink-star>_1"] and not sd.unet.training
    ids = sd.tokenizer.convert_tokens_to_ids(sd.tokens)
    w = sd.text_encoder.get_input_embeddings().weight
    assert torch.equal(w[ids], comp) and not w.requires_grad
    assert ids[0] in sd.tokenizer("a <pink-star> star").input_ids  # the prompt word maps to the learned row
    w_plain = load_run(out, which="plain").text_encoder.get_input_embeddings().weight
    assert torch.equal(w_plain[ids], plain)
    with pytest.raises(ConfigError):
        load_run(out, which="semantic")
    (out / "learned_embeds.safetensors").unlink()
    with pytest.raises(InputError, match="learned_embeds"):
        load_run(out)


def test_load_run_dreambooth_unet(small_cfg, tiny_dirs, tmp_path):
    import json

    from vislab.diffusion import load_sd
    from vislab.models import load_run
    from vislab.testing import make_run

    out = tmp_path / "run"
    make_run("compinv", out, small_cfg(inversion={"method": "dreambooth"}))
    (out / "metrics.json").write_text(json.dumps({"package": "compinv"}))
    model = out / "dreambooth_model"
    model.mkdir()
    rows = _learned(tiny_dirs["sd"], model / "learned_embeds.safetensors", 3)
    _learned(tiny_dirs["sd"], out / "learned_embeds.safetensors", 3)
    unet = load_sd(tiny_dirs["sd"]).unet
    with torch.no_grad():
        unet.conv_out.bias.add_(1.0)  # the fine-tuned UNet differs from the base
    unet.save_pretrained(model / "unet", safe_serialization=True)
    (model / "compinv_model.json").write_text(json.dumps({"learner": "dreambooth", "base": tiny_dirs["sd"]}))

    sd = load_run(out)
    assert torch.equal(sd.unet.conv_out.bias, unet.conv_out.bias)
    ids = sd.tokenizer.convert_tokens_to_ids(sd.tokens)
    assert torch.equal(sd.text_encoder.get_input_embeddings().weight[ids], rows)
    # the plain DreamBooth baseline keeps only its identifier row: it goes on the base UNet
    (out / "plain_dreambooth").mkdir()
    plain = _learned(tiny_dirs["sd"], out / "plain_dreambooth" / "learned_embeds.safetensors", 4)
    sd0 = load_run(out, which="plain")
    assert not torch.equal(sd0.unet.conv_out.bias, unet.conv_out.bias)
    assert torch.equal(sd0.text_encoder.get_input_embeddings().weight[ids], plain)
