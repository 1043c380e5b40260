"""The README's real-data and inference commands, run on replica trees of COCO 2014, VOC 2007 and NUS-WIDE
(built in conftest.py) with the model shrunk to test size by extra arguments appended after the README's own."""

from __future__ import annotations

import json
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
from pvlr.cli import main
from pvlr.data import MultiLabelDataModule, nus_wide_relpath

README = Path(__file__).resolve().parents[1] / "README.md"
SHRINK = ["--model.visual", "cnn", "--model.visual_weights", "null", "--model.image_size", "32", "--data.image_size", "32",
          "--model.n_ctx", "2", "--model.label_heads", "2", "--model.ifm_heads", "2", "--model.label_ffn", "64",
          "--data.batch_size", "4", "--data.num_workers", "0", "--trainer.max_epochs", "1", "--trainer.precision", "32-true",
          "--ablations", "[]"]


def readme_commands(prefix: str) -> list[list[str]]:
    """Every command line of the README's bash blocks that starts with ``prefix``."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    lines = [ln.split("#")[0].strip() for b in blocks for ln in b.replace("\\\n", " ").splitlines()]
    return [ln.split()[1:] for ln in lines if ln.startswith(prefix)]


def _generic(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("cat\ndog\n")
    rows = ["image,labels,split"] + [f"img{i}.png,{'cat' if i % 2 else 'dog;cat'},{'train' if i < 4 else 'val'}" for i in range(6)]
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    from PIL import Image

    for i in range(6):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(root / f"img{i}.png")
    return root


def test_nus_wide_prefixes_missing_unlabelled_and_dead_images(replicas):
    assert nus_wide_relpath("C:\\ImageData\\Flickr\\actor\\0001_2124494179.jpg") == "actor/0001_2124494179.jpg"
    assert nus_wide_relpath("actor\\0001_2124494179.jpg\r") == "actor/0001_2124494179.jpg"
    root = replicas["nus_wide"]
    # the full list carries the Windows prefix: use it as the train list of a copy
    full = root.parent / "nus-prefixed"
    shutil.copytree(root, full)
    lines = (full / "ImageList" / "Imagelist.txt").read_text().splitlines()
    (full / "ImageList" / "TrainImagelist.txt").write_text("\n".join(lines[:8]) + "\n")
    dm = MultiLabelDataModule("nus_wide", str(full), image_size=16, batch_size=8)
    assert dm.report[0] == "nus_wide train: 8 listed, 1 missing images dropped, 1 unlabelled images dropped, 6 kept"
    assert dm.report[1] == "nus_wide test: 4 listed, 0 missing images dropped, 1 unlabelled images dropped, 3 kept"
    assert dm.classnames == ["airport", "animal", "beach", "sky"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batches = list(dm.train_dataloader())
    targets = np.concatenate([t.numpy() for _, t in batches])
    assert (targets == -1).all(1).sum() == 1  # the corrupt image: every label ignored, training goes on
    assert any("0008_2339106452.jpg: unreadable image skipped" in str(w.message) for w in caught)


def test_voc_root_forms(replicas):
    voc = replicas["voc"]  # the VOCdevkit folder
    for root in (voc, voc.parent, voc / "VOC2007"):
        dm = MultiLabelDataModule("voc", str(root), image_size=16)
        assert len(dm.train_set) == 5 and len(dm.val_set) == 4
    t = dm.val_set.targets
    assert t[2, dm.classnames.index("chair")] == -1 and t[2, dm.classnames.index("sofa")] == 1


def test_readme_commands_run_on_replicas(replicas, tmp_path, tiny_clip_dir):
    """Each README training command runs on its replica; then the README's predict command runs on a moved
    checkpoint whose CLIP folder no longer exists."""
    roots = {"/data/coco2014": replicas["coco"], "/data/VOCdevkit": replicas["voc"], "/data/NUS-WIDE": replicas["nus_wide"],
             "/data/mine": _generic(tmp_path / "mine")}
    clip_dir = tmp_path / "clip"
    shutil.copytree(tiny_clip_dir, clip_dir)
    commands = readme_commands("pvlr --")
    assert len(commands) == 4, commands
    expected = {"coco": (5, 3, 4), "voc": (5, 4, 20), "nus_wide": (6, 3, 4), "generic": (4, 2, 2)}
    out = {}
    for argv in commands:
        argv = [str(roots.get(a, a)) for a in argv]
        source = argv[argv.index("--data.source") + 1]
        out[source] = tmp_path / f"run-{source}"
        assert main([*argv, *SHRINK, "--clip.source", str(clip_dir), "--clip.checkpoint", "null",
                     "--output-dir", str(out[source])]) == 0
        m = json.loads((out[source] / "metrics.json").read_text())
        n_train, n_val, n_classes = expected[source]
        assert m["classes"] == n_classes and np.isfinite(m["after"]), m
        assert m["data"][0].endswith(f"{n_train} kept") and m["data"][1].endswith(f"{n_val} kept"), m["data"]

    (predict,) = readme_commands("pvlr predict")
    moved = tmp_path / "elsewhere" / "model.ckpt"
    moved.parent.mkdir()
    shutil.move(out["coco"] / "checkpoints" / "last.ckpt", moved)
    shutil.rmtree(clip_dir)  # the CLIP the run was trained from is gone
    imgs = sorted((replicas["coco"] / "val2014").glob("*.jpg"))[:2]
    args = {"runs/pvlr/<stamp>/checkpoints/last.ckpt": str(moved), "img1.jpg": str(imgs[0]), "img2.png": str(imgs[1]),
            "out.csv": str(tmp_path / "out.csv")}
    assert main([args.get(a, a) for a in predict]) == 0
    rows = (tmp_path / "out.csv").read_text().splitlines()
    assert rows[0] == "image,label,score"


def test_moved_checkpoint_predicts_the_same(tmp_path, tiny_clip_dir):
    """Predictions from a checkpoint whose CLIP folder is gone equal the trained module's (K0 rebuilt from the
    checkpoint's CLIP weights, not from a fresh random CLIP)."""
    import torch
    from pvlr.predict import load_module
    from pvlr.train import make_datamodule, make_module
    from vislab.lightning import build_trainer
    from vislab.testing import make_run

    clip_dir = tmp_path / "clip"
    shutil.copytree(tiny_clip_dir, clip_dir)
    cfg = make_run("pvlr", tmp_path / "run", {"clip": {"source": str(clip_dir)}, "data": {"n_train": 16, "n_val": 8},
                                                "model": {"n_ctx": 2, "label_heads": 2, "ifm_heads": 2}}).config
    dm = make_datamodule(cfg)
    module = make_module(cfg, dm.classnames)
    trainer = build_trainer(None, {"max_epochs": 1, "enable_checkpointing": False, "logger": False})
    trainer.fit(module, datamodule=dm)
    ckpt = tmp_path / "m.ckpt"
    trainer.save_checkpoint(ckpt)
    shutil.rmtree(clip_dir)
    x = torch.rand(2, 3, 32, 32)
    loaded = load_module(ckpt)
    module.eval()
    assert torch.allclose(loaded(x), module(x), atol=1e-5)
    assert torch.equal(loaded.model.kap.k0, module.model.kap.k0)
