"""Tiny random-init model folders shared by the compinv tests (built once per session)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory):
    """A tiny SD folder and a judge CLIP folder (another model than the SD text encoder)."""
    from vislab.clip import tiny_clip
    from vislab.testing.models import tiny_sd_components

    root = tmp_path_factory.mktemp("compinv_models")
    tiny_sd_components().save(root / "sd")
    tiny_clip(seed=1).save(root / "judge")
    return {"sd": str(root / "sd"), "judge": str(root / "judge")}


@pytest.fixture(scope="session")
def small_cfg(tiny_dirs):
    return lambda **over: _small_cfg(tiny_dirs, **over)


def _small_cfg(tiny_dirs, **over):
    cfg = {"model": {"sd": tiny_dirs["sd"], "judge_clip": tiny_dirs["judge"]},
           "eval": {"limit": 2, "seeds": [5, 6]}, "sampling": {"steps": 4}, "spatial": {"steps": 2},
           "trainer": {"max_steps": 3, "enable_progress_bar": False}, "inversion": {"batch_size": 2}}
    for k, v in over.items():
        cfg.setdefault(k, {}).update(v)
    return cfg


@pytest.fixture(scope="session")
def tiny_detr(tmp_path_factory):
    """A random-init tiny DETR (transformers ResNet backbone, no timm) with the 80 COCO names, saved with its
    image processor: the layout of a local facebook/detr-resnet-50 folder."""
    from compinv.evaluate import shipped_objects
    from transformers import DetrConfig, DetrForObjectDetection, DetrImageProcessor, ResNetConfig

    names = shipped_objects("coco")
    backbone = ResNetConfig(num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic",
                            out_features=["stage1", "stage2"])
    cfg = DetrConfig(use_timm_backbone=False, use_pretrained_backbone=False, backbone_config=backbone, d_model=32,
                     encoder_layers=1, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
                     encoder_ffn_dim=32, decoder_ffn_dim=32, num_queries=10,
                     id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)})
    path = tmp_path_factory.mktemp("detr") / "detr"
    DetrForObjectDetection(cfg).save_pretrained(path)
    DetrImageProcessor(size={"shortest_edge": 64, "longest_edge": 64}).save_pretrained(path)
    return path
