"""FLa-LLM's modules. B batch, T frames, N = ceil(T/4) sampled frames.

Stage 1: ``VisualEncoder`` (``Backbone`` per frame + ``LocalTemporalModule``) -> ``VLAdapter``
-> ``LightT`` (small transformer encoder-decoder, randomly initialised).
Stage 2: the frozen stage-1 ``VisualEncoder`` -> ``LLMAdapter`` -> mBART (``inputs_embeds``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn
from vislab.errors import InputError

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def lengths_to_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """(B,) lengths -> (B, max_len) long mask, 1 on valid positions."""
    max_len = int(max_len if max_len is not None else lengths.max().item())
    return (torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]).long()


class TinyCNN(nn.Module):
    """Toy backbone: Conv3x3 s2 16ch-BN-ReLU-Conv3x3 s2 32ch-BN-ReLU-GAP.

    (M, 3, H, W) -> (M, 32).
    """

    def __init__(self, width: int = 16):
        super().__init__()
        self.out_dim = 2 * width
        self.net = nn.Sequential(
            nn.Conv2d(3, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, 2 * width, 3, 2, 1, bias=False), nn.BatchNorm2d(2 * width), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Backbone(nn.Module):
    """Per-frame 2D CNN (paper: ImageNet ResNet18 with ``fc`` removed).

    ``forward(frames (B, N, 3, H, W), lengths (B,))`` runs only the ``sum(lengths)`` real
    frames, ``(sum N_i, 3, H, W) -> (sum N_i, D)``, and re-pads to ``(B, N, D)`` (zeros after
    each clip's length). Frames are float in [0, 1]; ImageNet normalisation happens here.
    """

    def __init__(self, name: str = "resnet18", weights: str | None = None, tiny_width: int = 16):
        super().__init__()
        if name == "resnet18":
            import torchvision

            net = torchvision.models.resnet18(weights=None)
            if weights:
                p = Path(weights).expanduser()
                if not p.is_file():
                    raise InputError(p, "ResNet18 weights file not found")
                from vislab.io import load_torch

                try:
                    sd = load_torch(p, "ResNet18 weights")
                    sd = sd.get("state_dict", sd) if isinstance(sd, dict) else sd
                    net.load_state_dict(sd)
                except Exception as e:  # noqa: BLE001 - wrong or corrupt file
                    raise InputError(p, f"not a torchvision ResNet18 state_dict ({e.__class__.__name__}: {str(e)[:160]})") from None
            net.fc = nn.Identity()
            self.net, self.out_dim = net, 512
        elif name == "tiny_cnn":
            self.net = TinyCNN(tiny_width)
            self.out_dim = self.net.out_dim
            if weights:
                from vislab.io import load_torch

                sd = load_torch(weights, "tiny_cnn weights")
                try:
                    self.net.load_state_dict(sd)
                except (RuntimeError, TypeError, AttributeError) as e:
                    raise InputError(weights, f"not a tiny_cnn state_dict ({str(e).splitlines()[0][:160]})") from None
        else:
            raise ValueError(f"unknown backbone {name!r} (resnet18, tiny_cnn)")
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        B, N = frames.shape[:2]
        valid = lengths_to_mask(lengths, N).bool()
        x = frames[valid]                                  # (sum N_i, 3, H, W)
        x = (x - self.mean) / self.std
        f = self.net(x)                                    # (sum N_i, D)
        out = f.new_zeros(B, N, f.shape[-1])
        out[valid] = f
        return out


class LocalTemporalModule(nn.Module):
    """One Conv1d + one BatchNorm1d + one ReLU over time; length preserved.

    (B, N, D) -> (B, N, C); kernel k, stride 1, padding k//2 (paper: k and C unstated;
    default k=5, C=1024 as GFSLT-VLP's temporal conv). Padding steps are zeroed before the
    conv and after it, and BatchNorm statistics use only real steps.
    """

    def __init__(self, in_dim: int, out_dim: int = 1024, kernel: int = 5):
        super().__init__()
        self.conv = nn.Conv1d(in_dim, out_dim, kernel, 1, kernel // 2)
        self.bn = nn.BatchNorm1d(out_dim)
        self.act = nn.ReLU(inplace=True)
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = lengths_to_mask(lengths, x.shape[1]).bool()                # (B, N)
        y = self.conv((x * mask[..., None]).transpose(1, 2)).transpose(1, 2)  # (B, N, C)
        z = torch.zeros_like(y)
        z[mask] = self.act(self.bn(y[mask]))                                 # BN over real steps only
        return z


class VisualEncoder(nn.Module):
    """Backbone + LocalTemporalModule: frames (B, N, 3, H, W) -> sign-wise features F (B, N, C)."""

    def __init__(self, backbone: str = "resnet18", weights: str | None = None, temporal_dim: int = 1024,
                 temporal_kernel: int = 5, tiny_width: int = 16):
        super().__init__()
        self.backbone = Backbone(backbone, weights, tiny_width)
        self.temporal = LocalTemporalModule(self.backbone.out_dim, temporal_dim, temporal_kernel)
        self.out_dim = temporal_dim

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.temporal(self.backbone(frames, lengths), lengths)


class VLAdapter(nn.Module):
    """MLP with one hidden layer, C -> D: Linear(C, D)-ReLU-Linear(D, D). (B, N, C) -> (B, N, D)."""

    def __init__(self, in_dim: int, dim: int = 512):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, dim))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.net(f)


class LLMAdapter(nn.Module):
    """MLP with one hidden layer into the LLM width: Linear(C, H)-GELU-Linear(H, H).

    (B, N, C) -> (B, N, H); the output replaces mBART's encoder token embeddings
    (``inputs_embeds``; mBART still adds its learned positions and ``layernorm_embedding``).
    """

    def __init__(self, in_dim: int, dim: int = 1024, hidden: int | None = None):
        super().__init__()
        hidden = hidden or dim
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.net(f)


def mbart_config(vocab_size: int, d_model: int, encoder_layers: int, decoder_layers: int, heads: int, ffn: int,
                 max_positions: int = 1024, dropout: float = 0.1, attention_dropout: float = 0.0,
                 scale_embedding: bool = True, pad_id: int = 1, bos_id: int = 0, eos_id: int = 2,
                 decoder_start_id: int = 2) -> Any:
    """An ``MBartConfig`` (pre-LN, learned positions) for Light-T or a random-init "LLM"."""
    from transformers import MBartConfig

    return MBartConfig(
        vocab_size=vocab_size, d_model=d_model, encoder_layers=encoder_layers, decoder_layers=decoder_layers,
        encoder_attention_heads=heads, decoder_attention_heads=heads, encoder_ffn_dim=ffn, decoder_ffn_dim=ffn,
        max_position_embeddings=max_positions, dropout=dropout, attention_dropout=attention_dropout,
        activation_dropout=0.0, scale_embedding=scale_embedding, pad_token_id=pad_id, bos_token_id=bos_id,
        eos_token_id=eos_id, decoder_start_token_id=decoder_start_id, forced_eos_token_id=eos_id,
        tie_word_embeddings=True,
    )


class Seq2SeqHead(nn.Module):
    """An MBart encoder-decoder fed with ``inputs_embeds`` (Light-T, or the LLM of stage 2).

    ``forward(embeds (B, N, H), mask (B, N), decoder_input_ids (B, L)) -> logits (B, L, V)``;
    ``generate`` runs beam search from the language-code start token.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model  # MBartForConditionalGeneration (possibly with LoRA layers injected)

    @property
    def d_model(self) -> int:
        return int(self.model.config.d_model)

    def forward(self, embeds: torch.Tensor, mask: torch.Tensor, decoder_input_ids: torch.Tensor) -> torch.Tensor:
        dec_mask = decoder_input_ids.ne(self.model.config.pad_token_id).long()
        dec_mask[:, 0] = 1
        out = self.model(inputs_embeds=embeds, attention_mask=mask, decoder_input_ids=decoder_input_ids,
                         decoder_attention_mask=dec_mask, use_cache=False)
        return out.logits

    @torch.no_grad()
    def generate(self, embeds: torch.Tensor, mask: torch.Tensor, start_id: int, num_beams: int = 5,
                 max_new_tokens: int = 150, length_penalty: float = 1.0) -> torch.Tensor:
        from transformers.modeling_outputs import BaseModelOutput

        enc = self.model.get_encoder()(inputs_embeds=embeds, attention_mask=mask)
        return self.model.generate(
            encoder_outputs=BaseModelOutput(last_hidden_state=enc.last_hidden_state), attention_mask=mask,
            decoder_start_token_id=start_id, num_beams=num_beams, max_new_tokens=max_new_tokens,
            length_penalty=length_penalty, early_stopping=True, do_sample=False,
            eos_token_id=self.model.config.eos_token_id, pad_token_id=self.model.config.pad_token_id,
            forced_bos_token_id=None, forced_eos_token_id=None,
        )


def build_light_t(cfg: dict[str, Any], vocab_size: int, pad_id: int, eos_id: int) -> Seq2SeqHead:
    """Light-T (paper: 3+3 layers, 8 heads, 512 hidden, FFN 2048), random init, MBart architecture."""
    from transformers import MBartForConditionalGeneration

    c = mbart_config(vocab_size, cfg["d_model"], cfg["encoder_layers"], cfg["decoder_layers"], cfg["heads"], cfg["ffn"],
                     max_positions=cfg.get("max_positions", 1024), dropout=cfg.get("dropout", 0.1),
                     pad_id=pad_id, eos_id=eos_id)
    return Seq2SeqHead(MBartForConditionalGeneration(c))


def build_llm(cfg: dict[str, Any], vocab_size: int, pad_id: int, eos_id: int) -> Seq2SeqHead:
    """The stage-2 language model: a local (trimmed) mBART folder, or a tiny random-init MBart.

    ``cfg["path"]`` set: ``MBartForConditionalGeneration.from_pretrained(path)`` from local
    files only; otherwise ``cfg["tiny"]`` gives the random-init config. ``cfg["config"]``
    (a stored config dict, used when loading a checkpoint) builds the architecture without
    weights. ``finetune: lora`` injects peft LoRA layers and freezes the other LLM weights.
    """
    from transformers import MBartConfig, MBartForConditionalGeneration

    if cfg.get("config"):
        model = MBartForConditionalGeneration(MBartConfig.from_dict(dict(cfg["config"])))
    elif cfg.get("path"):
        p = Path(cfg["path"]).expanduser()
        if not p.is_dir():
            raise InputError(p, "mBART folder not found (give a local transformers folder, e.g. made by `flallm trim`)")
        kw = {"dropout": float(cfg["dropout"])} if cfg.get("dropout") is not None else {}
        try:  # config overrides go through from_pretrained so the layers are built with them
            model = MBartForConditionalGeneration.from_pretrained(str(p), local_files_only=True, **kw)
        except Exception as e:  # noqa: BLE001
            raise InputError(p, f"cannot load an mBART model ({e.__class__.__name__}: {str(e)[:160]})") from None
    else:
        t = cfg["tiny"]
        model = MBartForConditionalGeneration(mbart_config(
            vocab_size, t["d_model"], t["encoder_layers"], t["decoder_layers"], t["heads"], t["ffn"],
            max_positions=t.get("max_positions", 64), dropout=t.get("dropout", 0.1), pad_id=pad_id, eos_id=eos_id))
    if model.config.vocab_size < vocab_size:
        raise InputError(cfg.get("path") or "llm", f"model vocabulary ({model.config.vocab_size}) is smaller than the tokenizer's ({vocab_size}); trim both with `flallm trim`")
    if cfg.get("gradient_checkpointing"):
        model.gradient_checkpointing_enable()
    if cfg.get("finetune", "full") == "lora":
        apply_lora(model, cfg.get("lora", {}))
    elif cfg.get("finetune", "full") != "full":
        raise ValueError(f"llm.finetune must be 'full' or 'lora', got {cfg.get('finetune')!r}")
    return Seq2SeqHead(model)


def apply_lora(model: nn.Module, lcfg: dict[str, Any]) -> nn.Module:
    """Inject peft LoRA layers (default r=16, alpha=32, dropout 0.05 on q,k,v,out_proj,fc1,fc2)
    and leave only the LoRA weights of the LLM trainable."""
    from peft import LoraConfig, inject_adapter_in_model

    conf = LoraConfig(r=int(lcfg.get("r", 16)), lora_alpha=int(lcfg.get("alpha", 32)), lora_dropout=float(lcfg.get("dropout", 0.05)),
                      target_modules=list(lcfg.get("targets", ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"])))
    inject_adapter_in_model(conf, model)
    for n, p in model.named_parameters():
        p.requires_grad_("lora_" in n)
    return model


def count_params(m: nn.Module, trainable: bool = False) -> int:
    return sum(p.numel() for p in m.parameters() if p.requires_grad or not trainable)


__all__ = ["Backbone", "TinyCNN", "LocalTemporalModule", "VisualEncoder", "VLAdapter", "LLMAdapter", "Seq2SeqHead",
           "build_light_t", "build_llm", "apply_lora", "mbart_config", "lengths_to_mask", "math"]
