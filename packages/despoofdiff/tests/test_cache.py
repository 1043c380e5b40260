"""Spoof-noise cache: deterministic N, exact round trip, stale-proof keys, truncated entries."""

from __future__ import annotations

import torch
from despoofdiff.cache import NoiseCache, compute_noise, content_key, safe_key
from despoofdiff.data import ClassifierDataset, FaceItems
from despoofdiff.model import DDIMBridge, build_unet, make_scheduler, unet_config


def _bridge(seed=0):
    torch.manual_seed(seed)
    g, s = build_unet(unet_config("tiny", 16)).eval(), build_unet(unet_config("tiny", 16)).eval()
    return DDIMBridge(g, s, make_scheduler().alphas_cumprod, t_star=0.3, steps=2, clamp_encode=True, clamp_decode=True)


def test_identical_noise_for_the_same_input(tmp_path):
    b = _bridge()
    torch.manual_seed(1)
    x = [torch.rand(3, 16, 16) * 2 - 1 for _ in range(5)]
    keys = [content_key(t) for t in x]
    c1 = NoiseCache(tmp_path / "a", b.fingerprint(16))
    n1, k1 = compute_noise(b, x, keys, c1, batch_size=2)
    assert k1 == 5 and n1.shape == (5, 3, 16, 16) and n1.abs().sum() > 0
    # a second, independent cache: computed again from scratch -> identical bits
    n2, k2 = compute_noise(b, x, keys, NoiseCache(tmp_path / "b", b.fingerprint(16)), batch_size=2)
    assert k2 == 5 and torch.equal(n1, n2)
    # the first cache now serves every entry, identical to the fresh values
    n3, k3 = compute_noise(b, x, keys, c1, batch_size=3)
    assert k3 == 0 and torch.equal(n1, n3)
    # the cache stores raw N = x - x_g (float16)
    assert torch.allclose(n1[0], (x[0] - b(x[0][None])[0]), atol=2e-3)


def test_cache_dir_depends_on_the_bridge(tmp_path):
    b1, b2 = _bridge(0), _bridge(1)
    assert NoiseCache(tmp_path, b1.fingerprint(16)).dir != NoiseCache(tmp_path, b2.fingerprint(16)).dir


def test_truncated_entry_is_recomputed(tmp_path):
    b = _bridge()
    x = [torch.zeros(3, 16, 16)]
    c = NoiseCache(tmp_path, b.fingerprint(16))
    n1, _ = compute_noise(b, x, ["vid/0"], c)
    c.path("vid/0").write_bytes(b"\x93NUMPY garbage")
    n2, k = compute_noise(b, x, ["vid/0"], c)
    assert k == 1 and torch.equal(n1, n2)


def test_safe_key():
    assert safe_key("/data/oulu/Train_files/1_1_01_1.avi/3") == "data/oulu/Train_files/1_1_01_1.avi/3"
    assert ".." not in safe_key("../../etc/passwd")


class _Toy(torch.utils.data.Dataset):
    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.img = torch.rand(4, 3, 8, 8, generator=g)
        self.depth = torch.rand(4, 1, 8, 8, generator=g)

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return {"image": self.img[i], "live": i % 2, "depth": self.depth[i]}


def test_flip_is_applied_identically_to_x_noise_and_depth():
    items = FaceItems(_Toy(), 8)
    noise = torch.randn(4, 3, 8, 8)
    ds = ClassifierDataset(items, noise, depth_size=4, train=True, hflip=True)
    flipped = same = 0
    for _ in range(30):
        s = ds[1]  # live: non-zero depth
        ref = ClassifierDataset(items, noise, 4, train=False)[1]
        if torch.equal(s["x"], ref["x"]):
            same += 1
            assert torch.equal(s["noise"], ref["noise"]) and torch.equal(s["depth"], ref["depth"])
        else:
            flipped += 1
            assert torch.equal(s["x"], ref["x"].flip(-1))
            assert torch.equal(s["noise"], ref["noise"].flip(-1)) and torch.equal(s["depth"], ref["depth"].flip(-1))
    assert flipped and same
    assert torch.equal(ds[0]["depth"], torch.zeros(1, 4, 4))  # spoof target: zeros
