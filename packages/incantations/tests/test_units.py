"""Prompt parsing, masking, prompt files, loss formulas."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from incantations.losses import consistency_loss, quality_loss, semantic_loss, sparsity_loss, total_loss
from incantations.prompts import mask_units, read_prompts, shipped, units
from vislab.errors import InputError


def test_units_split_objects_and_relations():
    assert units("a red car and a white sheep") == ["a red car", "a white sheep"]
    assert units("a cat on the left of a dog") == ["a cat", "a dog"]
    assert units("a red circle on the left and a blue square on the right") == ["a red circle", "a blue square"]
    assert units("a photo of a dog") == ["dog"]


def test_mask_keeps_only_the_given_units():
    us = units("a red car and a white sheep")
    assert mask_units("a red car and a white sheep", ["a white sheep"], us) == "a - - and a white sheep"
    assert mask_units("a red car and a white sheep", us, us) == "a red car and a white sheep"


def test_prompt_files(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text('{"id": "a", "prompt": "a red car"}\n{broken\n')
    with pytest.raises(InputError, match="line 2: not JSON"):
        read_prompts(f)
    (tmp_path / "p.txt").write_text("a red car\n\na blue cup\n")
    assert [r["prompt"] for r in read_prompts(tmp_path / "p.txt")] == ["a red car", "a blue cup"]
    (tmp_path / "e.txt").write_text("\n")
    with pytest.raises(InputError, match="no prompts"):
        read_prompts(tmp_path / "e.txt")
    cats = {r["category"] for r in shipped("compbench")}
    assert {"color", "shape", "texture", "spatial"} <= cats and len(shipped("compbench")) == 50


def test_loss_formulas_on_fixed_vectors():
    g = F.normalize(torch.tensor([[1.0, 1.0, 0.0]]), dim=-1)
    gp = torch.tensor([[1.0, 0.0, 0.0]])
    d = torch.tensor([[0.0, 1.0, 0.0]])
    # g - g_p = (0.707 - 1, 0.707, 0): cos with (0, 1, 0) = 0.707 / |(-0.293, 0.707)|
    diff = g - gp
    assert quality_loss(g, gp, d).item() == pytest.approx(1 - float(diff[0, 1] / diff.norm()), abs=1e-6)
    assert consistency_loss(g, gp).item() == pytest.approx(1 - 2 ** -0.5, abs=1e-6)
    assert semantic_loss(g, None).item() == 0.0
    assert semantic_loss(g, g).item() == pytest.approx(0.0, abs=1e-6)
    P = torch.tensor([[1.0, -1.0], [0.0, 2.0]])
    assert sparsity_loss(P, torch.tensor([0.0, 1.0])).item() == pytest.approx((1 + 2 + 0 + 1) / 4)
    t = total_loss({"q": torch.tensor(1.0), "s": torch.tensor(2.0), "ti": torch.tensor(5.0)}, {"q": 0.5, "s": 1.0, "ti": 0.0})
    assert t.item() == pytest.approx(2.5)
