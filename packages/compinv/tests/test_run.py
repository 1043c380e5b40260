"""The run contract on a reduced budget, the generate command, bad input, --help, DDP."""

from __future__ import annotations

import pytest
from vislab.testing import assert_run_contract, make_run, read_metrics, run_module


def test_embedded_default_reduced_budget(small_cfg, tiny_detr, tmp_path):
    from compinv.train import train

    out = tmp_path / "run"
    m = train(make_run("compinv", out, small_cfg(eval={"detector": str(tiny_detr)})))
    assert_run_contract(out)
    assert m["metric"] == "text_alignment" and m["prompts"] == 2
    for f in ("learned_embeds.safetensors", "plain_ti/learned_embeds.safetensors", "compositions.png", "attention_maps.png",
              "checkpoints/last.ckpt"):
        assert (out / f).is_file(), f
    assert {"before", "after"} <= set(m["image_alignment"])
    assert all(0.0 <= m["coi"][k] <= 1.0 for k in ("before", "after", "semantic_only"))  # CoI with the (tiny) DETR
    assert all(isinstance(r["coi_hit"], bool) for r in m["per_image"])
    assert any(r["updates"] > 0 for r in m["per_image"] if r["method"] == "semantic_spatial")
    # paired statistics per composition image (same object, same held-out seed) against plain TI
    st = m["paired"]["judge"]["text_alignment"]["compositional_vs_plain"]
    assert st["n"] == 4 and st["mean_a"] == pytest.approx(m["after"]) and st["mean_b"] == pytest.approx(m["before"])
    assert st["ci_low"] <= st["diff"] <= st["ci_high"] and "semantic_only_vs_plain" in m["paired"]["judge"]["text_alignment"]
    assert "coi_hit" in m["paired"]["judge"] and not set(m["seeds"]) & set(m["learned_seeds"])


def test_generate_command_and_bad_input(tiny_dirs, tmp_path, capsys):
    import torch
    from compinv.cli import main
    from safetensors.torch import save_file

    emb = tmp_path / "learned_embeds.safetensors"
    save_file({"<c>": torch.randn(2, 32)}, str(emb))
    out = tmp_path / "gen"
    r = run_module("compinv", ["generate", "--model", tiny_dirs["sd"], "--embeds", str(emb), "--prompt",
                               "a <c> cat on the left and a red circle on the right", "--steps", "4", "--guide-steps", "2",
                               "--cfg", "3", "--out", str(out)], timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (out / "seed0.png").is_file() and (out / "seed0_attention.png").is_file()
    corrupt = tmp_path / "bad.safetensors"
    corrupt.write_bytes(b"not a safetensors file")
    wide = tmp_path / "wide.safetensors"
    save_file({"<c>": torch.randn(1, 768)}, str(wide))
    empty = tmp_path / "empty_concept"
    empty.mkdir()
    broken = tmp_path / "broken_concept"
    broken.mkdir()
    (broken / "a.png").write_bytes(b"\x89PNG garbage")
    objs = tmp_path / "objs.txt"
    objs.write_text("")
    base = ["--model.sd", tiny_dirs["sd"], "--model.judge_clip", tiny_dirs["judge"], "--trainer.max_steps", "1"]
    gen = ["generate", "--model", tiny_dirs["sd"], "--prompt", "a <c> cat", "--steps", "2", "--out", str(tmp_path / "g2")]
    bad = [
        (gen + ["--embeds", str(tmp_path / "missing.safetensors")], "missing.safetensors"),
        (gen + ["--embeds", str(corrupt)], "bad.safetensors"),
        (gen + ["--embeds", str(wide)], "does not match"),
        (["generate", "--model", str(tmp_path / "nosd"), "--embeds", str(emb), "--prompt", "a <c>"], "nosd"),
        (base + ["--concept.images", str(empty)], "empty_concept"),
        (base + ["--concept.images", str(broken)], "a.png"),
        (base + ["--eval.objects", str(objs)], "objs.txt"),
        (base + ["--model.judge_clip", str(tmp_path / "nojudge")], "nojudge"),
        (base + ["--eval.detector", str(tmp_path / "nodetr")], "nodetr"),
        (base + ["--inversion.method", "custom"], "inversion.method"),
        (gen + ["--embeds", str(emb), "--token", "<a>", "<b>"], "one word per --embeds file"),
    ]
    r = run_module("compinv", bad[1][0], timeout=600)  # one as a real process: exit 2, one line, no traceback
    assert r.returncode == 2 and "bad.safetensors" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
    for i, (a, msg) in enumerate(bad):  # the rest in-process (same method_main error path)
        capsys.readouterr()
        rc = main(a if a[0] == "generate" else a + ["--output-dir", str(tmp_path / f"bad{i}")])
        err = capsys.readouterr().err
        assert rc == 2 and msg in err and "Traceback" not in err, (a, err[-2000:])
    assert not (tmp_path / "g2" / "seed0.png").exists()
    # an AUTOMATIC1111 embedding used under the word given with --token
    a1111 = tmp_path / "mycat.safetensors"
    save_file({"emb_params": torch.randn(1, 32)}, str(a1111))
    g3 = tmp_path / "g3"
    assert main(["generate", "--model", tiny_dirs["sd"], "--embeds", str(a1111), "--token", "<kitty>", "--prompt", "a <kitty> cat",
                 "--steps", "2", "--layout", "none", "--out", str(g3)]) == 0
    assert (g3 / "seed0.png").is_file()


def test_help(capsys):
    r = run_module("compinv", ["--help"])
    assert r.returncode == 0 and "compinv generate" in r.stdout and "compinv regularize" in r.stdout
    r = run_module("compinv", ["generate", "--help"])
    assert r.returncode == 0 and "--layout" in r.stdout
    from compinv.cli import main

    with pytest.raises(SystemExit) as e:  # in-process: argparse exits 0 after the help
        main(["regularize", "--help"])
    assert e.value.code == 0 and "--class-word" in capsys.readouterr().out


@pytest.mark.slow
def test_ddp_two_cpu_processes(tiny_dirs, tmp_path):
    out = tmp_path / "ddp"
    args = ["--model.sd", tiny_dirs["sd"], "--model.judge_clip", tiny_dirs["judge"], "--eval.limit", "1", "--eval.seeds", "[5]",
            "--sampling.steps", "3", "--spatial.steps", "1", "--inversion.batch_size", "2", "--trainer.max_steps", "2",
            "--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu",
            "--trainer.enable_progress_bar", "false", "--output-dir", str(out)]
    r = run_module("compinv", args, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert read_metrics(out)["package"] == "compinv"
    assert (out / "learned_embeds.safetensors").is_file()


def test_held_out_seeds_and_oracle():
    """Evaluation seeds never include the training seed (shipped presets too); the oracle reads a composition from
    the pixels, the placeholder standing for the held-out concept."""
    import torch
    from compinv.train import check_held_out, oracle_scores
    from vislab.errors import ConfigError
    from vislab.run import load_preset
    from vislab.toy.world import POSITIONS, SIZES, render_scene

    for name in ("default", "paper", "paper_multi"):
        cfg = load_preset("compinv", name)
        check_held_out(cfg, [int(s) for s in cfg["eval"]["seeds"]])
    cfg = load_preset("compinv")
    assert len(cfg["eval"]["seeds"]) * 8 >= 64  # 8 toy objects
    with pytest.raises(ConfigError):
        check_held_out(cfg, [int(cfg["seed"]), 1000])
    bg = {"kind": "plain", "level": 0.4, "delta": 0.0, "seed": 0}

    def obj(color, shape, pos):
        return {"shape": shape, "color": color, "texture": "solid", "size": "small", "position": pos,
                "cx": POSITIONS[pos][0], "cy": POSITIONS[pos][1], "radius": SIZES["small"]}

    both = render_scene({"background": bg, "objects": [obj("pink", "star", "left"), obj("blue", "square", "right")]}, 32)[0]
    star = render_scene({"background": bg, "objects": [obj("pink", "star", "left")]}, 32)[0]
    rows = [{"prompt": "a <pink-star> star and a blue square", "image": torch.from_numpy(x)[None]} for x in (both, star)]
    m = oracle_scores(rows, cfg["concept"])
    assert [r["oracle_composition"] for r in rows] == [1.0, 0.0] and rows[0]["oracle"] == 1.0 and rows[1]["oracle"] == 0.5
    assert m["oracle_composition"] == 0.5
