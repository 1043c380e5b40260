"""Formulas on fixed inputs: anchor losses, sparse weights, layout loss, masks, token positions."""

from __future__ import annotations

import pytest
import torch
from compinv.semantic import anchor_loss, anchor_weights, input_embeddings, multi_anchor_loss, sparsemax
from compinv.spatial import box_mask, layout_loss, select_heads


def test_anchor_loss_by_hand():
    E = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]], requires_grad=True)
    R = torch.tensor([[[1.0, 0.0], [0.0, 4.0]]], requires_grad=True)
    # squared differences 0, 4, 9, 0 -> mean 13/4
    loss = anchor_loss(E, R)
    assert loss.item() == pytest.approx(13 / 4)
    loss.backward()
    assert R.grad is None  # the reference is stop-gradient
    assert torch.allclose(E.grad, torch.tensor([[[0.0, 1.0], [1.5, 0.0]]]))  # 2 (E - R) / 4


def test_single_token_anchor_equals_row_distance_and_multi_with_one_anchor():
    from vislab.diffusion import add_placeholder_tokens
    from vislab.testing.models import tiny_sd_components

    sd = tiny_sd_components()
    ids = add_placeholder_tokens(sd.tokenizer, sd.text_encoder, "<c>", 1, init_word="cat")
    w = sd.text_encoder.get_input_embeddings().weight
    with torch.no_grad():
        w[ids[0]] += torch.randn(w.shape[1])
    dog = sd.tokenizer.encode("dog", add_special_tokens=False)[0]
    p, r = sd.tokenize(["a photo of a <c> cat"]), sd.tokenize(["a photo of a dog cat"])
    official = anchor_loss(input_embeddings(sd.text_encoder, p), input_embeddings(sd.text_encoder, r))
    L, d = p.shape[1], w.shape[1]
    by_hand = ((w[ids[0]] - w[dog]) ** 2).sum() / (L * d)
    assert official.item() == pytest.approx(by_hand.item(), rel=1e-5)
    multi = multi_anchor_loss(w[ids], w[[dog]], L)
    assert multi.item() == pytest.approx(by_hand.item(), rel=1e-5)


def test_sparsemax_and_sparse_anchor_weights():
    out = sparsemax(torch.tensor([1.0, 0.5, -1.0]))
    assert torch.allclose(out, torch.tensor([0.75, 0.25, 0.0]))
    v = torch.zeros(1, 4)
    anchors = torch.stack([torch.zeros(4) + 0.01, torch.ones(4) * 3])
    w = anchor_weights(v, anchors, tau=0.1)
    assert torch.allclose(w, torch.tensor([[1.0, 0.0]]))  # the far anchor gets exactly zero weight
    # the loss is the weighted distance, with gradient toward the near anchor only
    v.requires_grad_(True)
    multi_anchor_loss(v, anchors, seq_len=1, tau=0.1).backward()
    assert torch.allclose(v.grad, 2 * (v.detach() - anchors[0]) / 4)


def test_box_mask_and_heads():
    m = box_mask([[0.0, 0.0, 0.5, 1.0]], 2, 2)
    assert m.tolist() == [[1.0, 0.0], [1.0, 0.0]]
    m2 = box_mask([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]], 4, 4)
    assert m2.sum() == 8 and m2[0, 0] == 1 and m2[3, 3] == 1 and m2[0, 3] == 0
    A = torch.arange(4.0).view(4, 1, 1)
    assert select_heads(A, "official").view(-1).tolist() == [2.0, 3.0]
    assert select_heads(A, "all").shape[0] == 4


def test_layout_loss_by_hand():
    # 2 heads, 2x2 map, 3 tokens; token 1 = object 0 (left half), token 2 = object 1 (right half)
    A = torch.zeros(2, 4, 3)
    A[0, :, 1] = torch.tensor([0.4, 0.1, 0.4, 0.1])  # 80 % inside the left box
    A[1, :, 1] = torch.tensor([0.25, 0.25, 0.25, 0.25])  # 50 %
    A[0, :, 2] = torch.tensor([0.0, 0.5, 0.0, 0.5])  # 100 % inside the right box
    A[1, :, 2] = torch.tensor([0.5, 0.0, 0.5, 0.0])  # 0 %
    boxes = [[[0.0, 0.0, 0.5, 1.0]], [[0.5, 0.0, 1.0, 1.0]]]
    l0 = ((1 - 0.8) ** 2 + (1 - 0.5) ** 2) / 2
    l1 = ((1 - 1.0) ** 2 + (1 - 0.0) ** 2) / 2
    expect = 30 * (l0 + l1) / 2
    assert layout_loss([A], boxes, [[1], [2]], heads="all").item() == pytest.approx(expect, rel=1e-6)
    # official heads: only the second head
    expect_off = 30 * ((1 - 0.5) ** 2 + (1 - 0.0) ** 2) / 2
    assert layout_loss([A], boxes, [[1], [2]], heads="official").item() == pytest.approx(expect_off, rel=1e-6)
    # two maps average
    assert layout_loss([A, A], boxes, [[1], [2]], heads="all").item() == pytest.approx(expect, rel=1e-6)


def test_token_positions_and_layout_parse():
    from compinv.pipeline import parse_layout
    from compinv.spatial import token_positions
    from vislab.clip import clip_tokenizer
    from vislab.errors import VislabError

    tok = clip_tokenizer(32)
    tok.add_tokens(["<c>"])
    pos = token_positions(tok, "a <c> cat and a red circle", "red circle")
    ids = tok("a <c> cat and a red circle").input_ids
    assert [tok.convert_ids_to_tokens(ids[p]) for p in pos] == ["red</w>", "circle</w>"]
    assert token_positions(tok, "a <c> cat and a red circle", "<c>") == [2]
    with pytest.raises(VislabError):
        token_positions(tok, "a <c> cat", "backpack")
    assert parse_layout("0,0,0.5,1;0.5,0,1,1") == [[[0.0, 0.0, 0.5, 1.0]], [[0.5, 0.0, 1.0, 1.0]]]
    with pytest.raises(VislabError):
        parse_layout("0.6,0,0.5,1")


def test_strip_identifiers_and_prompts():
    from compinv.evaluate import composition_prompts, shipped_objects, strip_identifiers

    assert strip_identifiers("<cute-cat> <cute-cat>_1 cat and backpack", ["<cute-cat>"]) == "cat and backpack"
    coco = shipped_objects("coco")
    assert len(coco) == 80 and "teddy bear" in coco
    ps = composition_prompts(["backpack", "{concept} in a box"], "<c> cat", "{concept} and {object}")
    assert ps == ["<c> cat and backpack", "<c> cat in a box"]


def test_paper_preset_is_the_official_single_anchor_release():
    """``paper``: the official TI script (one anchor, prompts with the first vector only, 0.05 / 0.95, 3 vectors from
    "cat", LR 0.005 scaled by batch 4 x accumulation 2, 5000 steps, seed 8888); ``paper_multi``: the several-anchor form."""
    from vislab.run import list_presets, load_preset

    assert {"default", "paper", "paper_multi"} <= set(list_presets("compinv"))
    p = load_preset("compinv", "paper")
    inv = p["inversion"]
    assert (inv["anchor_mode"], inv["placeholder_expansion"], p["sampling"]["expand_placeholder"]) == ("single", "official", False)
    assert (inv["alpha_rec"], inv["alpha_anc"], inv["num_vectors"], inv["lr"], inv["scale_lr"]) == (0.05, 0.95, 3, 0.005, True)
    assert (inv["batch_size"], p["trainer"]["accumulate_grad_batches"], p["trainer"]["max_steps"], p["seed"]) == (4, 2, 5000, 8888)
    assert p["concept"]["anchors"][0] == p["concept"]["initializer"] == "cat"
    m = load_preset("compinv", "paper_multi")
    assert (m["inversion"]["anchor_mode"], m["inversion"]["placeholder_expansion"]) == ("multi", "all")
    assert {k: v for k, v in m["inversion"].items() if k not in ("anchor_mode", "placeholder_expansion")} == \
        {k: v for k, v in inv.items() if k not in ("anchor_mode", "placeholder_expansion")}


def test_no_import_cycles_between_modules():
    """Every ``compinv.*`` import (top-level or inside a function) forms an acyclic graph: the DreamBooth plug-in and
    the TI pipeline share the concept-image loader through ``compinv.images`` instead of importing each other."""
    import ast
    from pathlib import Path

    import compinv

    root = Path(compinv.__file__).parent
    graph = {}
    for f in root.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("compinv."):
                deps.add(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                deps.update(a.name.split(".")[1] for a in node.names if a.name.startswith("compinv."))
        graph[f.stem] = deps - {f.stem}
    assert "pipeline" not in graph["dreambooth"] and "dreambooth" not in graph["pipeline"]
    state = {}

    def visit(m, path):
        if state.get(m) == 1:
            raise AssertionError(f"import cycle: {' -> '.join(path + [m])}")
        if state.get(m) == 2 or m not in graph:
            return
        state[m] = 1
        for d in sorted(graph[m]):
            visit(d, path + [m])
        state[m] = 2

    for m in sorted(graph):
        visit(m, [])
