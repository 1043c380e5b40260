"""No loader runs code from a file: crafted checkpoints and pickles whose unpickling would write a
marker file are refused (one InputError naming the file) by every loader of every package.

The payloads are live: ``test_payloads_are_live`` shows that a plain ``pickle.load`` /
``torch.load(weights_only=False)`` of the same files does write the marker.
"""

from __future__ import annotations

import gzip
import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from vislab.errors import VislabError


class _Shell:
    """Unpickling calls ``os.system('touch MARKER')``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Exec:
    """Unpickling calls ``builtins.exec`` with Python that writes the marker."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('x')",))


class _Popen:
    """Unpickling starts ``subprocess.Popen(['touch', MARKER])``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (subprocess.Popen, (["touch", str(self.marker)],))


PAYLOADS = {"os.system": _Shell, "exec": _Exec, "subprocess": _Popen}


def _checkpoint(payload) -> dict:
    """A Lightning-looking checkpoint with every package's marker key, the payload among its values."""
    meta = {"format": "x", "stage": 1, "payload": payload}
    return {"state_dict": {"model.w": torch.zeros(2)}, "hyper_parameters": {"model": payload}, "cfpl_meta": meta,
            "uniattack_meta": meta, "flallm": meta, "diffspeaker_format": 1, "gal4p": meta,
            "epoch": 0, "global_step": 1, "pytorch-lightning_version": "2.6.0"}


def write_files(tmp: Path, kind: str, fmt: str) -> tuple[Path, Path]:
    """(crafted file, marker path) for payload ``kind`` in format ckpt | pth | legacy | pkl | pklgz."""
    marker = tmp / f"MARKER-{kind}-{fmt}"
    payload = PAYLOADS[kind](marker)
    if fmt == "ckpt":
        f = tmp / "model.ckpt"
        torch.save(_checkpoint(payload), f)
    elif fmt == "pth":
        f = tmp / "weights.pth"
        torch.save({"conv1.weight": torch.zeros(1), "fc.bias": payload}, f)
    elif fmt == "legacy":
        f = tmp / "legacy.pth"
        torch.save(_checkpoint(payload), f, _use_new_zipfile_serialization=False)
    elif fmt == "pkl":
        f = tmp / "data.pkl"
        f.write_bytes(pickle.dumps({"F1": payload, "info": [payload]}, protocol=2))
    else:
        f = tmp / "labels.train"
        f.write_bytes(gzip.compress(pickle.dumps({"a": payload})))
    return f, marker


def _gal4p_resume(p: Path):
    from gal4p.loop import GALLoop

    loop = object.__new__(GALLoop)
    loop.last_ckpt, loop.resume = p, True
    if loop._resume_ckpt(0) is not None:
        raise AssertionError("a crafted last.ckpt was accepted")
    raise VislabError("refused (the loop starts the round afresh)")


def _flallm_stage(p: Path):
    from flallm.train import _ckpt_stage

    assert _ckpt_stage(p) is None
    raise VislabError("refused")


def _sam(p: Path):
    from sags.providers import _load_state

    _load_state(torch.nn.Linear(1, 1), p)


def _vocaset(p: Path):
    from diffspeaker.data import TalkingFaceFolder

    root = p.parent / "vocaset"
    (root / "wav").mkdir(parents=True, exist_ok=True)
    (root / "templates.pkl").write_bytes(p.read_bytes())
    TalkingFaceFolder(root, "vocaset", "train")


def _csl(p: Path):
    from flallm.data import read_csl_daily

    root = p.parent / "csl"
    (root / "sentence_label").mkdir(parents=True, exist_ok=True)
    (root / "sentence_label" / "csl2020ct_v2.pkl").write_bytes(p.read_bytes())
    (root / "sentence_label" / "split_1.txt").write_text("Name|Split\nS1|train\n")
    read_csl_daily(root, "train")


def _gfslt(p: Path):
    from flallm.data import read_gfslt

    (p.parent / "frames").mkdir(exist_ok=True)
    read_gfslt(p, p.parent / "frames")


def _imp(mod: str, name: str) -> Callable:
    def call(p: Path, *a, **k):
        import importlib

        return getattr(importlib.import_module(mod), name)(p, *a, **k)

    return call


TORCH_LOADERS: dict[str, Callable[[Path], object]] = {
    "vislab.io.load_torch": _imp("vislab.io", "load_torch"),
    "cfpl.load_checkpoint": _imp("cfpl.build", "load_checkpoint"),
    "uniattack.load_checkpoint": _imp("uniattack.build", "load_checkpoint"),
    "despoofdiff.load_module": _imp("despoofdiff.commands", "load_module"),
    "diffspeaker.load_checkpoint": _imp("diffspeaker.module", "load_checkpoint"),
    "diffspeaker.from_official_checkpoint": _imp("diffspeaker.module", "from_official_checkpoint"),
    "flallm.load_module": _imp("flallm.module", "load_module"),
    "flallm.resume_stage": _flallm_stage,
    "gal4p.resume": _gal4p_resume,
    "sags.SAM": _sam,
    "pvlr.ResNet": lambda p: __import__("pvlr.model", fromlist=["x"]).ResNetEncoder(8, "resnet18", str(p)),
    "flallm.ResNet18": lambda p: __import__("flallm.model", fromlist=["x"]).Backbone("resnet18", str(p)),
    "vislab.clip.checkpoint": lambda p: __import__("vislab.clip.encoder", fromlist=["x"])._read_state_dict(p),
    "vislab.textual_inversion": lambda p: __import__("vislab.diffusion.inversion", fromlist=["x"]).read_learned_embeds(p),
}
PICKLE_LOADERS: dict[str, Callable[[Path], object]] = {
    "vislab.io.load_pickle": _imp("vislab.io", "load_pickle"),
    "diffspeaker.vocaset_templates": _vocaset,
    "flallm.csl_daily": _csl,
}


def test_payloads_are_live(tmp_path):
    for kind in PAYLOADS:
        f, marker = write_files(tmp_path, kind, "pkl")
        pickle.loads(f.read_bytes())
        for _ in range(50):
            if marker.exists():
                break
            import time

            time.sleep(0.05)
        assert marker.exists(), kind
    f, marker = write_files(tmp_path, "exec", "ckpt")
    torch.load(f, weights_only=False)
    assert marker.exists()


def _refused(loader: Callable[[Path], object], f: Path, marker: Path) -> None:
    with pytest.raises(VislabError) as e:
        loader(f)
    assert "\n" not in str(e.value)
    assert not marker.exists(), "the payload ran"


@pytest.mark.parametrize("fmt", ["ckpt", "pth", "legacy"])
@pytest.mark.parametrize("kind", list(PAYLOADS))
def test_load_torch_runs_no_code(tmp_path, kind, fmt):
    f, marker = write_files(tmp_path, kind, fmt)
    _refused(TORCH_LOADERS["vislab.io.load_torch"], f, marker)


@pytest.mark.parametrize("fmt", ["ckpt", "legacy"])
@pytest.mark.parametrize("name", list(TORCH_LOADERS))
def test_torch_loaders_run_no_code(tmp_path, name, fmt):
    for kind in PAYLOADS:
        f, marker = write_files(tmp_path, kind, fmt)
        _refused(TORCH_LOADERS[name], f, marker)


@pytest.mark.parametrize("kind", list(PAYLOADS))
@pytest.mark.parametrize("name", list(PICKLE_LOADERS))
def test_pickle_loaders_run_no_code(tmp_path, name, kind):
    f, marker = write_files(tmp_path, kind, "pkl")
    _refused(PICKLE_LOADERS[name], f, marker)


@pytest.mark.parametrize("kind", list(PAYLOADS))
def test_gzip_label_pickle_runs_no_code(tmp_path, kind):
    f, marker = write_files(tmp_path, kind, "pklgz")
    _refused(_gfslt, f, marker)
    _refused(_imp("vislab.io", "load_pickle"), f, marker)


def test_safe_pickle_reads_dataset_pickles(tmp_path):
    """VOCASET-style templates (Python 2 era, latin1) and numpy-2 protocol-5 arrays still load."""
    import numpy as np
    from vislab.io import load_pickle

    data = {"FaceTalk_1": np.arange(6, dtype=np.float64).reshape(2, 3), "n": np.int64(3), "s": ("a", [1.5, None])}
    for proto in (2, 4, 5):
        (tmp_path / "t.pkl").write_bytes(pickle.dumps(data, protocol=proto))
        got = load_pickle(tmp_path / "t.pkl", encoding="latin1")
        np.testing.assert_array_equal(got["FaceTalk_1"], data["FaceTalk_1"])
        assert got["n"] == 3 and got["s"] == ("a", [1.5, None])


@pytest.mark.parametrize("kind", list(PAYLOADS))
def test_foreign_checkpoint_payload_stays_inert(tmp_path, kind):
    """``load_torch(foreign=True)`` keeps the weights; a payload is refused or becomes an inert stand-in."""
    from vislab.io import _Inert, load_torch

    f, marker = write_files(tmp_path, kind, "ckpt")
    try:
        ck = load_torch(f, foreign=True)
    except VislabError:
        ck = None
    assert not marker.exists()
    if ck is not None:
        assert isinstance(ck["hyper_parameters"]["model"], _Inert)
        assert torch.equal(ck["state_dict"]["model.w"], torch.zeros(2))


def test_foreign_checkpoint_loads_weights_beside_unknown_config(tmp_path):
    """A checkpoint from another code base (its config as an argparse Namespace) gives its weights."""
    import argparse

    from vislab.io import load_torch

    torch.save({"state_dict": {"w": torch.ones(2)}, "hyper_parameters": {"cfg": argparse.Namespace(lr=1)}}, tmp_path / "o.ckpt")
    with pytest.raises(VislabError, match="argparse.Namespace"):
        load_torch(tmp_path / "o.ckpt")
    ck = load_torch(tmp_path / "o.ckpt", foreign=True)
    assert torch.equal(ck["state_dict"]["w"], torch.ones(2))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
