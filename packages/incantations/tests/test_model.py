"""Slot substitution, pooling, projection, probe determinism, the unconditional branch, the frozen model."""

from __future__ import annotations

import torch
from incantations.guidance import clip_grounding, encode_uncond, probe
from incantations.model import IncantationPrompt, insert_slots, neutral_id, word_vocabulary
from incantations.sampling import guided_eps, initial_latents


def test_substitution_touches_only_slot_positions(frozen):
    fr, _ = frozen
    ids, n = fr.tokenize("a red circle")
    slots = torch.randn(3, fr.table.shape[1])
    emb, new_ids = insert_slots(ids, n, slots, fr.table, 999)
    plain = fr.table[ids]
    assert torch.equal(emb[0, : 1 + n], plain[: 1 + n])
    assert torch.equal(emb[0, 1 + n : 1 + n + 3], slots)
    eot = ids[1 + n]
    assert new_ids[0, 1 + n + 3] == eot and (new_ids[0, 1 + n : 1 + n + 3] == 999).all()


def test_pooled_feature_changes_iff_slots_precede_eot(frozen):
    fr, _ = frozen
    ids, n = fr.tokenize("a red circle")
    base = fr.g(fr.table[ids][None], ids[None])
    emb, new_ids = insert_slots(ids, n, torch.randn(2, fr.table.shape[1]), fr.table, 999)
    assert not torch.allclose(fr.g(emb, new_ids), base, atol=1e-4)
    after_eot = fr.table[ids].clone()
    after_eot[n + 3 : n + 5] = torch.randn(2, fr.table.shape[1])  # after EOT: ignored by causal pooling
    assert torch.allclose(fr.g(after_eot[None], ids[None]), base, atol=1e-5)


def test_hard_projection_returns_vocabulary_rows_with_straight_through_gradient(frozen):
    fr, _ = frozen
    tok = fr.sd.tokenizer
    vocab = word_vocabulary(tok, ["red", "blue", "circle", "-"])
    p = IncantationPrompt(fr.table, vocab, neutral_id(tok), k=3, mode="hard")
    s = p.slots()
    assert all(int(i) in vocab for i in p.project())
    assert torch.allclose(s.detach(), fr.table[p.project()].detach().float(), atol=1e-6)
    (s * torch.randn_like(s)).sum().backward()
    assert p.P.grad is not None and p.P.grad.abs().sum() > 0
    assert p.render(tok) == "" or set(p.render(tok).split()) <= {"red", "blue", "circle"}


def test_probe_is_deterministic_and_uncond_ignores_the_prompt(frozen):
    fr, _ = frozen
    a = probe(fr, "a red circle and a blue square", seed=3, steps=4, cfg=3.0, k_c=1, k_f=2)
    b = probe(fr, "a red circle and a blue square", seed=3, steps=4, cfg=3.0, k_c=1, k_f=2)
    assert torch.equal(a.images["final"], b.images["final"]) and torch.equal(a.delta, b.delta)
    z = initial_latents(fr.sd, 0)
    uncond = encode_uncond(fr)
    c1 = fr.H(fr.embed("a red circle", None, 0)[0])
    c2 = fr.H(fr.embed("a blue square", None, 0)[0])
    t = torch.tensor(500)
    with torch.no_grad():
        e1 = guided_eps(fr.sd, z, t, c1, uncond, 0.0)  # cfg 0: the unconditional branch alone
        e2 = guided_eps(fr.sd, z, t, c2, uncond, 0.0)
    assert torch.allclose(e1, e2, atol=1e-6)


def test_clip_grounding_rule():
    class Fake:
        def g_text(self, us):
            return torch.eye(3)[: len(us)]

        def f(self, image):
            return torch.tensor([[0.9, 0.1, 0.85]])

    scores, under = clip_grounding(Fake(), ["a", "b", "c"], None, gamma=0.25, delta=0.02)
    # r = (s - 0.1) / 0.8 = [1, 0, 0.9375]: only b under gamma, and max - s_b = 0.8 > delta
    assert under == ["b"] and scores[1] == 0.10000000149011612


def test_padding_keeps_the_tokenizers_pad_id():
    """SD 2.x pads with "!" (id 0), not EOT: after the slots, EOT then the original padding."""
    table = torch.randn(50, 4)
    ids = torch.tensor([49, 5, 6, 48, 0, 0, 0, 0])  # BOS, 2 text tokens, EOT=48, pad=0
    _, new_ids = insert_slots(ids, 2, torch.randn(2, 4), table, 7)
    assert new_ids[0].tolist() == [49, 5, 6, 7, 7, 48, 0, 0]
    sd1 = torch.tensor([49, 5, 6, 48, 48, 48, 48, 48])  # SD 1.x pads with EOT
    assert insert_slots(sd1, 2, torch.randn(2, 4), table, 7)[1][0].tolist() == [49, 5, 6, 7, 7, 48, 48, 48]


def test_grounding_absolute_threshold_and_single_object_prompts(frozen):
    class Fake:
        def g_text(self, us):
            return torch.eye(3)[: len(us)]

        def f(self, image):
            return torch.tensor([[0.9, 0.6, 0.85]])

    # every object grounded (all s_u >= 0.5): the relative rule still flags the lowest one, the absolute rule none
    assert clip_grounding(Fake(), ["a", "b", "c"], None, 0.25, 0.02)[1] == ["b"]
    assert clip_grounding(Fake(), ["a", "b", "c"], None, 0.25, 0.02, threshold=0.5)[1] == []
    assert clip_grounding(Fake(), ["a", "b", "c"], None, 0.25, 0.02, threshold=0.88)[1] == ["b", "c"]
    fr, _ = frozen
    one = probe(fr, "a red square", seed=0, steps=4, cfg=3.0, k_c=1, k_f=2, threshold=2.0)  # every s_u < 2
    assert one.units == ["red", "square"] and one.under == [] and one.p_sem is None
    two = probe(fr, "a red square and a blue cross", seed=0, steps=4, cfg=3.0, k_c=1, k_f=2, threshold=2.0)
    assert two.under == ["a red square", "a blue cross"]
