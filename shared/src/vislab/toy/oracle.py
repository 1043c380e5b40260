"""The toy world's pixel-level oracle: what is in an image, read from the rendering rules.

No learned model takes part, so a method tuned against the toy CLIP judge cannot fool it. For a
batch of images (and the prompts they were made from) :func:`score` finds the objects and says
which of the prompt's objects are there:

1. **Foreground**: world backgrounds are grey (R = G = B), every palette colour is saturated even
   at the 45 % brightness of texture "off" cells, so a pixel is foreground when its chroma
   ``max(rgb) - min(rgb)`` exceeds ``CHROMA_MIN``.
2. **Colour**: each foreground pixel is compared with the palette :data:`~vislab.toy.world.COLORS`
   in brightness-free chromaticity ``rgb / max(rgb)`` (a texture's dark cells are the colour times
   0.45: the same chromaticity). Pixels far from every entry (anti-aliased edges) take the colour of
   the nearest confident pixel.
3. **Objects**: 8-connected components of one colour with at least ``MIN_AREA`` of the image
   (a small star covers about 3 %; so a stray smudge is not an object).
4. **Shape**: every shape of :data:`~vislab.toy.world.SHAPES` is rendered by the world's own
   membership rule at the radius and centre that fit the component's bounding box (and a few
   nearby ones); the shape with the best IoU wins. Position: the nearest of
   :data:`~vislab.toy.world.POSITIONS` to the fitted centre; size: the nearest of
   :data:`~vislab.toy.world.SIZES` to the fitted radius; texture: the world's on/off cell pattern
   that best matches the component's dark cells.

The prompt follows the world's caption grammar (``"a [size] [colour] [texture] shape [position]"``
joined by ``and``; number words ``two``/``three`` with plurals are read as counts). A placeholder
word (a textual-inversion token such as ``<toy>``) is given meaning with ``concepts``, e.g.
``{"<toy>": {"color": "pink", "shape": "star"}}``.

Its accuracy on rendered world scenes and on toy SD samples is measured in the ``vislab.toy`` README
("The oracle"; ``python -m vislab.toy.oracle 200`` repeats the first).
"""

from __future__ import annotations

import math
import re
from functools import cache
from typing import Any

import numpy as np

from vislab.toy import world

__all__ = ["score", "detect", "parse_prompt", "summarize", "classify_single", "CHROMA_MIN", "MIN_AREA"]

CHROMA_MIN = 0.12  # foreground: max(rgb) - min(rgb) above this (world backgrounds are grey: 0)
SAT_SHARE = 0.5  # a pixel is its colour's when its saturation is at least this share of the palette entry's
CONFIDENT = 0.12  # chromaticity distance under which a pixel's colour is trusted
FRAGMENT_IOU = 0.4  # small components whose best shape fits worse than this are fringes, not objects
MIN_AREA = 0.012  # smallest object, as a share of the image (a small star covers ~0.033)
ATTRIBUTES = ("shape", "color", "texture", "size", "position")

_PALETTE_NAMES = list(world.COLORS)
_PALETTE = np.array([world.COLORS[c] for c in _PALETTE_NAMES], dtype=np.float32)
_PALETTE_CHROMA = _PALETTE / _PALETTE.max(axis=1, keepdims=True)
_PALETTE_SAT = 1.0 - _PALETTE.min(axis=1) / _PALETTE.max(axis=1)  # saturation (max - min) / max
_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4}
_PLURALS = {**{s + "s": s for s in world.SHAPES}, "crosses": "cross"}


# ----------------------------------------------------------------------------- prompts


def parse_prompt(prompt: str, concepts: dict[str, dict[str, str]] | None = None) -> list[dict[str, Any]]:
    """The objects a prompt asks for: ``[{"shape", "color", "texture", "size", "position", "count"}]``
    (an attribute the prompt does not name is ``None``; ``count`` defaults to 1).

    ``concepts`` maps placeholder words to the attributes they stand for. A phrase that names no
    shape (and no concept giving one) is ignored.
    """
    concepts = {k.lower(): v for k, v in (concepts or {}).items()}
    text = prompt.lower().strip().rstrip(".")
    # position phrases first (they hold words of their own)
    out: list[dict[str, Any]] = []
    for phrase in re.split(r"\s*(?:,\s*and|,|\band\b|\bwith\b|\bnext to\b|\bbeside\b)\s*", text):
        if not phrase.strip():
            continue
        req: dict[str, Any] = {k: None for k in ATTRIBUTES}
        req["count"] = 1
        for pos, words in world.POSITION_PHRASES.items():
            if words in phrase:
                req["position"] = pos
                phrase = phrase.replace(words, " ")
        for pos in world.POSITIONS:  # bare "left", "centre", "center"
            if re.search(rf"\b{pos}\b", phrase) or (pos == "centre" and re.search(r"\bcenter\b", phrase)):
                req["position"] = req["position"] or pos
        for word in phrase.split():
            w = word.strip(".,;:!?\"'")
            if w in concepts:
                for k, v in concepts[w].items():
                    if k in ATTRIBUTES and v is not None:
                        req[k] = v
            elif w in _NUMBERS:
                req["count"] = _NUMBERS[w]
            elif w in world.SHAPES:
                req["shape"] = w
            elif w in _PLURALS:
                req["shape"] = _PLURALS[w]
            elif w in world.COLORS:
                req["color"] = w
            elif w in world.TEXTURES:
                req["texture"] = w
            elif w in world.SIZES:
                req["size"] = w
        if req["shape"] is not None:
            out.append(req)
    return out


# ----------------------------------------------------------------------------- shape templates


@cache
def _unit_extent(shape: str) -> tuple[float, float, float, float]:
    """(u_min, u_max, v_min, v_max) of the unit shape (radius 1)."""
    t = np.linspace(-1.05, 1.05, 841, dtype=np.float64)
    u, v = np.meshgrid(t, t, indexing="xy")
    m = world._shape_inside(shape, u, v)
    return float(u[m].min()), float(u[m].max()), float(v[m].min()), float(v[m].max())


def _templates(shape: str, cx: np.ndarray, cy: np.ndarray, r: np.ndarray, h: int, w: int, ss: int = 2) -> np.ndarray:
    """Pixel membership (K, h, w) of ``shape`` at K centres (cx, cy) and radii r (pixels): a pixel is
    inside when at least half of its ``ss x ss`` sub-pixels are, as in the world's masks."""
    t_y = (np.arange(h * ss, dtype=np.float32) + 0.5) / ss
    t_x = (np.arange(w * ss, dtype=np.float32) + 0.5) / ss
    gx, gy = np.meshgrid(t_x, t_y, indexing="xy")
    cx, cy, r = (np.asarray(a, dtype=np.float32)[:, None, None] for a in (cx, cy, r))
    inside = world._shape_inside(shape, (gx[None] - cx) / r, (gy[None] - cy) / r)
    return inside.reshape(-1, h, ss, w, ss).mean(axis=(2, 4)) >= 0.5


def _fit_shape(mask: np.ndarray, occluders: np.ndarray) -> tuple[str, float, float, float, float]:
    """Best (shape, IoU, cx, cy, r) for a component mask (H, W).

    Candidates per shape: the radius and centre that fit the bounding box, and the world's two sizes
    anchored at each corner of the box (an occluded object's box is too small). Template pixels on
    ``occluders`` (other objects' pixels) are left out of the union: they may hide the shape.
    """
    ys, xs = np.nonzero(mask)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    res = max(mask.shape)
    pad = int(math.ceil(0.3 * res))
    X0, Y0 = max(0, x0 - pad), max(0, y0 - pad)
    X1, Y1 = min(mask.shape[1], x1 + pad), min(mask.shape[0], y1 + pad)
    crop, occ = mask[Y0:Y1, X0:X1], occluders[Y0:Y1, X0:X1]
    h, w = crop.shape
    area = crop.sum()
    best: tuple[str, float, float, float, float] = ("circle", -1.0, 0.0, 0.0, 1.0)
    for shape in world.SHAPES:
        umin, umax, vmin, vmax = _unit_extent(shape)
        r_w, r_h = (x1 - x0) / (umax - umin), (y1 - y0) / (vmax - vmin)
        cand = []
        for r in (r_w, r_h, 0.5 * (r_w + r_h)):
            if r > 0.5:
                cx0 = (x0 + x1) / 2 - r * (umin + umax) / 2
                cy0 = (y0 + y1) / 2 - r * (vmin + vmax) / 2
                cand += [(cx0 + dx, cy0 + dy, r) for dx in (-0.5, 0.0, 0.5) for dy in (-0.5, 0.0, 0.5)]
        for size in world.SIZES.values():
            r = size * res
            for cx in (x0 - r * umin, x1 - r * umax):
                for cy in (y0 - r * vmin, y1 - r * vmax):
                    cand.append((cx, cy, r))
        c = np.array(cand, dtype=np.float32)
        tm = _templates(shape, c[:, 0] - X0, c[:, 1] - Y0, c[:, 2], h, w)
        inter = (tm & crop[None]).sum(axis=(1, 2))
        union = area + (tm & ~occ[None]).sum(axis=(1, 2)) - inter
        iou = inter / np.maximum(union, 1)
        k = int(iou.argmax())
        if iou[k] > best[1]:
            best = (shape, float(iou[k]), float(c[k, 0]), float(c[k, 1]), float(c[k, 2]))
    return best


def _texture(img: np.ndarray, mask: np.ndarray, color_idx: int, cx: float, cy: float, res: int) -> str:
    """The world texture whose on/off cell pattern (``world._texture_on`` at the fitted centre)
    best matches the component's bright/dark pixels."""
    from scipy import ndimage

    core = ndimage.binary_erosion(mask, iterations=1)
    if core.sum() < 6:
        core = mask
    ys, xs = np.nonzero(core)
    bright = img[:, ys, xs].max(axis=0) / max(1e-6, float(_PALETTE[color_idx].max()))
    on = bright > (1 + world.OFF_BRIGHTNESS) / 2
    cell = 3.0 * res / 32.0
    best, best_agree = "solid", -1.0
    for tex in world.TEXTURES:
        agree = -1.0
        for ox in np.linspace(-cell / 2, cell / 2, 3):  # the fitted centre is good to about half a cell
            for oy in np.linspace(-cell / 2, cell / 2, 3):
                pat = world._texture_on(tex, xs + 0.5 - cx + ox, ys + 0.5 - cy + oy, cell)
                agree = max(agree, float((pat == on).mean()))
        if agree > best_agree + 1e-9:
            best, best_agree = tex, agree
    return best


# ----------------------------------------------------------------------------- detection


def _to_numpy(images: Any) -> np.ndarray:
    try:
        import torch

        if isinstance(images, torch.Tensor):
            images = images.detach().float().cpu().numpy()
    except ImportError:  # pragma: no cover
        pass
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"the oracle wants images (B, 3, H, W) in [0, 1], got shape {tuple(x.shape)}")
    return np.clip(x, 0.0, 1.0)


def detect(image: Any) -> list[dict[str, Any]]:
    """The objects of one image (3, H, W) in [0, 1], largest first: dicts with ``shape``, ``color``,
    ``texture``, ``size``, ``position``, ``area`` (share of the image), ``iou`` (fit of the shape
    template), ``cx``, ``cy``, ``radius`` (fractions of the image side) and ``box`` (pixels)."""
    from scipy import ndimage

    img = _to_numpy(image)[0]
    _, h, w = img.shape
    res = max(h, w)
    mx, mn = img.max(axis=0), img.min(axis=0)
    sat = (mx - mn) / np.maximum(mx, 1e-6)
    fg = (mx - mn) > CHROMA_MIN
    if not fg.any():
        return []
    chroma = img / np.maximum(mx, 1e-6)[None]
    d = np.linalg.norm(chroma.transpose(1, 2, 0)[:, :, None, :] - _PALETTE_CHROMA[None, None], axis=-1)  # (H, W, 8)
    label = d.argmin(-1)
    confident = fg & (d.min(-1) < CONFIDENT)
    if confident.any() and (fg & ~confident).any():  # edge pixels near a confident one take its colour
        dist, (iy, ix) = ndimage.distance_transform_edt(~confident, return_indices=True)
        label = np.where(confident | (dist > 2.5), label, label[iy, ix])
    # a pixel belongs to its colour when it is at least half as saturated as the palette entry: the
    # mixed edge and hole pixels of a blurred shape (a ring's hole) do not
    fg &= sat >= SAT_SHARE * _PALETTE_SAT[label]
    comps: list[tuple[int, np.ndarray]] = []
    for ci in np.unique(label[fg]):
        same = fg & (label == ci)
        lab, n = ndimage.label(same, structure=np.ones((3, 3), dtype=bool))
        parts = [lab == k for k in range(1, n + 1)]
        # pieces of one object cut apart by an object drawn over it: merge pieces of one colour whose
        # 2-pixel dilations meet on other objects' pixels (or touch)
        others = fg & ~same
        merged = True
        while merged and len(parts) > 1:
            merged = False
            for a in range(len(parts)):
                grown = ndimage.binary_dilation(parts[a], iterations=2)
                for b in range(a + 1, len(parts)):
                    meet = grown & ndimage.binary_dilation(parts[b], iterations=2)
                    if (meet & (others | parts[a] | parts[b])).any():
                        parts[a] = parts[a] | parts[b]
                        del parts[b]
                        merged = True
                        break
                if merged:
                    break
        comps += [(int(ci), m) for m in parts if m.sum() >= MIN_AREA * h * w]
    objects: list[dict[str, Any]] = []
    for ci, m in comps:
        shape, iou, cx, cy, r = _fit_shape(m, fg & ~m)
        if iou < FRAGMENT_IOU and m.sum() < 3 * MIN_AREA * h * w:
            continue  # a small piece no shape explains: a colour fringe between objects, not an object
        fx, fy, fr = cx / w, cy / h, r / res
        ys, xs = np.nonzero(m)
        objects.append({
            "shape": shape, "color": _PALETTE_NAMES[ci],
            "texture": _texture(img, m, ci, cx, cy, res),
            "size": min(world.SIZES, key=lambda s: abs(world.SIZES[s] - fr)),
            "position": min(world.POSITIONS, key=lambda p: (world.POSITIONS[p][0] - fx) ** 2 + (world.POSITIONS[p][1] - fy) ** 2),
            "area": float(m.mean()), "iou": iou, "cx": fx, "cy": fy, "radius": fr,
            "box": [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1],
        })
    objects.sort(key=lambda o: -o["area"])
    return objects


# ----------------------------------------------------------------------------- scoring


def _match(requests: list[dict[str, Any]], objects: list[dict[str, Any]]) -> list[list[int]]:
    """For each request, the detected objects assigned to it (up to its count): a maximum-weight
    assignment where shape counts most, then colour, then the other named attributes."""
    from scipy.optimize import linear_sum_assignment

    slots = [(i, k) for i, r in enumerate(requests) for k in range(int(r["count"]))]
    out: list[list[int]] = [[] for _ in requests]
    if not slots or not objects:
        return out
    weight = {"shape": 3.0, "color": 2.5, "texture": 1.0, "size": 1.0, "position": 1.0}
    s = np.zeros((len(slots), len(objects)))
    for a, (i, _) in enumerate(slots):
        for b, o in enumerate(objects):
            s[a, b] = sum(wt for k, wt in weight.items() if requests[i][k] is not None and requests[i][k] == o[k]) + 1e-3
    rows, cols = linear_sum_assignment(-s)
    for a, b in zip(rows, cols):
        out[slots[a][0]].append(int(b))
    return out


def score(images: Any, prompt: str | list[str], concepts: dict[str, dict[str, str]] | None = None) -> list[dict[str, Any]]:
    """Score images (B, 3, H, W) in [0, 1] (tensor or array) against their prompts.

    ``prompt``: one string for every image, or one per image. ``concepts``: placeholder words
    -> attributes (see :func:`parse_prompt`). Returns one dict per image:

    - ``objects``: the detected objects (:func:`detect`); ``n_objects``: how many;
    - ``requested``: the parsed prompt objects, each with ``matched`` (the detected objects assigned
      to it), ``shape_present`` (a matched object has its shape), ``color_present`` (has its
      colour, or the prompt names none), ``present`` (shape and colour both right: the object is
      there as asked), ``dropped`` (no assigned object shows its shape or its colour: the object is
      missing, not merely wrongly coloured), ``attributes_ok`` (share of its named attributes
      realised, over its count);
    - ``all_present``: every requested object present; ``dropped``: how many requested objects
      are dropped (object neglect; colour leaks alone are binding errors, not drops);
    - ``shapes_present`` / ``colors_present`` / ``objects_present``: shares of requested objects
      whose shape / colour / both are right;
    - ``count_ok``: the number of detected objects equals the number asked for;
      ``extra_objects``: detected objects no request took;
    - ``alignment`` in [0, 1]: the mean over requested objects of ``attributes_ok`` (1: every named
      attribute of every object is in the image; an image with nothing asked for scores 1).
    """
    x = _to_numpy(images)
    prompts = [prompt] * len(x) if isinstance(prompt, str) else list(prompt)
    if len(prompts) != len(x):
        raise ValueError(f"{len(x)} images but {len(prompts)} prompts")
    results = []
    for img, p in zip(x, prompts):
        objs = detect(img)
        reqs = parse_prompt(p, concepts)
        assigned = _match(reqs, objs)
        taken = {b for a in assigned for b in a}
        rows = []
        for r, idx in zip(reqs, assigned):
            named = [k for k in ATTRIBUTES if r[k] is not None]
            matched = [objs[b] for b in idx]
            ok = [sum(o[k] == r[k] for k in named) / len(named) for o in matched] + [0.0] * (int(r["count"]) - len(matched))
            shape_ok = [o["shape"] == r["shape"] for o in matched]
            color_ok = [r["color"] is None or o["color"] == r["color"] for o in matched]
            full = sum(a and b for a, b in zip(shape_ok, color_ok))
            rows.append({
                **r, "matched": idx,
                "shape_present": sum(shape_ok) >= r["count"], "color_present": sum(color_ok) >= r["count"],
                "present": full >= r["count"], "attributes_ok": float(np.mean(ok)) if ok else 0.0,
            })
        n = len(rows)
        # a request is dropped (neglected) when fewer objects are assigned to it than it asks for, or an
        # assigned object has neither its shape nor its colour: a wrong colour alone is a binding error
        for r in rows:
            hit = [objs[b]["shape"] == r["shape"] or (r["color"] is not None and objs[b]["color"] == r["color"]) for b in r["matched"]]
            r["dropped"] = sum(hit) < int(r["count"])
        dropped = sum(r["dropped"] for r in rows)
        results.append({
            "prompt": p, "objects": objs, "n_objects": len(objs), "requested": rows,
            "all_present": all(r["present"] for r in rows), "dropped": dropped,
            "shapes_present": float(np.mean([r["shape_present"] for r in rows])) if n else 1.0,
            "colors_present": float(np.mean([r["color_present"] for r in rows])) if n else 1.0,
            "objects_present": float(np.mean([r["present"] for r in rows])) if n else 1.0,
            "count_ok": len(objs) == sum(int(r["count"]) for r in rows),
            "extra_objects": len(objs) - len(taken),
            "alignment": float(np.mean([r["attributes_ok"] for r in rows])) if n else 1.0,
        })
    return results


def summarize(results: list[dict[str, Any]]) -> dict[str, float]:
    """Means over images of :func:`score`'s per-image numbers (``drop_rate``: share of images with
    at least one dropped object; ``all_present_rate``; ``count_ok_rate``; ``alignment``, ...)."""
    if not results:
        return {}
    return {
        "images": len(results),
        "drop_rate": float(np.mean([r["dropped"] > 0 for r in results])),
        "all_present_rate": float(np.mean([r["all_present"] for r in results])),
        "shapes_present": float(np.mean([r["shapes_present"] for r in results])),
        "colors_present": float(np.mean([r["colors_present"] for r in results])),
        "objects_present": float(np.mean([r["objects_present"] for r in results])),
        "count_ok_rate": float(np.mean([r["count_ok"] for r in results])),
        "alignment": float(np.mean([r["alignment"] for r in results])),
    }


def classify_single(images: Any) -> tuple[np.ndarray, np.ndarray]:
    """(colour index, shape index) of the largest object of each image, indices into
    ``world.COLORS`` / ``world.SHAPES`` (-1 where no object is found): the oracle's counterpart
    of the toy CLIP judge's ``ZeroShot.classify``."""
    x = _to_numpy(images)
    cols, shps = np.full(len(x), -1), np.full(len(x), -1)
    for i, img in enumerate(x):
        objs = detect(img)
        if objs:
            cols[i] = _PALETTE_NAMES.index(objs[0]["color"])
            shps[i] = world.SHAPES.index(objs[0]["shape"])
    return cols, shps


def _selfcheck(n: int = 200, seed: int = 5, resolution: int = 32) -> dict[str, float]:  # pragma: no cover - used by the README numbers
    """Oracle accuracy on ``n`` rendered world scenes (every combination, 1-3 objects)."""
    ds = world.ToyDataset(n, resolution=resolution, seed=seed, split="all")
    hits = {k: 0 for k in ATTRIBUTES}
    total, count_ok, present = 0, 0, 0
    for i in range(n):
        spec = ds.spec(i)
        img, _ = world.render_scene(spec, resolution)
        res = score(img, world.full_caption(spec["objects"]))[0]
        count_ok += res["count_ok"]
        present += res["all_present"]
        for r in res["requested"]:
            total += 1
            if r["matched"]:
                o = res["objects"][r["matched"][0]]
                for k in ATTRIBUTES:
                    hits[k] += o[k] == r[k]
    return {"scenes": n, "all_present": present / n, "count_ok": count_ok / n, **{k: v / total for k, v in hits.items()}}


if __name__ == "__main__":  # pragma: no cover - ``python -m vislab.toy.oracle [N]``: the README's accuracy check
    import sys

    print(_selfcheck(int(sys.argv[1]) if len(sys.argv) > 1 else 200))
