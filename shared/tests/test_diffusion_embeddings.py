"""Textual-inversion files in the diffusers and AUTOMATIC1111 layouts: which token they load under."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from vislab.diffusion import load_learned_embeds, read_learned_embeds, tiny_sd
from vislab.errors import InputError


def test_a1111_safetensors_loads_under_the_file_name(tmp_path):
    rows = torch.randn(2, 32)
    path = tmp_path / "my-style.safetensors"
    save_file({"emb_params": rows}, str(path))  # the layout A1111 writes
    got = read_learned_embeds(path)
    assert list(got) == ["my-style"]  # never the layout key "emb_params"
    torch.testing.assert_close(got["my-style"], rows)
    assert list(read_learned_embeds(path, token="<style>")) == ["<style>"]


def test_a1111_pt_uses_file_name_and_token_overrides_every_layout(tmp_path):
    pt = tmp_path / "cat-toy.pt"
    torch.save({"string_to_param": {"*": torch.randn(1, 32)}, "name": "something-else"}, pt)
    assert list(read_learned_embeds(pt)) == ["cat-toy"]
    diffusers_file = tmp_path / "learned_embeds.safetensors"
    save_file({"<concept>": torch.randn(1, 32)}, str(diffusers_file))
    assert list(read_learned_embeds(diffusers_file)) == ["<concept>"]
    assert list(read_learned_embeds(diffusers_file, token="<mine>")) == ["<mine>"]
    bare = tmp_path / "vec.bin"
    torch.save(torch.randn(32), bare)
    with pytest.raises(InputError, match="token"):
        read_learned_embeds(bare)
    assert read_learned_embeds(bare, token="<v>")["<v>"].shape == (1, 32)
    two = tmp_path / "two.safetensors"
    save_file({"<a>": torch.randn(1, 32), "<b>": torch.randn(1, 32)}, str(two))
    with pytest.raises(InputError, match="2 embeddings"):
        read_learned_embeds(two, token="<x>")
    spaced = tmp_path / "my style.safetensors"
    save_file({"emb_params": torch.randn(1, 32)}, str(spaced))
    with pytest.raises(InputError, match="spaces"):
        read_learned_embeds(spaced)


def test_a1111_embedding_is_usable_in_a_prompt(tmp_path):
    sd = tiny_sd(seed=0)
    width = sd.text_encoder.get_input_embeddings().weight.shape[1]
    rows = torch.randn(1, width)
    path = tmp_path / "toystyle.safetensors"
    save_file({"emb_params": rows}, str(path))
    assert load_learned_embeds(path, sd.tokenizer, sd.text_encoder) == ["toystyle"]
    tid = sd.tokenizer.convert_tokens_to_ids("toystyle")
    torch.testing.assert_close(sd.text_encoder.get_input_embeddings().weight[tid], rows[0])
    fresh = tiny_sd(seed=0)
    assert load_learned_embeds(path, fresh.tokenizer, fresh.text_encoder, token="<ts>") == ["<ts>"]
