"""--help and bad input: one clear message naming the file, exit code 2, nothing half-written."""

from __future__ import annotations

import pytest
import torch
from despoofdiff.cli import main


def test_help(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "despoofdiff predict" in out and "--output-dir" in out
    with pytest.raises(SystemExit) as e:
        main(["predict", "--help"])
    assert e.value.code == 0
    assert "--checkpoint" in capsys.readouterr().out


def test_print_config(capsys):
    assert main(["--print-config", "--bridge.t_star", "0.5"]) == 0
    assert "t_star: 0.5" in capsys.readouterr().out


def test_unknown_config_key(capsys, tmp_path):
    assert main(["--output-dir", str(tmp_path), "--bridge.tstar", "0.5"]) == 2
    assert "tstar" in capsys.readouterr().err


def test_missing_checkpoint(capsys, tmp_path):
    img = tmp_path / "a.png"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(img)
    assert main(["predict", "--checkpoint", str(tmp_path / "nope.ckpt"), str(img)]) == 2
    err = capsys.readouterr().err
    assert "nope.ckpt" in err and "not found" in err and "Traceback" not in err


def test_garbage_checkpoint(capsys, tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint at all")
    img = tmp_path / "a.png"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(img)
    assert main(["predict", "--checkpoint", str(bad), str(img)]) == 2
    assert "bad.ckpt" in capsys.readouterr().err


def test_checkpoint_of_another_architecture(capsys, tmp_path, tiny_run):
    out, _ = tiny_run
    img = tmp_path / "a.png"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(img)
    # a stage-1 diffusion checkpoint is not the pipeline
    assert main(["predict", "--checkpoint", str(next((out / "checkpoints").rglob("dm_genuine/last.ckpt"))), str(img)]) == 2
    assert "not a despoofdiff" in capsys.readouterr().err
    # a pipeline checkpoint with a changed width: weights do not fit
    ck = torch.load(out / "checkpoints" / "despoofdiff.ckpt", map_location="cpu", weights_only=False)
    ck["hyper_parameters"]["classifier"] = {**ck["hyper_parameters"]["classifier"], "width": 4}
    wrong = tmp_path / "wrong.ckpt"
    torch.save(ck, wrong)
    assert main(["predict", "--checkpoint", str(wrong), str(img)]) == 2
    assert "do not match" in capsys.readouterr().err


def test_corrupt_image_writes_nothing(capsys, tmp_path, tiny_run):
    out, _ = tiny_run
    good, bad = tmp_path / "good.png", tmp_path / "bad.png"
    from PIL import Image

    Image.new("RGB", (16, 16)).save(good)
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    pred = tmp_path / "pred"
    pred.mkdir()
    (pred / "scores.csv").write_text("earlier results\n")
    assert main(["predict", "--checkpoint", str(out), str(good), str(bad), "--output-dir", str(pred)]) == 2
    assert "bad.png" in capsys.readouterr().err
    assert (pred / "scores.csv").read_text() == "earlier results\n"  # nothing lost or half-written
    assert not list(pred.glob("*_despoof.png"))


def test_empty_image_folder_and_non_image(capsys, tmp_path, tiny_run):
    out, _ = tiny_run
    (tmp_path / "empty").mkdir()
    assert main(["predict", "--checkpoint", str(out), str(tmp_path / "empty")]) == 2
    assert "no images" in capsys.readouterr().err
    txt = tmp_path / "notes.txt"
    txt.write_text("hi")
    assert main(["predict", "--checkpoint", str(out), str(txt)]) == 2
    assert "not an image" in capsys.readouterr().err


def test_empty_dataset_and_missing_class():
    from despoofdiff.data import DiffusionDataset, FaceItems
    from vislab.errors import VislabError

    with pytest.raises(VislabError, match="empty"):
        FaceItems([], 16, name="train")

    class OnlySpoof(torch.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return {"image": torch.rand(3, 8, 8), "live": 0}

    with pytest.raises(VislabError, match="no live training frames"):
        DiffusionDataset(FaceItems(OnlySpoof(), 8, name="train"), live=True)


def test_bad_real_data_root(capsys, tmp_path):
    assert main(["--output-dir", str(tmp_path / "o"), "--data.source", "mcio", "--data.root", str(tmp_path / "nowhere"), "--data.protocol", "O-C-I@M"]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_paper_preset_parses(capsys):
    assert main(["--preset", "paper", "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "unet: adm256" in out and "resolution: 256" in out
