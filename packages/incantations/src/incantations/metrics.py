"""Evaluation with a *judge* CLIP that is not the guidance CLIP (no reward hacking)."""

from __future__ import annotations

import torch


@torch.no_grad()
def clip_score(judge, images: torch.Tensor, texts: list[str]) -> torch.Tensor:
    """Full-prompt CLIP score 100 * cos(f(I_i), g(text_i)) per image (B,), images in [0, 1]."""
    f = judge.encode_image(judge.preprocess(images.to(judge.device)), normalize=True)
    g = judge.encode_text(judge.tokenize(texts), normalize=True)
    return 100 * (f * g).sum(-1)


@torch.no_grad()
def min_object_score(judge, images: torch.Tensor, objects: list[list[str]]) -> torch.Tensor:
    """Attend-and-Excite protocol: per image, the minimum over its object phrases of 100 * cos(f(I), g(phrase)). (B,)"""
    f = judge.encode_image(judge.preprocess(images.to(judge.device)), normalize=True)
    out = []
    for fi, objs in zip(f, objects):
        g = judge.encode_text(judge.tokenize(objs), normalize=True)
        out.append(100 * (g @ fi).min())
    return torch.stack(out)


@torch.no_grad()
def object_presence(judge, images: torch.Tensor, objects: list[list[tuple[str, str]]], attributes: list[str],
                    nouns: list[str]) -> torch.Tensor:
    """Share of each image's (attribute, noun) objects that the judge finds present: the phrase "a {attr} {noun}"
    must score above every phrase that swaps the attribute or the noun for another of ``attributes`` / ``nouns``
    (the image's other objects excepted). (B,) in [0, 1]."""
    f = judge.encode_image(judge.preprocess(images.to(judge.device)), normalize=True)
    out = []
    for fi, objs in zip(f, objects):
        others = {f"a {a} {n}" for a, n in objs}
        hits = 0
        for a, n in objs:
            alts = [f"a {x} {n}" for x in attributes if x != a] + [f"a {a} {y}" for y in nouns if y != n]
            alts = [t for t in alts if t not in others]
            g = judge.encode_text(judge.tokenize([f"a {a} {n}", *alts]), normalize=True)
            s = g @ fi
            hits += int(s[0] > s[1:].max()) if len(alts) else 1
        out.append(hits / max(len(objs), 1))
    return torch.tensor(out, dtype=torch.float32)
