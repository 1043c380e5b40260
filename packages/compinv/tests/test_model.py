"""Training behaviour, the diffusers round trip, spatial guidance on a tiny SD."""

from __future__ import annotations

import torch


def _prep(tiny_dirs, **inv):
    from compinv.pipeline import prepare_sd
    from vislab.run import load_preset

    cfg = load_preset("compinv")
    cfg["inversion"].update(inv)
    concept = {**cfg["concept"], "initializer": "cat", "anchors": ["dog", "star"], "noun": "cat", "placeholder": "<c>"}
    sd, ids, anc = prepare_sd(__import__("pathlib").Path(tiny_dirs["sd"]), concept, cfg["inversion"])
    return sd, ids, anc, concept, cfg


def _images(n=2):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, 32, 32, generator=g)


def test_fast_dev_run_only_placeholder_rows_move_and_anchor_drops(tiny_dirs):
    from compinv.pipeline import invert
    from vislab.lightning import build_trainer

    torch.manual_seed(0)
    sd, ids, anc, concept, cfg = _prep(tiny_dirs, anchor_mode="single", num_vectors=2, placeholder_expansion="all",
                                       lr=0.05, batch_size=2)
    w0 = sd.text_encoder.get_input_embeddings().weight.detach().clone()
    unet0 = {k: v.clone() for k, v in sd.unet.state_dict().items()}
    invert(sd, ids, anc, _images(), concept, cfg["inversion"], build_trainer(None, {"fast_dev_run": True, "enable_progress_bar": False}))
    w1 = sd.text_encoder.get_input_embeddings().weight.detach()
    changed = (w1 != w0).any(-1).nonzero().view(-1).tolist()
    assert sorted(changed) == sorted(ids), (changed, ids)  # both vectors trained (expansion "all"), nothing else moved
    assert all(torch.equal(unet0[k], v) for k, v in sd.unet.state_dict().items())
    # more steps with the anchor term alone: it (init "cat", anchor "dog") falls
    m = invert(sd, ids, anc, _images(), concept, {**cfg["inversion"], "alpha_rec": 0.0, "alpha_anc": 1.0}, build_trainer(None, {"max_steps": 25, "enable_progress_bar": False}))
    a = [h["anchor"] for h in m.history]
    assert sum(a[-5:]) / 5 < a[0] and all(torch.isfinite(torch.tensor(a))), a


def test_official_expansion_trains_first_vector_only(tiny_dirs):
    from compinv.pipeline import invert
    from vislab.lightning import build_trainer

    sd, ids, anc, concept, cfg = _prep(tiny_dirs, anchor_mode="multi", num_vectors=3, placeholder_expansion="official",
                                       weight_decay=0.0, lr=0.05, batch_size=2)
    w0 = sd.text_encoder.get_input_embeddings().weight.detach().clone()
    invert(sd, ids, anc, _images(), concept, cfg["inversion"], build_trainer(None, {"max_steps": 2, "enable_progress_bar": False}))
    w1 = sd.text_encoder.get_input_embeddings().weight.detach()
    assert not torch.equal(w1[ids[0]], w0[ids[0]])
    assert torch.equal(w1[ids[1:]], w0[ids[1:]])  # no gradient, no decay (wd 0): unchanged


def test_reconstruction_loss_drops_when_overfitting_one_image(tiny_dirs):
    from compinv.pipeline import invert
    from vislab.lightning import build_trainer

    sd, ids, anc, concept, cfg = _prep(tiny_dirs, anchor_mode="none", num_vectors=1, lr=0.1, batch_size=1, flip_p=0.0)
    img = _images(1)
    x = img * 2 - 1
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        lat = sd.encode_images(x).repeat(8, 1, 1, 1)
        noise = torch.randn(lat.shape, generator=gen)
        t = torch.linspace(100, 900, 8).long()
        noisy = sd.noise_scheduler().add_noise(lat, noise, t)

    def rec():
        with torch.no_grad():
            cond = sd.encode_prompt(["a <c> cat"] * 8)
            return float(((sd.unet(noisy, t, encoder_hidden_states=cond).sample - noise) ** 2).mean())

    before = rec()
    cfg["inversion"]["templates"] = "toy"
    invert(sd, ids, anc, img, {**concept, "noun": "cat"}, cfg["inversion"], build_trainer(None, {"max_steps": 40, "enable_progress_bar": False}))
    assert rec() < before


def test_learned_embeds_round_trip_through_diffusers(tiny_dirs, tmp_path):
    from diffusers import StableDiffusionPipeline
    from vislab.diffusion import load_learned_embeds, load_sd, save_learned_embeds

    sd, ids, anc, concept, cfg = _prep(tiny_dirs, num_vectors=3)
    with torch.no_grad():
        sd.text_encoder.get_input_embeddings().weight[ids] = torch.randn(3, sd.text_encoder.config.hidden_size)
    f = save_learned_embeds(tmp_path / "learned_embeds.safetensors", sd.tokenizer, sd.text_encoder, ids, "<c>")
    pipe = StableDiffusionPipeline.from_pretrained(tiny_dirs["sd"], safety_checker=None, requires_safety_checker=False)
    pipe.load_textual_inversion(str(f))
    ours = sd.encode_prompt(["a <c> <c>_1 <c>_2 cat"])
    theirs = pipe.encode_prompt("a <c> cat", "cpu", 1, False)[0]  # diffusers expands "<c>" to all 3 vectors
    assert torch.allclose(ours, theirs, atol=1e-5)
    sd2 = load_sd(tiny_dirs["sd"])
    names = load_learned_embeds(f, sd2.tokenizer, sd2.text_encoder)
    assert names == ["<c>", "<c>_1", "<c>_2"]
    assert torch.allclose(sd2.encode_prompt(["a <c> <c>_1 <c>_2 cat"]), ours, atol=1e-6)


def test_spatial_guidance_lowers_layout_loss(tiny_dirs):
    from compinv.spatial import DEFAULT_LAYOUT, guided_layers, sample, token_positions
    from vislab.diffusion import load_sd

    sd = load_sd(tiny_dirs["sd"]).freeze()
    prompt = "a cat on the left and a red circle on the right"
    groups = [token_positions(sd.tokenizer, prompt, "cat"), token_positions(sd.tokenizer, prompt, "red circle")]
    assert guided_layers(sd.unet)
    r = sample(sd, prompt, seed=0, steps=4, cfg_scale=3.0, boxes=DEFAULT_LAYOUT, token_groups=groups,
               guide={"steps": 2, "max_iters": 5, "threshold": 0.0, "step_scale": 50.0})
    assert r.updates == 10 and r.image.shape == (1, 3, 32, 32)
    assert r.losses[-1] < r.losses[0]
    plain = sample(sd, prompt, seed=0, steps=4, cfg_scale=3.0, vis_groups=groups)
    assert plain.updates == 0 and not torch.allclose(plain.image, r.image)
    assert r.attention.shape[0] == 2


def test_resume_from_last_ckpt_continues(tiny_dirs, tmp_path):
    from compinv.pipeline import invert
    from vislab.lightning import build_trainer
    from vislab.testing import make_run

    run = make_run("compinv", tmp_path / "run", {"trainer": {"enable_progress_bar": False}})
    # official TI weights (the toy default's 0.002 / 0.998 makes the rows oscillate around the tiny model's anchor
    # at this LR, so "moved on from the checkpoint" would not be measurable by distances)
    official = {"alpha_rec": 0.05, "alpha_anc": 0.95}
    sd, ids, anc, concept, cfg = _prep(tiny_dirs, anchor_mode="single", batch_size=2, lr=0.05, **official)
    invert(sd, ids, anc, _images(), concept, cfg["inversion"], build_trainer(run, {"max_steps": 2, "enable_progress_bar": False}))
    last = run.checkpoints / "last.ckpt"
    assert last.is_file()
    rows_at_2 = sd.text_encoder.get_input_embeddings().weight.detach()[ids].clone()
    sd2, ids2, anc2, _, _ = _prep(tiny_dirs, anchor_mode="single", batch_size=2, lr=0.05, **official)
    m = invert(sd2, ids2, anc2, _images(), concept, cfg["inversion"],
               build_trainer(run, {"max_steps": 4, "enable_progress_bar": False}), ckpt_path=last)
    assert m.trainer.global_step == 4 and len(m.history) == 2  # continued at step 2, ran 2 more
    rows = sd2.text_encoder.get_input_embeddings().weight.detach()[ids2]
    assert not torch.equal(rows, rows_at_2)
    # the restored rows started from the checkpoint, not from the initializer: distance to it is small
    init = sd2.text_encoder.get_input_embeddings().weight.detach()[sd2.tokenizer.encode("cat", add_special_tokens=False)[0]]
    assert (rows - rows_at_2).norm() < (rows - init).norm() + 1e-6
