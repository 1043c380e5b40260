"""Evaluation must not depend on the batch: each clip is encoded, sampled and smoothed on its own."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffspeaker.data import SyntheticTalkingFaces
from diffspeaker.model import tiny_audio_config
from diffspeaker.module import DiffSpeakerModule, evaluate


class _Clips(torch.utils.data.Dataset):
    """Synthetic clips cut to different lengths (0.5 s ... 1.9 s)."""

    def __init__(self, n: int = 8):
        src = SyntheticTalkingFaces(n, seed=3, seconds=2.0)
        self.geometry = src.geometry
        self.items = []
        for i in range(n):
            it = dict(src[i])
            T = 15 + 6 * ((5 * i) % n)  # shuffled lengths, 15..57 frames at 30 fps
            it["vertices"] = it["vertices"][:T]
            it["audio"] = it["audio"][: int(T / 30 * 16000)]
            self.items.append(it)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]


@pytest.mark.parametrize("variant", ["standard", "official"])
def test_scores_identical_at_batch_1_and_8(variant):
    torch.manual_seed(0)
    ds = _Clips()
    module = DiffSpeakerModule(
        {
            "n_feats": ds.geometry.template.size,
            "dim": 32,
            "ff": 64,
            "heads": 4,
            "layers": 1,
            "period": 30,
            "n_styles": 3,
            "time_sin_dim": 32,
        },
        tiny_audio_config(),
        sampling={"steps": 4, "smooth": True, "ddim_variant": variant},
    )
    torch.nn.init.normal_(module.model.denoiser.motion_decoder.weight, std=0.05)  # zero head hides the audio
    module.geometry = ds.geometry
    r1 = evaluate(module, ds, batch_size=1, seed=5)
    r8 = evaluate(module, ds, batch_size=8, seed=5)
    for a, b in zip(r1["results"], r8["results"]):
        assert a["name"] == b["name"]
        np.testing.assert_allclose(a["pred"], b["pred"], atol=1e-5, rtol=1e-5)
        assert abs(a["LVE"] - b["LVE"]) < 1e-5 and abs(a["FDD"] - b["FDD"]) < 1e-5
    for k in ("LVE", "LVE_weighted", "FDD", "FDD_weighted"):
        assert abs(r1[k] - r8[k]) < 1e-5, k
