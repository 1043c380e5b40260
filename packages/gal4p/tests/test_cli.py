"""The run contract, the generate command, bad input and DDP."""

import json

import pytest
from gal4p.cli import main
from vislab.errors import InputError, VislabError
from vislab.testing import assert_run_contract, make_run, run_module


def test_help(capsys):
    assert main(["--help"]) == 0
    assert "generate" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["generate", "--help"])
    assert e.value.code == 0 and "--prompt" in capsys.readouterr().out


def test_run_contract_and_outputs(finished_run):
    out, m = finished_run
    m2 = assert_run_contract(out)
    assert m2["metric"] == "image_alignment" and m2["higher_is_better"] is True
    for k in ("text_alignment_before", "text_alignment_after", "overfitting_rate_after", "per_round", "random", "openness"):
        assert k in m2
    assert set(m2["per_round"]) == {"uncertainty", "random"} and set(m2["per_round"]["random"]) == {"1", "2"}
    # round 1 is shared: the random run reuses the identical model
    assert m2["per_round"]["random"]["1"] == m2["per_round"]["uncertainty"]["1"]
    assert (out / "model" / "gal4p_model.json").is_file() and (out / "model" / "unet").is_dir()
    assert (out / "references.png").is_file() and (out / "metrics_per_round.png").is_file()
    assert (out / "samples" / "uncertainty_round1.png").is_file() and (out / "samples" / "round0_base.png").is_file()
    assert set(m2["per_round"]["uncertainty"]) == {str(r) for r in range(1, m2["final_round"] + 1)}
    assert len(list((out / "class_images").glob("*.png"))) == 2  # no class_dir: generated with the base model
    assert json.loads((out / "al_random" / "object_add.json").read_text())[0]["round"] == 1
    # paired statistics per evaluation image (same prompt, same noise): uncertainty vs random, judge and oracle
    ur = m2["paired"]["judge"]["image_alignment"]["uncertainty_vs_random"]
    assert ur["n"] == 8 and ur["mean_a"] == pytest.approx(m2["after"]) and ur["mean_b"] == pytest.approx(m2["random"]["image_alignment_after"])
    assert ur["ci_low"] <= ur["diff"] <= ur["ci_high"]
    assert m2["paired"]["judge"]["image_alignment"]["uncertainty_vs_base"]["mean_b"] == pytest.approx(m2["before"])
    assert set(m2["paired"]["oracle"]) == {"oracle", "oracle_present"}
    assert m2["eval_seed"] not in m2["learned_seeds"]


def test_generate(finished_run, tmp_path):
    out, _ = finished_run
    target = tmp_path / "grid.png"
    assert main(["generate", "--model", str(out / "model"), "--prompt", "a sks star", "-n", "2", "--steps", "2",
                 "--output", str(target)]) == 0
    assert target.is_file() and len(list(tmp_path.glob("grid_*.png"))) == 2


def test_generate_bad_model(tmp_path, capsys, tiny_sd_dir):
    assert main(["generate", "--model", str(tmp_path / "missing"), "--prompt", "x"]) == 2
    assert "not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["generate", "--model", str(tmp_path / "empty"), "--prompt", "x"]) == 2
    assert "not a gal4p model folder" in capsys.readouterr().err


def test_wrong_architecture(finished_run, tmp_path, tiny_sd_dir):
    from gal4p.learner import load_personalized
    from vislab.testing.models import save_tiny_sd

    out, _ = finished_run
    other = save_tiny_sd(tmp_path / "other", unet_channels=(64, 64))
    with pytest.raises(InputError, match="architecture|cannot load"):
        load_personalized(out / "model", base=other)


def _tiny(tiny_sd_dir, tiny_clip_dir, **extra):
    import importlib.util
    import pathlib

    spec = importlib.util.spec_from_file_location("gal4p_conftest", pathlib.Path(__file__).with_name("conftest.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.tiny_overrides(tiny_sd_dir, tiny_clip_dir, **extra)


def test_corrupt_and_missing_reference_images(tmp_path, tiny_sd_dir, tiny_clip_dir, concept):
    from gal4p.train import train

    recs = json.loads(concept.read_text())
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    init = tmp_path / "init.json"
    init.write_text(json.dumps([{**recs[0], "instance_data_path": str(bad)}]))
    run = make_run("gal4p", tmp_path / "r1", _tiny(tiny_sd_dir, tiny_clip_dir, data={"init_json": str(init)}))
    with pytest.raises(InputError, match="bad.png"):
        train(run)
    init.write_text(json.dumps([{**recs[0], "instance_data_path": str(tmp_path / "gone.png")}]))
    with pytest.raises(InputError, match="gone.png"):
        train(make_run("gal4p", tmp_path / "r2", _tiny(tiny_sd_dir, tiny_clip_dir, data={"init_json": str(init)})))
    init.write_text("[]")
    with pytest.raises(InputError, match="non-empty"):
        train(make_run("gal4p", tmp_path / "r3", _tiny(tiny_sd_dir, tiny_clip_dir, data={"init_json": str(init)})))
    assert not (tmp_path / "r3" / "metrics.json").exists()


def test_bad_sd_and_clip_paths(tmp_path, tiny_sd_dir, tiny_clip_dir):
    from gal4p.train import train

    with pytest.raises(InputError, match="not found"):
        train(make_run("gal4p", tmp_path / "a", _tiny(tmp_path / "nosd", tiny_clip_dir)))
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "unet").mkdir()
    with pytest.raises(InputError, match="missing subfolder"):
        train(make_run("gal4p", tmp_path / "b", _tiny(tmp_path / "half", tiny_clip_dir)))
    with pytest.raises(VislabError):
        train(make_run("gal4p", tmp_path / "c", _tiny(tiny_sd_dir, tmp_path / "noclip")))


def test_small_class_folder_is_completed_and_k_checked(tmp_path, tiny_sd_dir, tiny_clip_dir, capsys):
    import torch
    from gal4p.data import save_png
    from gal4p.train import prepare_class_images

    cls = tmp_path / "cls"
    save_png(cls / "a.png", torch.rand(3, 32, 32))
    cfg = _tiny(tiny_sd_dir, tiny_clip_dir, data={"class_dir": str(cls), "num_class_images": 3})
    run = make_run("gal4p", tmp_path / "r", cfg)
    paths = prepare_class_images(run, run.config, str(tiny_sd_dir))
    assert len(paths) == 3 and paths[0] == cls / "a.png"
    assert len(list((tmp_path / "r" / "class_images").glob("*.png"))) == 2
    assert list(cls.iterdir()) == [cls / "a.png"]  # the user's folder is left alone
    from gal4p.train import train

    with pytest.raises(VislabError, match="topk"):
        train(make_run("gal4p", tmp_path / "k", _tiny(tiny_sd_dir, tiny_clip_dir, al={"topk": 4, "num_directions": 3})))


def test_cli_resume_needs_a_run(tmp_path):
    r = run_module("gal4p", ["--output-dir", str(tmp_path / "none"), "--resume"], timeout=300)
    assert r.returncode == 2 and "last checkpoint" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path, tiny_sd_dir, tiny_clip_dir):
    out = tmp_path / "ddp"
    args = ["--output-dir", str(out), "--model.sd", str(tiny_sd_dir), "--model.clip", str(tiny_clip_dir),
            "--data.num_class_images", "2", "--data.toy.n_images", "2", "--batch_size", "1", "--al.total_rounds", "2",
            "--al.num_directions", "3", "--al.samples_per_direction", "2", "--al.topk", "1", "--al.query_steps", "2",
            "--al.compare_random", "false", "--al.selection", "random", "--eval.steps", "2", "--eval.images_per_prompt", "1",
            "--trainer.max_steps", "2", "--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu",
            "--trainer.enable_progress_bar", "false"]
    r = run_module("gal4p", args, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    m = assert_run_contract(out)
    assert m["final_round"] == 2 and len(json.loads((out / "al" / "object_add.json").read_text())) == 1
