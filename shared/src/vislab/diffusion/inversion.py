"""Textual inversion (Gal et al., ICLR 2023) token handling, in the layout of diffusers' example script.

- :func:`add_placeholder_tokens`: add ``<tok>`` (and ``<tok>_1 .. <tok>_{n-1}`` for several vectors, the
  names diffusers' loader expects), grow the embedding matrix, initialise the new rows from a word.
- :class:`TokenRowsGuard`: train only those rows (the gradient of every other row is zeroed, and
  :meth:`TokenRowsGuard.restore` puts the other rows back after each optimiser step, which also undoes
  weight decay; ``CLIPTextModel`` has no ``inputs_embeds``, so the whole matrix is the parameter).
- :func:`save_learned_embeds` / :func:`load_learned_embeds`: ``{placeholder: (n_vectors, D)}`` in
  ``learned_embeds.safetensors`` (or ``.bin``), the file ``StableDiffusionPipeline.load_textual_inversion``
  accepts; A1111 ``.safetensors``/``.pt`` embeddings load under their file name or a given ``token``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from vislab.errors import InputError, VislabError


def placeholder_names(placeholder: str, num_vectors: int = 1) -> list[str]:
    """Token names of a placeholder with ``num_vectors`` vectors: ``[p, p_1, .., p_{n-1}]`` (diffusers' naming)."""
    return [placeholder] + [f"{placeholder}_{i}" for i in range(1, num_vectors)]


def expand_placeholder(prompt: str, placeholder: str, num_vectors: int = 1) -> str:
    """Replace ``placeholder`` in ``prompt`` by its ``num_vectors`` token names (as the pipeline does)."""
    return prompt.replace(placeholder, " ".join(placeholder_names(placeholder, num_vectors)))


def _embedding(text_encoder: nn.Module) -> nn.Embedding:
    return text_encoder.get_input_embeddings()


def add_placeholder_tokens(tokenizer, text_encoder: nn.Module, placeholder: str, num_vectors: int = 1,
                           init_word: str | None = None) -> list[int]:
    """Add the placeholder token(s) to ``tokenizer`` and rows to ``text_encoder``'s embedding; return their ids.

    ``init_word`` must be a single token of the vocabulary (as in the official script); every new row
    starts as its embedding. Without it, the rows keep the resize's initialisation (the mean of the
    existing rows in transformers 5).
    """
    if num_vectors < 1:
        raise VislabError("num_vectors must be at least 1")
    names = placeholder_names(placeholder, num_vectors)
    vocab = tokenizer.get_vocab()
    taken = [n for n in names if n in vocab]
    if taken:
        raise VislabError(f"the tokenizer already contains {taken}; choose another placeholder token")
    init_id = None
    if init_word is not None:
        ids = tokenizer.encode(init_word, add_special_tokens=False)
        if len(ids) != 1:
            raise VislabError(f"the initializer word {init_word!r} must be a single token (it is {len(ids)} tokens)")
        init_id = ids[0]
    added = tokenizer.add_tokens(names)
    if added != num_vectors:  # pragma: no cover - guarded above
        raise VislabError(f"could not add the placeholder tokens {names}")
    new_ids = tokenizer.convert_tokens_to_ids(names)
    text_encoder.resize_token_embeddings(len(tokenizer))
    if init_id is not None:
        with torch.no_grad():
            w = _embedding(text_encoder).weight
            w[new_ids] = w[init_id].clone().unsqueeze(0).expand(len(new_ids), -1)
    return list(new_ids)


class TokenRowsGuard:
    """Keep every embedding row except ``trainable_ids`` fixed while the embedding matrix trains.

    On creation: freezes the text encoder except its token-embedding weight (``freeze_rest``), keeps a
    copy of the weight, and zeroes the gradient of the fixed rows through a hook. Call
    :meth:`restore` after each optimiser step (Adam moments / weight decay would still move them).
    Its tensors move to the weight's device at each use.
    """

    device_follows_use = True  # vislab.devices: not a module's state

    def __init__(self, text_encoder: nn.Module, trainable_ids: list[int], freeze_rest: bool = True):
        self.text_encoder = text_encoder
        self.weight = _embedding(text_encoder).weight
        n = self.weight.shape[0]
        ids = torch.as_tensor(list(trainable_ids), dtype=torch.long)
        if ids.numel() == 0 or int(ids.min()) < 0 or int(ids.max()) >= n:
            raise VislabError(f"trainable ids {list(trainable_ids)} are outside the embedding matrix of {n} rows")
        self.trainable_ids = ids
        mask = torch.ones(n, dtype=torch.bool)
        mask[ids] = False
        self.fixed = mask.to(self.weight.device)  # True for rows to keep
        self.original = self.weight.detach().clone()
        if freeze_rest:
            text_encoder.requires_grad_(False)
        self.weight.requires_grad_(True)
        self._hook = self.weight.register_hook(self._mask_grad)

    def _mask_grad(self, grad: torch.Tensor) -> torch.Tensor:
        return grad.masked_fill(self.fixed.to(grad.device).unsqueeze(-1), 0.0)

    def parameters(self) -> list[nn.Parameter]:
        """What the optimiser should get: the embedding weight (only its trainable rows will change)."""
        return [self.weight]

    @torch.no_grad()
    def restore(self) -> None:
        """Put every fixed row back to its original value."""
        keep = self.fixed.to(self.weight.device)
        self.weight[keep] = self.original.to(self.weight)[keep]

    def learned(self) -> torch.Tensor:
        """The trainable rows (n, D), detached."""
        return self.weight.detach()[self.trainable_ids.to(self.weight.device)].clone()

    def remove(self) -> None:
        """Remove the gradient hook (the rows stay as trained)."""
        self._hook.remove()


def save_learned_embeds(path: str | Path, tokenizer, text_encoder: nn.Module, placeholder_ids: list[int],
                        placeholder: str | None = None) -> Path:
    """Write ``{placeholder: (n_vectors, D)}`` to ``path`` (``.safetensors``, else a torch ``.bin``), atomically.

    ``placeholder`` defaults to the token name of the first id. The file loads with
    ``StableDiffusionPipeline.load_textual_inversion(path)`` and :func:`load_learned_embeds`.
    """
    from vislab.io import atomic_path

    path = Path(path)
    if not placeholder_ids:
        raise VislabError("no placeholder ids to save")
    name = placeholder or tokenizer.convert_ids_to_tokens(int(placeholder_ids[0]))
    w = _embedding(text_encoder).weight.detach()
    rows = w[torch.as_tensor(list(placeholder_ids), device=w.device)].float().cpu().contiguous()
    with atomic_path(path) as tmp:
        if path.suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file({name: rows}, str(tmp))
        else:
            torch.save({name: rows}, tmp)
    return path


A1111_KEY = "emb_params"
"""The single key of an AUTOMATIC1111 ``.safetensors`` embedding (a name of the layout, not a token)."""


def read_learned_embeds(path: str | Path, token: str | None = None) -> dict[str, torch.Tensor]:
    """``{token: (n_vectors, D)}`` from a textual-inversion file.

    Layouts and where the token name comes from:

    - diffusers (``learned_embeds.safetensors`` / ``.bin``): ``{placeholder: tensor}``; the key is the token;
    - AUTOMATIC1111 ``.safetensors`` (``{"emb_params": tensor}``) and ``.pt`` (``{"string_to_param":
      {"*": tensor}, "name": ...}``): the token is the **file name without its extension**, as in
      A1111, whose prompts name an embedding by its file name (``emb_params`` is a layout key, never a
      token; diffusers' loader uses the ``.pt`` file's ``name`` field instead);
    - a bare tensor (``torch.save(tensor)``): needs ``token``.

    ``token``, when given, overrides all of these (like diffusers' ``load_textual_inversion(token=...)``);
    the file must then hold a single embedding.
    """
    from vislab.io import require_file

    p = require_file(path, "learned embeddings file")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(p))
        else:
            sd = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise InputError(p, f"not a readable embeddings file ({e.__class__.__name__})") from None
    if isinstance(sd, torch.Tensor):
        if token is None:
            raise InputError(p, "holds a bare tensor with no token name: give the token (e.g. --token '<my-token>')")
        sd = {token: sd}
    elif isinstance(sd, dict) and "string_to_param" in sd:  # A1111 .pt layout
        try:
            sd = {p.stem: sd["string_to_param"]["*"]}
        except (KeyError, TypeError):
            raise InputError(p, "A1111 embeddings file without string_to_param['*']") from None
    elif isinstance(sd, dict) and set(sd) == {A1111_KEY}:  # A1111 .safetensors layout
        sd = {p.stem: sd[A1111_KEY]}
    if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise InputError(p, "expected {placeholder: tensor (n_vectors, dim)} in the embeddings file")
    if token is not None:
        if len(sd) != 1:
            raise InputError(p, f"holds {len(sd)} embeddings ({', '.join(sorted(sd))}); a single token cannot name them")
        sd = {token: next(iter(sd.values()))}
    for name in sd:
        if not name.strip() or any(c.isspace() for c in name):
            raise InputError(p, f"token {name!r} is empty or has spaces: give a token (e.g. --token '<my-token>')")
    return {k: (v if v.dim() == 2 else v.view(1, -1)) for k, v in sd.items()}


def load_learned_embeds(path: str | Path, tokenizer, text_encoder: nn.Module, token: str | None = None) -> list[str]:
    """Add the placeholder(s) saved in ``path`` to ``tokenizer`` / ``text_encoder``; returns the token names
    (multi-vector placeholders expand to ``p, p_1, ..``, as diffusers does). The token comes from the
    file (see :func:`read_learned_embeds`: an A1111 file is named by its file name) or ``token``."""
    sd = read_learned_embeds(path, token=token)
    width = _embedding(text_encoder).weight.shape[1]
    names: list[str] = []
    for key, rows in sd.items():
        if rows.shape[-1] != width:
            raise InputError(path, f"embedding width {rows.shape[-1]} does not match the text encoder's {width}")
        ids = add_placeholder_tokens(tokenizer, text_encoder, key, num_vectors=rows.shape[0])
        with torch.no_grad():
            w = _embedding(text_encoder).weight
            w[ids] = rows.to(w)
        names += placeholder_names(key, rows.shape[0])
    return names
