"""Model components: bias matrices, masks, encoders, diffusion schedule."""

from __future__ import annotations

import math

import pytest
import torch
from diffspeaker.model import (
    BiasedDenoiser,
    DiffSpeaker,
    PeriodicPositionalEncoding,
    alibi_slopes,
    alignment_mask,
    biased_self_attention_mask,
    ddim_step,
    demo_frame_count,
    make_ddim,
    make_ddpm,
    normalize_waveform,
    periodic_bias,
    smooth_frames,
    tiny_audio_config,
)


def test_alibi_slopes_power_of_two_and_not():
    assert alibi_slopes(4) == pytest.approx([1 / 4, 1 / 16, 1 / 64, 1 / 256])
    # H=6: slopes of 4 heads, then every other slope of 8 heads (1/2, 1/8)
    assert alibi_slopes(6) == pytest.approx([1 / 4, 1 / 16, 1 / 64, 1 / 256, 1 / 2, 1 / 8])


def test_periodic_bias_hand_matrix():
    expected = torch.tensor(
        [
            [0, 0, 0, -1, -1, -2],
            [0, 0, 0, 0, -1, -1],
            [-1, 0, 0, 0, 0, -1],
            [-1, -1, 0, 0, 0, 0],
            [-2, -1, -1, 0, 0, 0],
            [-2, -2, -1, -1, 0, 0],
        ],
        dtype=torch.float,
    )
    assert torch.equal(periodic_bias(6, 2), expected)
    # zero band j in [i-p+1, i+p] (asymmetric)
    b = periodic_bias(40, 30)
    i = 20
    zero = (b[i] == 0).nonzero().flatten()
    assert zero.min().item() == 0 and zero.max().item() == 39  # everything within reach
    b = periodic_bias(100, 30)
    zero = (b[50] == 0).nonzero().flatten()
    assert (zero.min().item(), zero.max().item()) == (50 - 30 + 1, 50 + 30)


def test_biased_self_attention_mask_layout_and_switches():
    m = biased_self_attention_mask(4, 6, 2)
    assert m.shape == (4, 6, 8)
    assert torch.all(m[:, :, :2] == 0)
    for h, s in enumerate([1 / 4, 1 / 16, 1 / 64, 1 / 256]):
        assert torch.allclose(m[h, :, 2:], s * periodic_bias(6, 2))
    assert torch.all(biased_self_attention_mask(4, 6, 2, attn_scale=0) == 0)
    c = biased_self_attention_mask(4, 6, 2, attn_scale=-1)
    assert torch.isinf(c[0, 0, 3]) and c[0, 3, 2].item() == pytest.approx(
        -1 / 4 * 1
    )  # i=3,j=0: -floor(3/2)=-1


def test_alignment_mask():
    expected = torch.tensor(
        [
            [False, False, False, True, True],
            [False, False, True, False, True],
            [False, False, True, True, False],
        ]
    )
    assert torch.equal(alignment_mask(3), expected)
    assert ((~alignment_mask(7)).sum(1) >= 2).all()  # every row keeps the two token keys


def _denoiser(period=3, n_feats=12, seed=0):
    torch.manual_seed(seed)
    d = BiasedDenoiser(
        n_feats=n_feats,
        audio_dim=8,
        dim=16,
        ff=32,
        heads=4,
        layers=1,
        period=period,
        n_styles=3,
        time_sin_dim=16,
    )
    torch.nn.init.normal_(d.motion_decoder.weight, std=0.5)  # zero-init head would hide everything
    return d.eval()


def test_denoiser_masks_are_batch_major():
    d = _denoiser()
    self_m, cross_m = d.masks(2, 5, None, torch.device("cpu"))
    assert self_m.shape == cross_m.shape == (8, 5, 7)
    base = biased_self_attention_mask(4, 5, 3)
    for b in range(2):
        for h in range(4):
            assert torch.equal(self_m[b * 4 + h], base[h])
    fm = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    self_m, _ = d.masks(2, 5, fm, torch.device("cpu"))
    assert torch.isinf(self_m[4:, :, 2 + 3 :]).all() and not torch.isinf(self_m[:4]).any()


def test_output_head_zero_init_and_shapes():
    d = BiasedDenoiser(
        n_feats=12, audio_dim=8, dim=16, ff=32, heads=4, layers=2, period=3, n_styles=3, time_sin_dim=16
    ).eval()
    out = d(torch.randn(2, 5, 12), torch.randn(2, 5, 8), torch.tensor([3, 900]), torch.eye(3)[:2])
    assert out.shape == (2, 5, 12) and torch.all(out == 0)
    assert d.style.embedding.weight.shape == (3, 32) and d.time.mlp.linear_2.out_features == 32  # L*D


def test_cross_attention_alignment_is_frame_local():
    d = _denoiser()
    x, a = torch.randn(1, 6, 12), torch.randn(1, 6, 8)
    t, s = torch.tensor([10]), torch.eye(3)[:1]
    y0 = d(x, a, t, s)
    a2 = a.clone()
    a2[0, 3] += 5.0
    diff = (d(x, a2, t, s) - y0).abs().sum(-1)[0]
    assert diff[3] > 1e-4 and torch.all(diff[[0, 1, 2, 4, 5]] < 1e-6)


def test_padding_does_not_change_valid_frames():
    d = _denoiser()
    x, a = torch.randn(1, 5, 12), torch.randn(1, 5, 8)
    t, s = torch.tensor([10]), torch.eye(3)[:1]
    y = d(x, a, t, s)
    xp = torch.cat([x, torch.randn(1, 3, 12)], 1)
    ap = torch.cat([a, torch.randn(1, 3, 8)], 1)
    fm = torch.tensor([[True] * 5 + [False] * 3])
    yp = d(xp, ap, t, s, fm)
    assert torch.allclose(y, yp[:, :5], atol=1e-5)


def test_style_changes_output():
    d = _denoiser()
    x, a, t = torch.randn(1, 4, 12), torch.randn(1, 4, 8), torch.tensor([5])
    assert not torch.allclose(d(x, a, t, torch.eye(3)[:1]), d(x, a, t, torch.eye(3)[1:2]))


def test_ppe_periodic_interleaved():
    ppe = PeriodicPositionalEncoding(8, 30)
    pe = ppe.code(70)
    assert torch.allclose(pe[5], pe[35]) and torch.allclose(pe[5], pe[65])
    assert pe[0, 0] == 0 and pe[0, 1] == 1  # sin, cos of phase 0
    assert pe[1, 0] == pytest.approx(math.sin(1.0)) and pe[1, 3] == pytest.approx(math.cos(10000 ** (-2 / 8)))


def test_time_embedding_cos_first():
    d = _denoiser()
    code = d.time.proj(torch.tensor([0]))
    assert torch.allclose(code[0, :8], torch.ones(8)) and torch.allclose(code[0, 8:], torch.zeros(8))


def test_audio_frames_and_alignment():
    m = DiffSpeaker(
        {
            "n_feats": 12,
            "dim": 16,
            "ff": 32,
            "heads": 4,
            "layers": 1,
            "period": 30,
            "n_styles": 2,
            "time_sin_dim": 16,
        },
        tiny_audio_config(),
    ).eval()
    enc = m.audio_encoder
    assert enc.feature_lengths(torch.tensor([32000]))[0] == 99
    feats, flen = enc.encode(torch.randn(2, 32000))
    assert feats.shape == (2, 99, 32) and flen == [99, 99]
    out = enc(torch.randn(2, 32000), torch.tensor([32000, 16000]), [60, 30])
    assert out.shape == (2, 60, 32) and torch.all(out[1, 30:] == 0)
    assert demo_frame_count(99, 30) == 59
    # CNN frozen, transformer trainable
    assert not any(p.requires_grad for p in enc.backbone.feature_extractor.parameters())
    assert all(p.requires_grad for p in enc.backbone.encoder.parameters())


def test_normalize_waveform():
    w = torch.randn(2, 1000) * 3 + 1
    w[1, 500:] = 0
    n = normalize_waveform(w, torch.tensor([1000, 500]))
    assert n[0].mean().abs() < 1e-5 and n[0].var(unbiased=False).item() == pytest.approx(1, abs=1e-4)
    assert n[1, :500].var(unbiased=False).item() == pytest.approx(1, abs=1e-4) and torch.all(n[1, 500:] == 0)


def test_schedules():
    ddim = make_ddim(1000, 50)
    ts = ddim.timesteps.tolist()
    assert len(ts) == 50 and ts[0] == 981 and ts[-1] == 1 and ts[1] == 961
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2
    abar = torch.cumprod(1 - betas, 0)
    assert torch.allclose(make_ddpm().alphas_cumprod, abar, atol=1e-6)
    assert float(ddim.final_alpha_cumprod) == pytest.approx(float(abar[0]))  # set_alpha_to_one False
    x0, xt = torch.randn(3, 4), torch.randn(3, 4)
    # official (diffusers 0.11): x_prev = (sqrt(a_prev) + sqrt(1 - a_prev)) x0; last step uses abar_0
    a = abar[941]
    assert torch.allclose(
        ddim_step(ddim, x0, 961, xt, "official"), (a.sqrt() + (1 - a).sqrt()) * x0, atol=1e-6
    )
    a0 = abar[0]
    assert torch.allclose(
        ddim_step(ddim, x0, 1, xt, "official"), (a0.sqrt() + (1 - a0).sqrt()) * x0, atol=1e-6
    )
    # standard DDIM: eps from x_t
    at = abar[961]
    eps = (xt - at.sqrt() * x0) / (1 - at).sqrt()
    assert torch.allclose(
        ddim_step(ddim, x0, 961, xt, "standard"), a.sqrt() * x0 + (1 - a).sqrt() * eps, atol=1e-5
    )


def test_q_sample_matches_formula():
    m = DiffSpeaker(
        {
            "n_feats": 6,
            "dim": 16,
            "ff": 32,
            "heads": 4,
            "layers": 1,
            "period": 30,
            "n_styles": 2,
            "time_sin_dim": 16,
        },
        tiny_audio_config(),
    )
    x0, eps, t = torch.randn(2, 3, 6), torch.randn(2, 3, 6), torch.tensor([0, 999])
    a = m.alphas_cumprod[t].view(2, 1, 1)
    assert torch.allclose(m.q_sample(x0, eps, t), a.sqrt() * x0 + (1 - a).sqrt() * eps)
    assert torch.allclose(m.q_sample(x0, eps, t), m.ddpm.add_noise(x0, eps, t), atol=1e-6)


def test_smooth_frames():
    x = torch.tensor([[[0.0], [3.0], [6.0], [0.0]]])
    assert torch.allclose(smooth_frames(x)[0, :, 0], torch.tensor([0.0, 3.0, 3.0, 0.0]))
    # per clip: a 3-frame clip padded to 5 smooths only its frame 1; the padding never leaks in
    x = torch.tensor([[0.0, 3.0, 6.0, 90.0, 90.0], [0.0, 3.0, 6.0, 0.0, 3.0]])[..., None]
    y = smooth_frames(x, [3, 5])[..., 0]
    assert torch.allclose(y[0], torch.tensor([0.0, 3.0, 6.0, 90.0, 90.0]))
    assert torch.allclose(y[1], torch.tensor([0.0, 3.0, 3.0, 3.0, 3.0]))


def test_sampler_untrained_gives_template_and_cfg_runs():
    m = DiffSpeaker(
        {
            "n_feats": 6,
            "dim": 16,
            "ff": 32,
            "heads": 4,
            "layers": 1,
            "period": 30,
            "n_styles": 2,
            "time_sin_dim": 16,
        },
        tiny_audio_config(),
    ).eval()
    out = m.sample(torch.randn(1, 8000), None, [15], torch.eye(2)[:1], steps=5, variant="official")
    assert out.shape == (1, 15, 6) and torch.all(out == 0)  # zero head -> zero offsets
    # standard DDIM keeps sqrt(1 - abar_0) of the last noise estimate (set_alpha_to_one=False)
    out = m.sample(torch.randn(1, 8000), None, [15], torch.eye(2)[:1], steps=5, variant="standard")
    assert 0 < out.abs().max() < 0.5
    torch.nn.init.normal_(m.denoiser.motion_decoder.weight)
    a = m.sample(
        torch.randn(1, 8000),
        None,
        [15],
        torch.eye(2)[:1],
        steps=5,
        guidance=0.0,
        generator=torch.Generator().manual_seed(0),
    )
    b = m.sample(
        torch.randn(1, 8000),
        None,
        [15],
        torch.eye(2)[:1],
        steps=5,
        guidance=2.0,
        generator=torch.Generator().manual_seed(0),
    )
    assert torch.isfinite(b).all() and not torch.allclose(a, b)


def test_official_checkpoint_conversion(tmp_path):
    from diffspeaker.cli import main
    from diffspeaker.module import DiffSpeakerModule, from_official_checkpoint, load_checkpoint

    torch.manual_seed(0)
    cfg = {
        "n_feats": 30,
        "dim": 16,
        "ff": 32,
        "heads": 4,
        "layers": 1,
        "period": 30,
        "n_styles": 8,
        "time_sin_dim": 768,
    }
    mine = DiffSpeakerModule(cfg, tiny_audio_config(), sampling={"ddim_variant": "official"})
    torch.nn.init.normal_(mine.model.denoiser.motion_decoder.weight)
    inverse = {
        ".cross_attn.": ".multihead_attn.",
        ".ff.0.": ".linear1.",
        ".ff.3.": ".linear2.",
        "denoiser.layers.": "denoiser.transformer_decoder.layers.",
        "time.mlp.": "time_embedding.",
        "style.embedding.": "obj_vector.",
        "parametrizations.weight.original0": "weight_g",
        "parametrizations.weight.original1": "weight_v",
        "model.audio_encoder.backbone.": "audio_encoder.",
        "model.denoiser.": "denoiser.",
    }
    official = {}
    for k, v in mine.state_dict().items():
        for a, b in inverse.items():
            k = k.replace(a, b)
        official[k] = v
    official["denoiser.PPE.pe"] = torch.zeros(1, 5000, 16)
    torch.save({"state_dict": official}, tmp_path / "official.ckpt")
    conv = from_official_checkpoint(tmp_path / "official.ckpt", "vocaset", tiny_audio_config())
    batch = {
        "audio": torch.randn(1, 16000),
        "audio_len": torch.tensor([16000]),
        "n_frames": torch.tensor([30]),
        "style": torch.eye(8)[:1],
        "frame_mask": torch.ones(1, 30, dtype=torch.bool),
        "template": torch.zeros(1, 30),
    }
    mine.eval()
    mine.sampling["smooth"] = True
    assert torch.allclose(
        mine.generate(batch, steps=4, seed=1), conv.generate(batch, steps=4, seed=1), atol=1e-5
    )
    import json

    (tmp_path / "enc").mkdir()
    (tmp_path / "enc" / "config.json").write_text(json.dumps(tiny_audio_config()))
    assert (
        main(
            [
                "convert",
                "--official",
                str(tmp_path / "official.ckpt"),
                "--dataset",
                "vocaset",
                "--out",
                str(tmp_path / "c.ckpt"),
                "--audio-encoder",
                str(tmp_path / "enc"),
            ]
        )
        == 0
    )
    assert load_checkpoint(tmp_path / "c.ckpt").hparams["model"]["fps"] == 30.0
    torch.save({"state_dict": {"x": torch.zeros(1)}}, tmp_path / "foreign.ckpt")
    assert (
        main(
            [
                "convert",
                "--official",
                str(tmp_path / "foreign.ckpt"),
                "--dataset",
                "biwi",
                "--out",
                str(tmp_path / "d.ckpt"),
            ]
        )
        == 2
    )
    assert not (tmp_path / "d.ckpt").exists()


def test_gradient_checkpointing_trains():
    from diffspeaker.data import SyntheticTalkingFaces, collate

    ds = SyntheticTalkingFaces(2, seed=0, seconds=1.0)
    m = DiffSpeaker(
        {
            "n_feats": 900,
            "dim": 16,
            "ff": 32,
            "heads": 4,
            "layers": 1,
            "period": 30,
            "n_styles": 3,
            "time_sin_dim": 16,
            "gradient_checkpointing": True,
        },
        tiny_audio_config(),
    ).train()
    assert m.audio_encoder.backbone.is_gradient_checkpointing
    pred, x0 = m.training_prediction(collate([ds[0], ds[1]]))
    ((pred - x0) ** 2).mean().backward()
    assert m.audio_encoder.backbone.encoder.layers[0].attention.q_proj.weight.grad is not None


def test_shipped_configs_have_the_same_keys():
    from vislab.run import list_presets, load_preset

    def keys(d, prefix=""):
        out = set()
        for k, v in d.items():
            if k in ("trainer", "config"):
                continue
            out.add(prefix + k)
            if isinstance(v, dict):
                out |= keys(v, prefix + k + ".")
        return out

    presets = list_presets("diffspeaker")
    assert {"default", "paper", "paper_biwi"} <= set(presets)
    base = keys(load_preset("diffspeaker"))
    for name in presets:
        cfg = load_preset("diffspeaker", name)
        assert keys(cfg) == base, name
    paper = load_preset("diffspeaker", "paper")
    assert (paper["model"]["dim"], paper["model"]["ff"], paper["model"]["period"], paper["optim"]["lr"]) == (
        512,
        1024,
        30,
        1e-4,
    )
    biwi = load_preset("diffspeaker", "paper_biwi")
    assert (
        biwi["model"]["dim"],
        biwi["model"]["ff"],
        biwi["model"]["period"],
        biwi["data"]["train_repeat"],
    ) == (1024, 2048, 25, 20)


@pytest.mark.parametrize("kind", ["wav2vec2", "hubert"])
def test_audio_encoder_from_local_folder(tmp_path, kind):
    from diffspeaker.model import build_backbone
    from diffspeaker.module import DiffSpeakerModule
    from vislab.errors import InputError

    torch.manual_seed(0)
    ref = build_backbone(tiny_audio_config(kind))
    assert type(ref).__name__ == ("HubertModel" if kind == "hubert" else "Wav2Vec2Model")
    ref.save_pretrained(tmp_path / "enc")
    cfg = {
        "n_feats": 6,
        "dim": 16,
        "ff": 32,
        "heads": 4,
        "layers": 1,
        "period": 30,
        "n_styles": 2,
        "time_sin_dim": 16,
    }
    m = DiffSpeakerModule(cfg, audio_path=str(tmp_path / "enc"))
    got = m.model.audio_encoder.backbone.state_dict()
    for k, v in ref.state_dict().items():
        assert torch.equal(got[k], v), k
    assert (
        m.hparams["audio_path"] is None and m.hparams["audio"]["hidden_size"] == 32
    )  # self-contained checkpoint
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="config.json missing"):
        build_backbone(path=str(tmp_path / "empty"))
    with pytest.raises(InputError, match="not found"):
        build_backbone(path=str(tmp_path / "nope"))


def test_cfg_training_drops_audio():
    from diffspeaker.data import SyntheticTalkingFaces, collate

    ds = SyntheticTalkingFaces(2, seed=0, seconds=1.0)
    b = collate([ds[0], ds[1]])
    m = DiffSpeaker(
        {
            "n_feats": 900,
            "dim": 16,
            "ff": 32,
            "heads": 4,
            "layers": 1,
            "period": 30,
            "n_styles": 3,
            "time_sin_dim": 16,
            "dropout": 0.0,
        },
        tiny_audio_config(),
    )
    torch.nn.init.normal_(m.denoiser.motion_decoder.weight)
    m.eval()  # no SpecAugment/LayerDrop/dropout: only the drawn t and noise are random
    torch.manual_seed(5)
    dropped, _ = m.training_prediction(b, p_uncond=1.0)
    silent = dict(b, audio=torch.zeros_like(b["audio"]))
    torch.manual_seed(5)
    torch.rand(2)  # the same random stream as the p_uncond draw
    ref, _ = m.training_prediction(silent, p_uncond=0.0)
    assert torch.allclose(dropped, ref, atol=1e-5)
    torch.manual_seed(5)
    torch.rand(2)
    kept, _ = m.training_prediction(b, p_uncond=0.0)
    assert not torch.allclose(kept, ref)


def test_print_config_presets(capsys):
    from diffspeaker.cli import main

    assert main(["--preset", "paper", "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "source: vocaset" in out and "dim: 512" in out
    assert main(["--preset", "nope"]) == 2
