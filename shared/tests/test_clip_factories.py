"""vislab.testing.models: the tiny CLIP factory and its saved-folder fixture."""

from __future__ import annotations

import torch
from vislab.clip import ClipEncoder, load_clip
from vislab.testing.models import tiny_clip_dir, tiny_clip_model  # noqa: F401 - fixture

TEXTS = ["a red circle", "a green star"]


def test_tiny_clip_model_is_seeded_and_cheap():
    a, b, c = tiny_clip_model(seed=0), tiny_clip_model(seed=0), tiny_clip_model(seed=3)
    assert isinstance(a, ClipEncoder)
    with torch.no_grad():
        ids = a.tokenize(TEXTS)
        assert torch.equal(a.encode_text(ids), b.encode_text(ids))
        assert not torch.allclose(a.encode_text(ids), c.encode_text(ids))
    assert sum(p.numel() for p in a.parameters()) < 5_000_000
    assert tiny_clip_model("open_clip", embed_dim=16).embed_dim == 16


def test_tiny_clip_dir_fixture_loads(tiny_clip_dir):  # noqa: F811 - the imported fixture
    enc = load_clip(tiny_clip_dir)
    ref = tiny_clip_model(seed=0)
    with torch.no_grad():
        torch.testing.assert_close(enc.encode_text(TEXTS), ref.encode_text(TEXTS))
