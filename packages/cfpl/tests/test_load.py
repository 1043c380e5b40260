"""Restoring a trained cfpl run: vislab.models.load_run, and loading never trains a toy CLIP."""

import pytest
import torch

PKG, META, CKPT = "cfpl", "cfpl_meta", "last.ckpt"


def _score(model, x):
    return model.live_score(x)


def _fail(*a, **k):
    raise AssertionError("loading a trained checkpoint must never pretrain a toy model")


@pytest.fixture
def no_pretraining(tmp_path, monkeypatch):
    """An empty toy cache, and every way of pretraining a toy CLIP made to fail the test."""
    import vislab.models
    import vislab.toy

    monkeypatch.setenv("VISLAB_CACHE", str(tmp_path / "empty_cache"))
    monkeypatch.setattr(vislab.models, "pretrain_toy", _fail)
    monkeypatch.setattr(vislab.toy, "toy_clip", _fail)


def test_load_run_restores_the_trained_model(trained_run):
    from cfpl.build import load_checkpoint
    from vislab.models import load_run

    out, _ = trained_run
    model = load_run(out, package=PKG)
    ref, meta = load_checkpoint(out / "checkpoints" / CKPT)
    assert not model.training and all(p.device.type == "cpu" for p in model.parameters())
    assert meta["clip_embedded"]["source"] == "tiny" and model.checkpoint_meta["threshold"] == meta["threshold"]
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(_score(model, x), _score(ref, x))


def _toy_run(trained_run, folder, embedded: bool):
    """A copy of the trained run whose checkpoint says its CLIP came from the toy cache."""
    from cfpl.build import load_checkpoint
    from vislab.io import load_torch, save_torch
    from vislab.models import embedded_clip_spec

    out, _ = trained_run
    ref, _ = load_checkpoint(out / "checkpoints" / CKPT)
    ck = load_torch(out / "checkpoints" / CKPT)
    ck[META]["clip"] = {"source": "toy", "toy_preset": "default"}
    if embedded:  # the architecture as a full Hugging Face config (what a toy or real CLIP records)
        ck[META]["clip_embedded"] = embedded_clip_spec(ref.clip)
        assert ck[META]["clip_embedded"]["source"] == "embedded"
    else:  # a checkpoint from before the architecture was recorded
        ck[META].pop("clip_embedded", None)
    (folder / "checkpoints").mkdir(parents=True)
    save_torch(ck, folder / "checkpoints" / CKPT)
    return ref


def test_loading_a_toy_clip_checkpoint_needs_no_cache(trained_run, tmp_path, no_pretraining):
    from vislab.models import load_run

    ref = _toy_run(trained_run, tmp_path / "run", embedded=True)
    model = load_run(tmp_path / "run", package=PKG)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(_score(model, x), _score(ref, x))


def test_missing_toy_clip_is_a_one_line_error(trained_run, tmp_path, no_pretraining):
    from vislab.errors import VislabError
    from vislab.models import load_run

    _toy_run(trained_run, tmp_path / "run", embedded=False)
    with pytest.raises(VislabError) as e:
        load_run(tmp_path / "run", package=PKG)
    msg = str(e.value)
    assert "\n" not in msg and "loading never trains" in msg and "vislab toy pretrain clip" in msg
