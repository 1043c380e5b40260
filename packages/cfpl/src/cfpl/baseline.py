"""Plain-CLIP linear probe: the baseline CFPL is compared with on the same split.

Frozen CLIP image embedding v (B, d_e) -> Linear(d_e, 2), trained with class-balanced
cross-entropy (Adam, full batch) on the source frames; scored on the target like CFPL.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset


@torch.no_grad()
def clip_features(clip, ds: Dataset, batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(N, d_e) CLIP image embeddings of a :class:`cfpl.data.Frames` dataset, live labels, video ids."""
    from cfpl.data import collate

    feats, live, vids = [], [], []
    dev = next(clip.parameters()).device
    for b in DataLoader(ds, batch_size=batch_size, shuffle=False, collate_fn=collate):
        feats.append(clip.encode_image(clip.normalize(b["image"].to(dev))).float().cpu())
        live.append(b["live"])
        vids.extend(b["video"])
    return torch.cat(feats), torch.cat(live), vids


def linear_probe(clip, train: Dataset, test: Dataset, steps: int = 300, lr: float = 1e-2, weight_decay: float = 1e-4, seed: int = 0) -> dict:
    """Train the probe on ``train`` frames and evaluate on ``test``: returns metrics and scores."""
    from cfpl.metrics import evaluate_scores, video_scores

    was_training = clip.training
    clip.eval()
    xtr, ytr, _ = clip_features(clip, train)
    xte, yte, vte = clip_features(clip, test)
    clip.train(was_training)
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6  # standardise with source statistics
    xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    g = torch.Generator().manual_seed(seed)
    lin = torch.nn.Linear(xtr.shape[1], 2)
    with torch.no_grad():
        lin.weight.normal_(0, 0.01, generator=g)
        lin.bias.zero_()
    y = (1 - ytr).long()  # 0 live, 1 spoof
    counts = torch.bincount(y, minlength=2).float().clamp(min=1)
    weight = counts.sum() / (2 * counts)
    opt = torch.optim.Adam(lin.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(lin(xtr), y, weight=weight).backward()
        opt.step()
    with torch.no_grad():
        s = torch.softmax(lin(xte), -1)[:, 0].numpy()
    res = evaluate_scores(s, yte.numpy(), vte)
    vs, vy = video_scores(s, yte.numpy(), vte)
    return {"metrics": res, "scores": np.asarray(vs), "live": np.asarray(vy)}
