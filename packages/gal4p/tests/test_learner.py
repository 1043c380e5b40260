"""Learners: which weights train, the loss drops on one batch, weights reach the loss, save/load round trips."""

import pytest
import pytorch_lightning as pl
import torch
from gal4p.data import PersonalizationDataModule, PersonalizationDataset, collate, read_records
from gal4p.learner import build_learner, load_personalized
from vislab.diffusion import load_sd
from vislab.run import load_preset


def cfg(**kw):
    c = load_preset("gal4p")
    c["optim"]["lr"] = 1e-3
    for k, v in kw.items():
        c[k].update(v)
    return c


def batch_of(concept, weight=1.0):
    recs = read_records(concept, "object")
    for r in recs:
        r["weight"] = weight
    ds = PersonalizationDataset(recs, 32, center_crop=True)
    return collate([ds[i] for i in range(len(ds))])


def test_dreambooth_trains_only_the_unet_and_loss_drops(tiny_sd_dir, concept):
    sd = load_sd(tiny_sd_dir)
    learner = build_learner("dreambooth", sd, cfg(), "sks", "star")
    names = [n for n, p in learner.named_parameters() if p.requires_grad]
    assert names and all(n.startswith("unet.") for n in names)
    assert not any(p.requires_grad for p in learner.text_encoder.parameters())
    batch = batch_of(concept)
    opt = learner.configure_optimizers()

    def fixed_loss():
        torch.manual_seed(0)  # same noise and timesteps every time
        return learner.loss(batch)[0]

    first = fixed_loss().item()
    for _ in range(15):
        opt.zero_grad()
        fixed_loss().backward()
        opt.step()
    assert fixed_loss().item() < 0.7 * first


def test_sample_weights_reach_the_loss(tiny_sd_dir, concept):
    learner = build_learner("dreambooth", load_sd(tiny_sd_dir), cfg(), "sks", "star")
    torch.manual_seed(0)
    full = learner.loss(batch_of(concept, 1.0))[0].item()
    torch.manual_seed(0)
    half = learner.loss(batch_of(concept, 0.5))[0].item()
    torch.manual_seed(0)
    zero = learner.loss(batch_of(concept, 0.0))[0].item()
    assert half == pytest.approx(full / 2, rel=1e-5) and zero == 0.0


def test_fast_dev_run_with_prior_and_save_load(tiny_sd_dir, concept, tmp_path):
    sd = load_sd(tiny_sd_dir)
    learner = build_learner("dreambooth", sd, cfg(), "sks", "star")
    recs = read_records(concept, "object")
    cls_imgs = [tmp_path / "c.png"]
    from gal4p.data import save_png

    save_png(cls_imgs[0], torch.rand(3, 40, 48))
    dm = PersonalizationDataModule(recs, 32, batch_size=2, class_images=cls_imgs, class_prompt="a star")
    before = {k: v.clone() for k, v in learner.unet.state_dict().items()}
    pl.Trainer(fast_dev_run=True, accelerator="cpu", logger=False, enable_progress_bar=False).fit(learner, datamodule=dm)
    assert any(not torch.equal(before[k], v) for k, v in learner.unet.state_dict().items())
    learner.save_model(tmp_path / "m", str(tiny_sd_dir), {"round": 1})
    sd2, info = load_personalized(tmp_path / "m")
    assert info["learner"] == "dreambooth" and info["round"] == 1
    for k, v in learner.unet.state_dict().items():
        assert torch.equal(v, sd2.unet.state_dict()[k])


def test_textual_inversion_trains_only_the_new_row(tiny_sd_dir, concept, tmp_path):
    sd = load_sd(tiny_sd_dir)
    learner = build_learner("textual_inversion", sd, cfg(), "<sks>", "star")
    w0 = learner.text_encoder.get_input_embeddings().weight.detach().clone()
    unet0 = {k: v.clone() for k, v in learner.unet.state_dict().items()}
    batch = batch_of(concept)
    batch["prompt"] = ["a <sks> star in the centre"] * len(batch["prompt"])
    opt = learner.configure_optimizers()
    for _ in range(2):
        opt.zero_grad()
        learner.loss(batch)[0].backward()
        opt.step()
        learner.on_train_batch_end(None, batch, 0)
    w1 = learner.text_encoder.get_input_embeddings().weight.detach()
    changed = (w1 != w0).any(-1).nonzero().flatten().tolist()
    assert changed == learner.placeholder_ids
    assert all(torch.equal(unet0[k], v) for k, v in learner.unet.state_dict().items())
    learner.save_model(tmp_path / "ti", str(tiny_sd_dir))
    sd2, _ = load_personalized(tmp_path / "ti")
    ids = sd2.tokenizer.convert_tokens_to_ids(["<sks>"])
    assert torch.allclose(sd2.text_encoder.get_input_embeddings().weight[ids[0]], w1[learner.placeholder_ids[0]])


def test_lora_trains_only_adapters_and_round_trips(tiny_sd_dir, concept, tmp_path):
    sd = load_sd(tiny_sd_dir)
    learner = build_learner("lora", sd, cfg(), "sks", "star")
    names = [n for n, p in learner.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)
    opt = learner.configure_optimizers()
    batch = batch_of(concept)
    for _ in range(3):
        opt.zero_grad()
        learner.loss(batch)[0].backward()
        opt.step()
    learner.save_model(tmp_path / "lora", str(tiny_sd_dir))
    sd2, info = load_personalized(tmp_path / "lora")
    x = torch.randn(1, 4, 8, 8)
    cond = torch.randn(1, 32, 32)
    with torch.no_grad():
        a = learner.unet(x, torch.tensor([10]), cond).sample
        b = sd2.unet(x, torch.tensor([10]), cond).sample
        base = load_sd(tiny_sd_dir).unet(x, torch.tensor([10]), cond).sample
    assert torch.allclose(a, b, atol=1e-5) and not torch.allclose(a, base, atol=1e-6)
