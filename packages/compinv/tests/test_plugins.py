"""The post-training plug-ins of semantic inversion: DreamBooth with the anchor regulariser (vislab's learner)
and ``compinv regularize`` on an existing textual-inversion embedding."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from vislab.testing import assert_run_contract, make_run


def _batch(n=2):
    g = torch.Generator().manual_seed(0)
    return {"pixel_values": torch.rand(n, 3, 32, 32, generator=g) * 2 - 1, "prompt": ["a <c> star"] * n,
            "ref": ["a cat star"] * n, "weight": torch.ones(n),
            "class_pixel_values": torch.rand(n, 3, 32, 32, generator=g) * 2 - 1, "class_prompt": ["a star"] * n}


def _learner(tiny_dirs, mode, lr=1e-3):
    from compinv.dreambooth import CompositionalDreamBooth, prepare_modifier
    from vislab.diffusion import load_sd

    sd = load_sd(tiny_dirs["sd"]).freeze()
    ids = prepare_modifier(sd, "<c>", "ktn")
    cat = sd.tokenizer.encode("cat", add_special_tokens=False)
    return CompositionalDreamBooth(sd, ids, cat, anchor_mode=mode, lr=lr), sd, ids, cat


def _train(learner, steps):
    opt = learner.configure_optimizers()
    for i in range(steps):
        torch.manual_seed(i)
        opt.zero_grad()
        learner.loss(_batch())[0].backward()
        opt.step()
        learner.on_train_batch_end(None, None, i)


def test_dreambooth_plugin_trains_unet_and_identifier_and_regulariser_changes_result(tiny_dirs, tmp_path):
    from compinv.dreambooth import MODEL_FILE
    from vislab.diffusion import load_personalized

    reg, sd, ids, cat = _learner(tiny_dirs, "single")
    plain, sd_p, ids_p, _ = _learner(tiny_dirs, "none")
    trainable = {n.split(".")[0] for n, p in reg.named_parameters() if p.requires_grad}
    assert trainable == {"unet", "text_encoder"}
    assert [n for n, p in reg.text_encoder.named_parameters() if p.requires_grad] == ["embeddings.token_embedding.weight"]
    w0 = sd.text_encoder.get_input_embeddings().weight.detach().clone()
    unet0 = {k: v.clone() for k, v in sd.unet.state_dict().items()}
    torch.manual_seed(0)
    loss, parts = reg.loss(_batch())
    assert set(parts) == {"rec", "prior", "anchor"}
    assert loss.item() == pytest.approx((0.6 * parts["rec"] + parts["prior"] + 0.4 * parts["anchor"]).item(), rel=1e-5)
    _train(reg, 6)
    _train(plain, 6)
    w1 = sd.text_encoder.get_input_embeddings().weight.detach()
    assert (w1 != w0).any(-1).nonzero().flatten().tolist() == ids  # only the identifier row moved
    assert any(not torch.equal(unet0[k], v) for k, v in sd.unet.state_dict().items())
    dist = lambda s, i: float((s.text_encoder.get_input_embeddings().weight[i[0]] - s.text_encoder.get_input_embeddings().weight[cat[0]]).norm())  # noqa: E731
    d0 = float((w0[ids[0]] - w0[cat[0]]).norm())
    assert dist(sd, ids) < dist(sd_p, ids_p) and dist(sd, ids) < d0  # the anchor term pulls the identifier toward "cat"
    reg.save_model(tmp_path / "m", tiny_dirs["sd"])
    sd2, info = load_personalized(tmp_path / "m", model_file=MODEL_FILE)
    assert info["learner"] == "dreambooth"
    for k, v in sd.unet.state_dict().items():
        assert torch.equal(v, sd2.unet.state_dict()[k])
    assert torch.allclose(sd2.text_encoder.get_input_embeddings().weight[sd2.tokenizer.convert_tokens_to_ids("<c>")], w1[ids[0]])


def test_dreambooth_plugin_loss_drops_on_one_batch(tiny_dirs):
    learner, *_ = _learner(tiny_dirs, "single", lr=1e-3)
    opt = learner.configure_optimizers()

    def fixed():
        torch.manual_seed(0)
        return learner.loss(_batch())[0]

    first = fixed().item()
    for _ in range(12):
        opt.zero_grad()
        fixed().backward()
        opt.step()
        learner.on_train_batch_end(None, None, 0)
    assert fixed().item() < 0.8 * first


def test_dreambooth_method_run_and_generate_from_its_model(small_cfg, tiny_dirs, tmp_path, capsys):
    from compinv.cli import main
    from compinv.train import train

    out = tmp_path / "db"
    m = train(make_run("compinv", out, small_cfg(inversion={"method": "dreambooth"}, dreambooth={"n_class_images": 2},
                                               eval={"limit": 1, "seeds": [5]})))
    assert_run_contract(out)
    assert m["method"] == "dreambooth" and {"plain_dreambooth", "compositional"} <= set(m["anchor_distance"])
    for f in ("learned_embeds.safetensors", "plain_dreambooth/learned_embeds.safetensors", "dreambooth_model/unet/config.json",
              "dreambooth_model/compinv_model.json", "checkpoints/last.ckpt"):
        assert (out / f).is_file(), f
    gen = ["generate", "--model", tiny_dirs["sd"], "--prompt", "a <pink-star> star on the left and a red circle on the right",
           "--steps", "2", "--guide-steps", "1", "--cfg", "3"]
    assert main(gen + ["--dreambooth", str(out / "dreambooth_model"), "--out", str(tmp_path / "g")]) == 0
    assert (tmp_path / "g" / "seed0.png").is_file() and (tmp_path / "g" / "seed0_attention.pt").is_file()
    capsys.readouterr()
    assert main(gen + ["--dreambooth", str(out), "--out", str(tmp_path / "g2")]) == 2  # the run folder, not the model folder
    assert "no compinv_model.json" in capsys.readouterr().err


def test_regularize_command_and_bad_input(tiny_dirs, tmp_path, capsys):
    import numpy as np
    from compinv.cli import main
    from PIL import Image
    from safetensors.torch import load_file, save_file

    emb = tmp_path / "learned_embeds.safetensors"
    start = torch.randn(2, 32) * 3
    save_file({"<c>": start}, str(emb))
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray((rng.random((40, 40, 3)) * 255).astype("uint8")).save(imgs / f"{i}.png")
    out = tmp_path / "out"
    base = ["regularize", "--images", str(imgs), "--class-word", "cat", "--sd", tiny_dirs["sd"], "--batch-size", "2"]
    assert main(base + ["--embeds", str(emb), "--steps", "15", "--lr", "0.05", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["after"] < m["before"] and m["num_vectors"] == 2 and m["metric"] == "anchor_distance"
    new = load_file(str(out / "learned_embeds.safetensors"))["<c>"]
    assert new.shape == (2, 32) and not torch.allclose(new, start)
    wide = tmp_path / "wide.safetensors"
    save_file({"<c>": torch.randn(1, 768)}, str(wide))
    two = tmp_path / "two.safetensors"
    save_file({"<a>": torch.randn(1, 32), "<b>": torch.randn(1, 32)}, str(two))
    for embeds, extra, msg in ((tmp_path / "missing.safetensors", [], "missing.safetensors"),
                               (wide, [], "does not match the text encoder's 32"),
                               (two, [], "choose one with --token"),
                               (emb, ["--class-word", "zqxv"], "single token")):
        capsys.readouterr()
        rc = main(base + ["--embeds", str(embeds), "--steps", "1", "--out", str(tmp_path / "bad")] + extra)
        err = capsys.readouterr().err
        assert rc == 2 and msg in err and "Traceback" not in err, (embeds, err[-1500:])
    assert not Path(tmp_path / "bad" / "learned_embeds.safetensors").exists()
    # an AUTOMATIC1111 embedding: named by its file name, or by --token
    a1111 = tmp_path / "mycat.safetensors"
    save_file({"emb_params": torch.randn(1, 32)}, str(a1111))
    for extra, key in (([], "mycat"), (["--token", "<kitty>"], "<kitty>")):
        o = tmp_path / f"a1111_{key.strip('<>')}"
        assert main(base + ["--embeds", str(a1111), "--steps", "1", "--out", str(o)] + extra) == 0
        assert list(load_file(str(o / "learned_embeds.safetensors"))) == [key]


def test_dreambooth_resume_from_last_ckpt(tiny_dirs, tmp_path):
    from compinv.dreambooth import finetune, prepare_dreambooth
    from vislab.lightning import build_trainer
    from vislab.run import load_preset

    cfg = load_preset("compinv")
    concept = {**cfg["concept"], "anchors": ["cat"], "noun": "star", "placeholder": "<c>"}
    db = {**cfg["dreambooth"], "lr": 1e-3, "batch_size": 2}
    imgs = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    run = make_run("compinv", tmp_path / "run", {"trainer": {"enable_progress_bar": False}})
    sd, ids, anc = prepare_dreambooth(Path(tiny_dirs["sd"]), concept, db)
    finetune(sd, ids, anc, imgs, imgs.flip(-1), concept, cfg["inversion"], db, build_trainer(run, {"max_steps": 2, "enable_progress_bar": False}))
    last = run.checkpoints / "last.ckpt"
    assert last.is_file()
    unet_at_2 = {k: v.clone() for k, v in sd.unet.state_dict().items()}
    sd2, ids2, anc2 = prepare_dreambooth(Path(tiny_dirs["sd"]), concept, db)
    m = finetune(sd2, ids2, anc2, imgs, imgs.flip(-1), concept, cfg["inversion"], db,
                 build_trainer(run, {"max_steps": 3, "enable_progress_bar": False}), ckpt_path=last)
    assert m.trainer.global_step == 3 and len(m.history) == 1  # continued at step 2
    # started from the checkpoint's UNet: one more step is a small move away from it
    fresh = __import__("vislab.diffusion", fromlist=["load_sd"]).load_sd(tiny_dirs["sd"]).unet.state_dict()
    d_ckpt = sum(float((v - unet_at_2[k]).abs().sum()) for k, v in sd2.unet.state_dict().items())
    d_fresh = sum(float((v - fresh[k]).abs().sum()) for k, v in sd2.unet.state_dict().items())
    assert d_ckpt < 0.6 * d_fresh, (d_ckpt, d_fresh)
