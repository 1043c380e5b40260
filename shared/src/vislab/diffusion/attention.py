"""Cross-attention maps of a diffusers UNet, per layer, per head, per token, via attention processors.

    store = AttentionStore(keep_grad=False)
    with capture_cross_attention(unet, store):
        unet(latents, t, encoder_hidden_states=cond)
    store.maps["down_blocks.0.attentions.0.transformer_blocks.0.attn2"]   # (B, heads, H*W, L)
    store.aggregate(16)                                                   # (B, L, 16, 16)

With ``keep_grad=True`` the stored maps stay in the autograd graph, so a loss on them (e.g. pushing a
token's attention into a box) back-propagates to the latents: layout guidance as in compositional
inversion. Only the cross-attention layers (``attn2``) are replaced; self-attention keeps its processor.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class AttentionStore:
    """Collects cross-attention probabilities.

    ``maps[layer] -> (B, heads, H*W, L)`` of the latest call of each layer. With ``accumulate=True``,
    ``summed[layer]`` adds every call (e.g. all denoising steps) and ``counts[layer]`` counts them;
    :meth:`average` gives their mean. ``layers``: only capture layers whose name contains one of these
    strings. ``edit``: optional ``fn(layer_name, probs (B, heads, Q, L)) -> probs`` applied before the
    probabilities weight the values (attention re-weighting / injection).
    """

    def __init__(self, keep_grad: bool = False, accumulate: bool = False, layers: list[str] | None = None,
                 edit: Callable[[str, torch.Tensor], torch.Tensor] | None = None):
        self.keep_grad = keep_grad
        self.accumulate = accumulate
        self.layers = list(layers) if layers else None
        self.edit = edit
        self.active = True
        self.maps: dict[str, torch.Tensor] = {}
        self.summed: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def wants(self, name: str) -> bool:
        return self.active and (self.layers is None or any(s in name for s in self.layers))

    def record(self, name: str, probs: torch.Tensor) -> None:
        p = probs if self.keep_grad else probs.detach()
        self.maps[name] = p
        if self.accumulate:
            self.summed[name] = self.summed[name] + p if name in self.summed else p.clone()
            self.counts[name] = self.counts.get(name, 0) + 1

    def reset(self) -> None:
        self.maps.clear()
        self.summed.clear()
        self.counts.clear()

    def average(self) -> dict[str, torch.Tensor]:
        """Mean over the recorded calls of each layer (needs ``accumulate=True``)."""
        return {k: v / self.counts[k] for k, v in self.summed.items()}

    def aggregate(self, resolution: int | tuple[int, int], tokens: list[int] | torch.Tensor | None = None,
                  maps: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Mean over heads and over every captured layer at ``resolution`` (H, W or a square side):
        ``(B, L, H, W)``, or ``(B, len(tokens), H, W)`` for selected token positions."""
        h, w = (resolution, resolution) if isinstance(resolution, int) else tuple(resolution)
        src = self.maps if maps is None else maps
        picked = [m for m in src.values() if m.shape[2] == h * w]
        if not picked:
            have = sorted({m.shape[2] for m in src.values()})
            raise ValueError(f"no captured cross-attention map has {h}x{w} = {h * w} queries (have {have})")
        batch = {m.shape[0] for m in picked}
        if len(batch) > 1:
            raise ValueError(f"maps at {h}x{w} disagree in batch size {sorted(batch)}")
        m = torch.stack([p.mean(dim=1) for p in picked], dim=0).mean(dim=0)  # (B, HW, L)
        if tokens is not None:
            m = m[..., torch.as_tensor(tokens, dtype=torch.long, device=m.device)]
        return m.permute(0, 2, 1).reshape(m.shape[0], m.shape[-1], h, w)

    def resolutions(self) -> list[int]:
        """Query counts (H*W) of the captured layers, largest first."""
        return sorted({m.shape[2] for m in self.maps.values()}, reverse=True)


class StoreCrossAttnProcessor:
    """diffusers ``AttnProcessor`` arithmetic with the attention probabilities exposed to a store."""

    def __init__(self, store: AttentionStore, name: str):
        self.store = store
        self.name = name

    def __call__(self, attn: nn.Module, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None, *args, **kwargs) -> torch.Tensor:
        residual = hidden_states
        if getattr(attn, "spatial_norm", None) is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch_size, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch_size, channel, height * width).transpose(1, 2)
        is_cross = encoder_hidden_states is not None
        batch_size, sequence_length, _ = hidden_states.shape if encoder_hidden_states is None else encoder_hidden_states.shape
        attention_mask = attn.prepare_attention_mask(attention_mask, sequence_length, batch_size)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        query = attn.to_q(hidden_states)
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)
        query = attn.head_to_batch_dim(query)
        key = attn.head_to_batch_dim(key)
        value = attn.head_to_batch_dim(value)

        probs = attn.get_attention_scores(query, key, attention_mask)  # (B*heads, Q, L)
        if is_cross and self.store.wants(self.name):
            b = probs.shape[0] // attn.heads
            p4 = probs.view(b, attn.heads, probs.shape[1], probs.shape[2])
            if self.store.edit is not None:
                p4 = self.store.edit(self.name, p4)
                probs = p4.reshape(b * attn.heads, p4.shape[2], p4.shape[3])
            self.store.record(self.name, p4)

        hidden_states = torch.bmm(probs.to(value.dtype), value)
        hidden_states = attn.batch_to_head_dim(hidden_states)
        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch_size, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


def cross_attention_layers(unet: nn.Module) -> list[str]:
    """Names of the UNet's cross-attention layers (``...attn2``), in processor order."""
    return [k[: -len(".processor")] for k in unet.attn_processors if k.endswith("attn2.processor")]


class _Capture:
    """Returned by :func:`capture_cross_attention`: a context manager; ``remove()`` restores processors."""

    def __init__(self, unet: nn.Module, original: dict):
        self.unet = unet
        self.original = original

    def remove(self) -> None:
        if self.original is not None:
            self.unet.set_attn_processor(self.original)
            self.original = None

    def __enter__(self) -> _Capture:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def capture_cross_attention(unet: nn.Module, store: AttentionStore) -> _Capture:
    """Route every cross-attention layer of ``unet`` through a processor that records into ``store``.

    Use as ``with capture_cross_attention(unet, store): ...`` or keep the handle and call ``.remove()``.
    """
    original = dict(unet.attn_processors)
    procs = {}
    for key, proc in original.items():
        if key.endswith("attn2.processor"):
            procs[key] = StoreCrossAttnProcessor(store, key[: -len(".processor")])
        else:
            procs[key] = proc
    unet.set_attn_processor(procs)
    return _Capture(unet, original)
