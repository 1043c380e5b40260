"""Signal check of the toy faces: a small CNN trained on source domains, evaluated on a held-out one.

This is the issue's "done when" experiment and a sanity tool for the anti-spoofing packages: if a
~25k-parameter CNN cannot beat chance on an unseen domain, the toy data carries no transferable
live/spoof cue. Scores are P(live) (softmax), metrics from :mod:`vislab.metrics` at the source dev
set's EER threshold.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn


class ImageStandardize(nn.Module):
    """Per-image, per-channel standardisation: removes global colour cast / exposure (domain style)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean((2, 3), keepdim=True)
        s = x.std((2, 3), keepdim=True)
        return (x - m) / (s + 1e-3)


def tiny_cnn(width: int = 16, n_classes: int = 2, standardize: bool = True) -> nn.Module:
    """3 conv stages (full resolution first, so halftone / pixel-grid cues survive), global pooling, linear.
    ``standardize``: per-image channel standardisation first, so colour casts of a domain do not decide."""
    w = width

    def block(i, o):
        return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]

    return nn.Sequential(
        *([ImageStandardize()] if standardize else []),
        *block(3, w), nn.MaxPool2d(2),
        *block(w, 2 * w), nn.MaxPool2d(2),
        *block(2 * w, 4 * w),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * w, n_classes),
    )


def _stack(ds) -> tuple[torch.Tensor, torch.Tensor]:
    ds.materialize()
    x = torch.from_numpy(np.stack([ds.render(i)[0] for i in range(len(ds))])).permute(0, 3, 1, 2).float().div_(255.0)
    return x, torch.as_tensor(ds.live)


@torch.no_grad()
def predict_live(model: nn.Module, x: torch.Tensor, batch: int = 256) -> np.ndarray:
    """P(live) for images ``x`` (N, 3, H, W) in [0, 1] (class 1 = live)."""
    model.eval()
    out = [torch.softmax(model(x[i : i + batch] - 0.5), -1)[:, 1] for i in range(0, len(x), batch)]
    return torch.cat(out).numpy()


def train_and_evaluate(train, dev, test, steps: int = 300, batch: int = 32, lr: float = 2e-3, seed: int = 0, width: int = 16) -> dict:
    """Train :func:`tiny_cnn` (live vs spoof) on ``train``; metrics on ``test`` at ``dev``'s EER threshold."""
    from vislab import metrics as M
    from vislab.faces.toy import balanced_weights

    t0 = time.time()
    xtr, ytr = _stack(train)
    xdev, ydev = _stack(dev)
    xte, yte = _stack(test)
    t_data = time.time() - t0
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = tiny_cnn(width)
    before = predict_live(model, xte)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    w = balanced_weights(train.live.tolist(), train.domain_names)
    t1 = time.time()
    model.train()
    loss = torch.zeros(())
    for _ in range(steps):
        idx = torch.multinomial(w, batch, replacement=True, generator=g)
        xb = xtr[idx]
        flip = torch.rand(batch, generator=g) < 0.5
        xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
        loss = nn.functional.cross_entropy(model(xb - 0.5), ytr[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    t_train = time.time() - t1
    dev_s = predict_live(model, xdev)
    te_s = predict_live(model, xte)
    res = M.evaluate(te_s, yte.numpy(), dev_scores=dev_s, dev_live=ydev.numpy(), attack=test.attack_names)
    return {
        "auc_before": round(M.auc(before, yte.numpy()), 4),
        "auc": round(res["auc"], 4),
        "hter": round(res["hter"], 4),
        "acer": round(res["acer"], 4),
        "eer": round(res["eer"], 4),
        "tpr_at_fpr1": round(res["tpr_at_fpr"], 4),
        "dev_auc": round(M.auc(dev_s, ydev.numpy()), 4),
        "n_train": len(train),
        "n_test": len(test),
        "steps": steps,
        "data_seconds": round(t_data, 1),
        "train_seconds": round(t_train, 1),
        "final_loss": round(float(loss.detach()), 4),
    }


def lodo_signal_check(
    target: str = "M",
    sources=None,
    attacks=("print", "replay"),
    identities: int = 16,
    frames: int = 2,
    steps: int = 300,
    batch: int = 32,
    lr: float = 2e-3,
    size: int = 64,
    seed: int = 0,
    width: int = 16,
) -> dict:
    """Train :func:`tiny_cnn` on the source domains' train identities; report metrics on the target domain
    (all its identities: they never appear in the sources) at the source dev set's EER threshold.
    ``acer`` uses the worst attack type's APCER; ``hter`` pools the attacks."""
    from vislab.faces.domains import MCIO
    from vislab.faces.toy import ToyFaces

    sources = [d for d in MCIO if d != target] if sources is None else list(sources)
    kw = dict(attacks=attacks, identities=identities, frames=frames, size=size, seed=seed, with_depth=False)
    train = ToyFaces(domains=sources, split="train", **kw)
    dev = ToyFaces(domains=sources, split="dev", **kw)
    test = ToyFaces(domains=[target], **kw)
    return {"protocol": f"{'-'.join(sources)}@{target}", **train_and_evaluate(train, dev, test, steps, batch, lr, seed, width)}


def uniattack_signal_check(protocol: str = "p1", identities: int = 16, frames: int = 1, steps: int = 300, size: int = 64, seed: int = 0, **kw) -> dict:
    """The same CNN on a toy UniAttackData protocol (binary live vs any attack)."""
    from vislab.faces.protocols import uniattack_protocol

    p = uniattack_protocol(protocol, identities=identities, frames=frames, size=size, seed=seed, with_depth=False)
    return {"protocol": f"UniAttackData@{protocol}", **train_and_evaluate(p["train"], p["dev"], p["test"], steps=steps, seed=seed, **kw)}
