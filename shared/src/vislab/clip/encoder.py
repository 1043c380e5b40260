"""One CLIP interface over two backends: Hugging Face ``CLIPModel`` folders and open_clip models.

:class:`ClipEncoder` exposes the pieces the prompt-learning packages need beyond ``encode_text`` /
``encode_image``: the token-embedding path (run the frozen text transformer on embeddings you built,
pooling at each row's first ``<|endoftext|>``), image tokens and per-block hidden states, and visual
prompt tokens appended to the image token sequence.

Nothing is downloaded: weights come from a local folder or a local checkpoint file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vislab.clip.tokenizer import BOS_ID, EOS_ID, VOCAB_SIZE, clip_tokenizer
from vislab.errors import InputError, VislabError

# OpenAI CLIP's pixel normalisation (also open_clip's default for OpenAI-style models).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


# --------------------------------------------------------------------------------------------
# Text transformer on given token embeddings (shared with vislab.diffusion for CLIPTextModel)
# --------------------------------------------------------------------------------------------
def eos_positions(ids: torch.Tensor, eos_id: int = EOS_ID) -> torch.Tensor:
    """Index of the first ``eos_id`` in each row of ``ids`` (B, L); rows without one use the last slot."""
    hit = ids == eos_id
    pos = hit.int().argmax(dim=-1)
    return torch.where(hit.any(dim=-1), pos, torch.full_like(pos, ids.shape[-1] - 1))


def hf_text_hidden_states(text_model: nn.Module, embeds: torch.Tensor) -> torch.Tensor:
    """Run a transformers ``CLIPTextModel`` (or its ``.text_model``) on token embeddings.

    ``embeds`` (B, L, W) are *token* embeddings (no positions): position embeddings, the causal
    encoder and the final layer norm are applied here, exactly as ``CLIPTextModel.forward`` does for
    ``input_ids``. Returns the last hidden states (B, L, W) after the final layer norm.
    """
    from transformers.masking_utils import create_causal_mask

    tm = getattr(text_model, "text_model", text_model)
    L = embeds.shape[1]
    if L > tm.embeddings.position_embedding.num_embeddings:
        raise VislabError(f"sequence of {L} tokens is longer than the text encoder's {tm.embeddings.position_embedding.num_embeddings} positions")
    pos = tm.embeddings.position_embedding(tm.embeddings.position_ids[:, :L])
    hidden = embeds.to(pos.dtype) + pos
    mask = create_causal_mask(config=tm.config, inputs_embeds=hidden, attention_mask=None, cache=None)
    out = tm.encoder(inputs_embeds=hidden, attention_mask=mask, is_causal=True)
    return tm.final_layer_norm(out.last_hidden_state)


def _first(x: Any) -> torch.Tensor:
    """transformers 5 returns output objects from ``get_*_features``; older versions a tensor."""
    if isinstance(x, torch.Tensor):
        return x
    return x.pooler_output


class ClipEncoder(nn.Module):
    """A CLIP model (Hugging Face ``CLIPModel`` or open_clip ``CLIP``) behind one interface.

    Attributes: ``backend`` ("hf" | "open_clip"), ``model`` (the wrapped model), ``tokenizer`` (a
    ``CLIPTokenizer``), ``image_size``, ``embed_dim`` (D), ``text_width`` (Wt), ``vision_width`` (Wv),
    ``context_length``, ``logit_scale`` (exp'ed scalar tensor).

    Pixel inputs of ``encode_image`` are CLIP-normalised: call :meth:`normalize` on images in [0, 1].
    """

    def __init__(self, model: nn.Module, backend: str, tokenizer=None, mean=CLIP_MEAN, std=CLIP_STD):
        super().__init__()
        if backend not in ("hf", "open_clip"):
            raise ValueError(f"backend must be 'hf' or 'open_clip', not {backend!r}")
        self.model = model
        self.backend = backend
        self.register_buffer("pixel_mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        if backend == "hf":
            tc, vc = model.config.text_config, model.config.vision_config
            self.context_length = int(tc.max_position_embeddings)
            self.embed_dim = int(model.config.projection_dim)
            self.text_width = int(tc.hidden_size)
            self.vision_width = int(vc.hidden_size)
            self.image_size = int(vc.image_size)
            self.patch_size = int(vc.patch_size)
        else:
            self.context_length = int(model.context_length)
            self.text_width = int(self._oc_text().token_embedding.weight.shape[1])
            v = model.visual
            size = getattr(v, "image_size", 224)
            self.image_size = int(size[0] if isinstance(size, (tuple, list)) else size)
            ps = getattr(v, "patch_size", None)
            self.patch_size = int(ps[0] if isinstance(ps, (tuple, list)) else ps) if ps is not None else None
            self.vision_width = int(v.conv1.out_channels) if hasattr(v, "conv1") and hasattr(v, "class_embedding") else None
            self.embed_dim = int(getattr(v, "output_dim", 0) or model.text_projection.shape[-1])
        if tokenizer is None:
            tokenizer = clip_tokenizer(self.context_length)
        tokenizer.model_max_length = min(int(tokenizer.model_max_length), self.context_length)
        self.tokenizer = tokenizer

    # ---------------------------------------------------------------------------- helpers
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.model.logit_scale.exp()

    def freeze(self) -> ClipEncoder:
        """Turn off gradients for every CLIP weight and switch to eval mode; returns self."""
        self.requires_grad_(False)
        return self.eval()

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] (B, 3, H, W) -> CLIP-normalised pixels."""
        return (pixels - self.pixel_mean.to(pixels)) / self.pixel_std.to(pixels)

    def preprocess(self, pixels: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] of any size -> resized (bicubic, antialiased) to ``image_size`` and normalised."""
        if pixels.shape[-2:] != (self.image_size, self.image_size):
            pixels = F.interpolate(pixels, size=(self.image_size, self.image_size), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
        return self.normalize(pixels)

    # ---------------------------------------------------------------------------- text
    def tokenize(self, texts: list[str] | str, context_length: int | None = None) -> torch.Tensor:
        """Token ids (B, L) padded with ``<|endoftext|>`` to ``context_length`` (default: the model's)."""
        if isinstance(texts, str):
            texts = [texts]
        n = int(context_length or self.context_length)
        if n > self.context_length:
            raise VislabError(f"context_length {n} exceeds the model's {self.context_length}")
        enc = self.tokenizer(list(texts), padding="max_length", truncation=True, max_length=n, return_tensors="pt")
        return enc.input_ids.to(self.device)

    def _oc_text(self) -> nn.Module:
        """The open_clip module holding the text tower's parts (CLIP itself, or ``.text``)."""
        m = self.model
        if hasattr(m, "token_embedding"):
            return m
        t = getattr(m, "text", None)
        if t is not None and hasattr(t, "token_embedding") and getattr(t, "cls_emb", None) is None:
            return t
        raise VislabError(f"open_clip model {type(m).__name__} has no CLIP-style text transformer; token-embedding prompts are not supported")

    def token_embedding(self, ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings (B, L, Wt) of ``ids`` (no position embedding)."""
        if self.backend == "hf":
            return self.model.text_model.embeddings.token_embedding(ids)
        return self._oc_text().token_embedding(ids)

    def text_hidden_states(self, embeds: torch.Tensor) -> torch.Tensor:
        """Final-layer-normed hidden states (B, L, Wt) of the text transformer run on token embeddings."""
        if self.backend == "hf":
            return hf_text_hidden_states(self.model.text_model, embeds)
        t = self._oc_text()
        L = embeds.shape[1]
        x = embeds + t.positional_embedding[:L].to(embeds.dtype)
        mask = t.attn_mask
        if mask is not None:
            mask = mask[:L, :L].to(x.device)
        x = t.transformer(x, attn_mask=mask)
        return t.ln_final(x)

    def project_text(self, pooled: torch.Tensor) -> torch.Tensor:
        """Text projection of pooled (B, Wt) features -> (B, D)."""
        if self.backend == "hf":
            return self.model.text_projection(pooled)
        proj = self._oc_text().text_projection
        if proj is None:
            return pooled
        return proj(pooled) if isinstance(proj, nn.Module) else pooled @ proj

    def encode_text_embeddings(self, embeds: torch.Tensor, ids: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """Text features (B, D) of token embeddings ``embeds`` (B, L, Wt).

        Runs position embedding + causal transformer + final layer norm, pools each row at the first
        ``<|endoftext|>`` of ``ids`` (B, L) (the ids the embeddings stand for; placeholder slots may hold
        any id except EOS), then applies the text projection. Gradients flow into ``embeds``.
        """
        if embeds.shape[:2] != ids.shape:
            raise ValueError(f"embeds {tuple(embeds.shape)} and ids {tuple(ids.shape)} disagree")
        h = self.text_hidden_states(embeds)
        pooled = h[torch.arange(h.shape[0], device=h.device), eos_positions(ids).to(h.device)]
        x = self.project_text(pooled)
        return F.normalize(x, dim=-1) if normalize else x

    def encode_text(self, ids: torch.Tensor | list[str], normalize: bool = False) -> torch.Tensor:
        """Text features (B, D) of token ids (B, L) (or a list of strings, tokenized here)."""
        if not isinstance(ids, torch.Tensor):
            ids = self.tokenize(ids)
        # one path for both backends: pools at the first <|endoftext|> even where a checkpoint's config
        # says eos_token_id=2 (old OpenAI conversions pool at argmax, wrong once tokens are added)
        return self.encode_text_embeddings(self.token_embedding(ids), ids, normalize=normalize)

    # ---------------------------------------------------------------------------- image
    def _vit_ok(self) -> None:
        if self.backend == "open_clip":
            v = self.model.visual
            if not (hasattr(v, "conv1") and hasattr(v, "class_embedding")) or getattr(v, "attn_pool", None) is not None \
                    or getattr(v, "pool_type", "tok") != "tok" or getattr(v, "final_ln_after_pool", False):
                raise VislabError(f"image tokens and visual prompts need a plain ViT image tower; {type(v).__name__} is not one")

    def image_embeddings(self, pixels: torch.Tensor, prompt_tokens: torch.Tensor | None = None) -> torch.Tensor:
        """Patch + class + position embeddings (B, 1+N(+M), Wv), with ``prompt_tokens`` (M, Wv) or
        (B, M, Wv) appended after the patch tokens, before the pre-transformer layer norm (MaPLe's place)."""
        self._vit_ok()
        if self.backend == "hf":
            x = self.model.vision_model.embeddings(pixels)
        else:
            v = self.model.visual
            x = v.conv1(pixels.to(v.conv1.weight.dtype))
            x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
            cls = v.class_embedding.to(x.dtype).view(1, 1, -1).expand(x.shape[0], -1, -1)
            x = torch.cat([cls, x], dim=1)
            if x.shape[1] != v.positional_embedding.shape[0]:
                raise VislabError(f"images must be {self.image_size}x{self.image_size} for this CLIP (got {tuple(pixels.shape[-2:])})")
            x = x + v.positional_embedding.to(x.dtype)
        if prompt_tokens is not None:
            p = prompt_tokens.to(x.dtype)
            if p.dim() == 2:
                p = p.unsqueeze(0).expand(x.shape[0], -1, -1)
            x = torch.cat([x, p], dim=1)
        return x

    def vision_blocks(self):
        """``(ln_pre, [block callables h -> h], ln_post)`` of the vision transformer (batch-first)."""
        if self.backend == "hf":
            vm = self.model.vision_model
            return vm.pre_layrnorm, [lambda h, layer=layer: layer(h, None) for layer in vm.encoder.layers], vm.post_layernorm
        v = self.model.visual
        return v.ln_pre, [lambda h, blk=blk: blk(h) for blk in v.transformer.resblocks], v.ln_post

    _vision_blocks = vision_blocks  # old private name, kept for callers

    def image_layers(self, pixels: torch.Tensor, prompt_tokens=None) -> list[torch.Tensor]:
        """Output of every vision transformer block (each (B, 1+N(+M), Wv), before the post layer norm).

        ``prompt_tokens``: None; one tensor (M, Wv) or (B, M, Wv) appended at the input (shallow); or a
        list ``[V_1, .., V_J]`` of such tensors: V_1 appended at the input and, MaPLe-style deep prompts,
        the M prompt slots replaced by V_j at the input of block j (j = 2..J).
        """
        deep = list(prompt_tokens) if isinstance(prompt_tokens, (list, tuple)) else [prompt_tokens]
        ln_pre, blocks, _ = self.vision_blocks()
        h = ln_pre(self.image_embeddings(pixels, deep[0]))
        m = 0 if deep[0] is None else deep[0].shape[-2]
        if len(deep) > len(blocks):
            raise VislabError(f"{len(deep)} deep prompt sets for {len(blocks)} vision blocks")
        outs = []
        for j, blk in enumerate(blocks):
            if 0 < j < len(deep) and deep[j] is not None:
                p = deep[j].to(h.dtype)
                if p.shape[-2] != m:
                    raise ValueError(f"deep prompt set {j} has {p.shape[-2]} tokens, the first has {m}")
                p = p.unsqueeze(0).expand(h.shape[0], -1, -1) if p.dim() == 2 else p
                h = torch.cat([h[:, : h.shape[1] - m], p], dim=1)
            h = blk(h)
            outs.append(h)
        return outs

    def image_projection(self, x: torch.Tensor) -> torch.Tensor:
        """Project post-layer-norm vision features (..., Wv) into the joint space (..., D)."""
        if self.backend == "hf":
            return self.model.visual_projection(x)
        proj = self.model.visual.proj
        return x if proj is None else x @ proj

    def pool_image(self, last_hidden: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """Image feature (B, D) from the last block's output (B, 1+N, Wv): post-LN of CLS, then projection."""
        _, _, ln_post = self.vision_blocks()
        x = self.image_projection(ln_post(last_hidden[:, 0]))
        return F.normalize(x, dim=-1) if normalize else x

    def encode_image(self, pixels: torch.Tensor, return_tokens: bool = False, normalize: bool = False,
                     prompt_tokens=None):
        """Image features (B, D) of CLIP-normalised ``pixels`` (B, 3, H, W).

        With ``return_tokens=True`` also returns all tokens after the post layer norm and before the
        projection, ``(B, 1+N, Wv)`` (CLS first; visual prompt tokens, if any, at the end); map them to
        the joint space with :meth:`image_projection`. ``prompt_tokens``: visual prompts, see :meth:`image_layers`.
        """
        if not return_tokens and prompt_tokens is None:
            if self.backend == "hf":
                x = _first(self.model.get_image_features(pixel_values=pixels))
            else:
                x = self.model.visual(pixels)
                x = x[0] if isinstance(x, tuple) else x
            return F.normalize(x, dim=-1) if normalize else x
        last = self.image_layers(pixels, prompt_tokens)[-1]
        _, _, ln_post = self.vision_blocks()
        tokens = ln_post(last)
        x = self.image_projection(tokens[:, 0])
        x = F.normalize(x, dim=-1) if normalize else x
        return (x, tokens) if return_tokens else x

    def forward(self, pixels: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """CLIP logits (B_img, B_txt) = logit_scale * cos(image, text)."""
        img = self.encode_image(pixels, normalize=True)
        txt = self.encode_text(ids, normalize=True)
        return self.logit_scale * img @ txt.t()

    # ---------------------------------------------------------------------------- saving
    def save(self, path: str | Path) -> Path:
        """Save a Hugging Face backed CLIP as a loadable folder (model, tokenizer, preprocessor config)."""
        if self.backend != "hf":
            raise VislabError("only Hugging Face CLIPs can be saved as a folder; save model.state_dict() instead")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        (path / "preprocessor_config.json").write_text(json.dumps({
            "image_processor_type": "CLIPImageProcessor",
            "image_mean": self.pixel_mean.flatten().tolist(),
            "image_std": self.pixel_std.flatten().tolist(),
            "crop_size": {"height": self.image_size, "width": self.image_size},
            "size": {"shortest_edge": self.image_size},
        }, indent=2))
        return path


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------
def _load_hf_folder(path: Path) -> ClipEncoder:
    from transformers import CLIPModel, CLIPTokenizer

    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise InputError(path, "not a Hugging Face CLIP folder (no config.json); give a CLIPModel.save_pretrained folder, "
                               "or an open_clip architecture name with --checkpoint")
    try:
        cfg = json.loads(cfg_file.read_text())
    except (OSError, ValueError) as e:
        raise InputError(cfg_file, f"unreadable config ({e})") from None
    if cfg.get("model_type") != "clip":
        raise InputError(path, f"config.json describes a {cfg.get('model_type')!r} model, not a CLIP (model_type 'clip')")
    try:
        model = CLIPModel.from_pretrained(path, local_files_only=True)
    except Exception as e:  # noqa: BLE001 - transformers raises many kinds
        raise InputError(path, f"cannot load the CLIP weights ({e.__class__.__name__}: {str(e).splitlines()[0][:300]})") from None
    tok = None
    if (path / "tokenizer.json").is_file() or (path / "vocab.json").is_file():
        try:
            tok = CLIPTokenizer.from_pretrained(path, local_files_only=True)
        except Exception:  # noqa: BLE001 - fall back to the built-in vocabulary
            tok = None
    mean, std = CLIP_MEAN, CLIP_STD
    pp = path / "preprocessor_config.json"
    if pp.is_file():
        try:
            d = json.loads(pp.read_text())
            mean, std = tuple(d.get("image_mean", mean)), tuple(d.get("image_std", std))
        except ValueError:
            pass
    return ClipEncoder(model.eval(), "hf", tokenizer=tok, mean=mean, std=std)


def _read_state_dict(ckpt: Path) -> dict[str, torch.Tensor]:
    if ckpt.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(ckpt))
        except Exception as e:  # noqa: BLE001
            raise InputError(ckpt, f"not a readable safetensors file ({e})") from None
    try:
        sd = torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - maybe an OpenAI TorchScript archive
        try:
            sd = torch.jit.load(str(ckpt), map_location="cpu").state_dict()
        except Exception:  # noqa: BLE001
            raise InputError(ckpt, f"not a readable PyTorch checkpoint ({e.__class__.__name__}: {str(e).splitlines()[0][:200]})") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise InputError(ckpt, "the checkpoint does not hold a state dict of tensors")
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    for k in ("input_resolution", "context_length", "vocab_size"):  # OpenAI archives carry these
        sd.pop(k, None)
    return sd


def _load_open_clip(name: str, checkpoint: str | Path, **kwargs: Any) -> ClipEncoder:
    import open_clip

    ckpt = Path(checkpoint).expanduser()
    if not ckpt.is_file():
        raise InputError(ckpt, "CLIP checkpoint file not found" if not ckpt.exists() else "CLIP checkpoint must be a file")
    if name not in open_clip.list_models():
        raise VislabError(f"{name!r} is not an open_clip architecture (e.g. ViT-B-16, ViT-B-32, ViT-L-14, RN50); "
                          f"for a Hugging Face CLIP give its folder instead")
    try:
        model = open_clip.create_model(name, pretrained=None, **kwargs)
    except Exception as e:  # noqa: BLE001 - e.g. a Hugging Face text tower that needs the hub
        raise VislabError(f"cannot build the open_clip architecture {name!r} offline ({e.__class__.__name__}: "
                          f"{str(e).splitlines()[0][:200] if str(e) else ''})") from None
    emb = getattr(model, "token_embedding", None) or getattr(getattr(model, "text", None), "token_embedding", None)
    if not isinstance(emb, nn.Embedding) or emb.num_embeddings != VOCAB_SIZE:
        raise VislabError(f"open_clip architecture {name!r} does not use CLIP's BPE text tower (49,408 tokens); "
                          f"vislab.clip supports CLIP-style open_clip models only")
    sd = _read_state_dict(ckpt)
    own = model.state_dict()
    bad = [k for k, v in sd.items() if k in own and own[k].shape != v.shape]
    missing = [k for k in own if k not in sd and not k.endswith("logit_bias")]
    if bad or len(missing) > 0.5 * len(own) or not (set(sd) & set(own)):
        detail = f"shape mismatch at {bad[:3]}" if bad else f"{len(missing)} of {len(own)} weights missing (e.g. {missing[:3]})"
        raise InputError(ckpt, f"does not match the open_clip architecture {name!r}: {detail}")
    res = model.load_state_dict({k: v for k, v in sd.items() if k in own}, strict=False)
    if res.missing_keys and any(not k.endswith("logit_bias") for k in res.missing_keys):
        raise InputError(ckpt, f"does not match the open_clip architecture {name!r}: missing {res.missing_keys[:5]}")
    pc = getattr(model.visual, "preprocess_cfg", {}) or {}
    mean = tuple(pc.get("mean", getattr(model.visual, "image_mean", None) or CLIP_MEAN))
    std = tuple(pc.get("std", getattr(model.visual, "image_std", None) or CLIP_STD))
    return ClipEncoder(model.eval(), "open_clip", mean=mean, std=std)


def _load_openai(checkpoint: str | Path) -> ClipEncoder:
    """An OpenAI-layout CLIP file (OpenAI's TorchScript ``.pt`` archive, or a state dict with OpenAI's key
    names, e.g. ``torch.save(open_clip_model.state_dict())`` of a plain CLIP): the architecture is read off
    the tensor shapes (widths, layer counts, patch size, context length; 64-wide attention heads and
    QuickGELU, as in every OpenAI CLIP)."""
    from open_clip.model import build_model_from_openai_state_dict

    ckpt = Path(checkpoint).expanduser()
    if not ckpt.is_file():
        raise InputError(ckpt, "CLIP checkpoint file not found" if not ckpt.exists() else "CLIP checkpoint must be a file")
    # attention masks are recomputed from the context length (a traced archive may carry one as a buffer)
    sd = {k: v for k, v in _read_state_dict(ckpt).items() if not k.endswith("attn_mask")}
    need = ("text_projection", "positional_embedding", "token_embedding.weight", "ln_final.weight")
    if any(k not in sd for k in need) or not any(k.startswith("visual.") for k in sd):
        raise InputError(ckpt, "not an OpenAI-layout CLIP state dict (no text_projection / token_embedding / visual.*); "
                               "for an open_clip checkpoint give its architecture name too")
    try:
        model = build_model_from_openai_state_dict(dict(sd), quick_gelu=True, cast_dtype=None).float()
    except Exception as e:  # noqa: BLE001 - inconsistent shapes, missing keys
        raise InputError(ckpt, f"cannot build a CLIP from this state dict ({e.__class__.__name__}: "
                               f"{str(e).splitlines()[0][:200] if str(e) else ''})") from None
    return ClipEncoder(model.eval(), "open_clip")


def load_clip(path_or_name: str | Path, checkpoint: str | Path | None = None, **open_clip_kwargs: Any) -> ClipEncoder:
    """Load a CLIP from local files only.

    - ``load_clip("/models/clip-vit-base-patch16")``: a Hugging Face folder (``CLIPModel.save_pretrained``).
    - ``load_clip("ViT-B-16", "/models/ViT-B-16.pt")``: an open_clip architecture name and a local
      checkpoint (open_clip state dict, training checkpoint with ``state_dict``, safetensors, or an OpenAI
      TorchScript archive). Extra keyword arguments go to ``open_clip.create_model`` (e.g.
      ``force_quick_gelu=True`` for OpenAI weights under a non-``-quickgelu`` name).

    Bad input raises :class:`vislab.errors.InputError` / :class:`VislabError` with a one-line reason.
    """
    if checkpoint is not None:
        return _load_open_clip(str(path_or_name), checkpoint, **open_clip_kwargs)
    p = Path(path_or_name).expanduser()
    if p.is_dir():
        return _load_hf_folder(p)
    if p.is_file():
        raise InputError(p, "a CLIP is a Hugging Face folder, or an open_clip architecture name plus this file as checkpoint")
    if "/" in str(path_or_name) or "\\" in str(path_or_name) or str(path_or_name).startswith("."):
        raise InputError(p, "CLIP folder not found")
    raise VislabError(f"no local CLIP at {str(path_or_name)!r}: give a Hugging Face CLIP folder, or an open_clip "
                      f"architecture name together with a local checkpoint file (nothing is downloaded)")


# --------------------------------------------------------------------------------------------
# Tiny random-init CLIPs for tests
# --------------------------------------------------------------------------------------------
def tiny_clip_config(**overrides: Any) -> dict[str, Any]:
    """Sizes of the tiny CLIP; keys: embed_dim, text_width, vision_width, text_layers, vision_layers,
    heads, image_size, patch_size, context_length, vocab_size."""
    cfg = dict(embed_dim=32, text_width=64, vision_width=64, text_layers=2, vision_layers=2, heads=4,
               image_size=32, patch_size=8, context_length=32, vocab_size=VOCAB_SIZE)
    unknown = set(overrides) - set(cfg)
    if unknown:
        raise TypeError(f"unknown tiny_clip options {sorted(unknown)}; known: {sorted(cfg)}")
    cfg.update(overrides)
    return cfg


def tiny_clip(backend: str = "hf", seed: int = 0, **overrides: Any) -> ClipEncoder:
    """A random-init tiny CLIP (ViT image tower, CLIP vocabulary) on CPU in eval mode, for tests."""
    c = tiny_clip_config(**overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if backend == "hf":
            from transformers import CLIPConfig, CLIPModel

            config = CLIPConfig(
                text_config=dict(vocab_size=c["vocab_size"], hidden_size=c["text_width"], intermediate_size=4 * c["text_width"],
                                 num_hidden_layers=c["text_layers"], num_attention_heads=c["heads"],
                                 max_position_embeddings=c["context_length"], bos_token_id=BOS_ID, eos_token_id=EOS_ID,
                                 pad_token_id=EOS_ID),
                vision_config=dict(hidden_size=c["vision_width"], intermediate_size=4 * c["vision_width"],
                                   num_hidden_layers=c["vision_layers"], num_attention_heads=c["heads"],
                                   image_size=c["image_size"], patch_size=c["patch_size"]),
                projection_dim=c["embed_dim"],
            )
            model = CLIPModel(config)
        elif backend == "open_clip":
            from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

            model = CLIP(
                embed_dim=c["embed_dim"],
                vision_cfg=CLIPVisionCfg(layers=c["vision_layers"], width=c["vision_width"], head_width=c["vision_width"] // c["heads"],
                                         patch_size=c["patch_size"], image_size=c["image_size"]),
                text_cfg=CLIPTextCfg(context_length=c["context_length"], vocab_size=c["vocab_size"], width=c["text_width"],
                                     heads=c["heads"], layers=c["text_layers"]),
            )
        else:
            raise ValueError(f"backend must be 'hf' or 'open_clip', not {backend!r}")
    return ClipEncoder(model.eval(), backend)
