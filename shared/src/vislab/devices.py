"""Device discipline: frozen models that follow their module, and checks that every tensor does.

Two rules hold in every package:

1. **Frozen components follow the module.** A LightningModule that keeps frozen models out of its
   ``state_dict`` (a VAE, a UNet, a teacher: nothing to checkpoint) still moves them with itself, so that
   ``module.to("cuda:1")`` under DDP, and Lightning's move back to the CPU after ``fit``, carry them too.
   :class:`FollowsDevice` does this for the modules its :meth:`~FollowsDevice.frozen_modules` returns.
2. **New tensors are made on the device of what they meet** (``torch.randn(..., device=x.device)``).

Without a GPU, both are checked on the CPU:

- :func:`unmoved_tensors` lists every tensor reachable from a module (parameters and buffers of any module
  reachable through attributes, lists, dicts and our own objects, and plain tensor attributes) that
  ``module.to(device)`` would *not* move. It records what ``module._apply`` visits with an identity
  function, so the module is left untouched.
- :func:`meta_step` runs one training step on a copy of the module and batch on the ``meta`` device, which
  stands in for a GPU: a tensor created on the CPU and mixed with a module tensor raises
  ``Tensor on device cpu is not on the expected device meta``.

:class:`DeviceCheck` runs both after every ``fit`` when ``VISLAB_CHECK_DEVICES=1`` (the test suite sets it),
so every package's fits are checked by the tests it already has.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

ENV = "VISLAB_CHECK_DEVICES"
_SKIP_ATTRS = {"_trainer", "trainer", "_fabric", "_datamodule", "datamodule", "_device_mesh"}
_OUR_PREFIXES = ("vislab", "gal4p", "compinv", "cfpl", "uniattack", "flallm", "diffspeaker", "sags", "pvlr",
                 "despoofdiff", "incantations")
_DEVICE_ERRORS = ("is not on the expected device", "Expected all tensors to be on the same device",
                  "found two different devices", "must be on the same device")


class FollowsDevice:
    """Mixin for an ``nn.Module`` holding frozen modules outside its registered children.

    Subclasses return those modules from :meth:`frozen_modules`; every ``to``/``cuda``/``cpu``/``half``
    (all go through ``nn.Module._apply``) then applies to them as well. Their weights stay out of the
    ``state_dict`` and out of DDP's gradient buckets.
    """

    def frozen_modules(self) -> list[nn.Module]:
        return []

    def _apply(self, fn, recurse: bool = True):  # noqa: ANN001 - torch's signature
        super()._apply(fn, recurse)  # type: ignore[misc]
        seen: set[int] = set()
        for m in self.frozen_modules():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                m._apply(fn, recurse)
        return self


def _is_ours(obj: Any) -> bool:
    return type(obj).__module__.split(".")[0] in _OUR_PREFIXES


def _skip(obj: Any) -> bool:
    """Objects whose tensors are not the module's business: schedulers (diffusers moves their tables to the
    device of the latents in each call), tokenizers, data, loggers."""
    if getattr(type(obj), "device_follows_use", False):  # moves its tensors to the device of what they meet
        return True
    mod = type(obj).__module__
    if mod.startswith(("diffusers.schedulers", "transformers.tokenization", "tokenizers", "torch.utils.data",
                       "pytorch_lightning", "lightning_fabric")):
        return True
    return isinstance(obj, torch.Generator)


def reachable_tensors(root: Any, max_depth: int = 6) -> Iterator[tuple[str, torch.Tensor]]:
    """``(path, tensor)`` for every tensor reachable from ``root``: parameters, buffers and gradients of
    every reachable module, and plain tensor attributes of modules and of our own objects."""
    seen: set[int] = set()

    def walk(obj: Any, path: str, depth: int) -> Iterator[tuple[str, torch.Tensor]]:
        if depth > max_depth or id(obj) in seen or obj is None or _skip(obj):
            return
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            yield path, obj
            return
        if isinstance(obj, nn.Module):
            for name, p in obj.named_parameters(recurse=False):
                seen.add(id(p))
                yield f"{path}.{name}", p
                if p.grad is not None:
                    yield f"{path}.{name}.grad", p.grad
            for name, b in obj.named_buffers(recurse=False):
                if b is not None:
                    seen.add(id(b))
                    yield f"{path}.{name}", b
            for name, child in obj.named_children():
                yield from walk(child, f"{path}.{name}", depth)
            attrs = {k: v for k, v in vars(obj).items() if k not in ("_parameters", "_buffers", "_modules")}
        elif isinstance(obj, dict):
            attrs = {(k if isinstance(k, str) else f"#{i}"): v for i, (k, v) in enumerate(obj.items())}
        elif isinstance(obj, (list, tuple, set)):
            attrs = {str(i): v for i, v in enumerate(obj)}
        elif dataclasses.is_dataclass(obj) or _is_ours(obj):
            attrs = dict(vars(obj)) if hasattr(obj, "__dict__") else {}
        else:
            return
        for k, v in attrs.items():
            if k in _SKIP_ATTRS or "cache" in k.lower() or isinstance(v, (str, bytes, int, float, bool)):
                continue  # caches are keyed by (or rebuilt for) the device of their use
            yield from walk(v, f"{path}.{k}" if not isinstance(obj, (list, tuple, set, dict)) else f"{path}[{k}]", depth + 1)

    yield from walk(root, type(root).__name__, 0)


def unmoved_tensors(module: nn.Module) -> list[str]:
    """Paths of the tensors reachable from ``module`` that ``module.to(device)`` leaves where they are.

    Non-destructive: ``module._apply`` is called with an identity function that records what it visits.
    """
    visited: set[int] = set()

    def record(t: torch.Tensor) -> torch.Tensor:
        visited.add(id(t))
        return t

    module._apply(record)
    return [path for path, t in reachable_tensors(module) if id(t) not in visited]


def assert_follows(module: nn.Module) -> None:
    """Raise AssertionError naming every tensor that would not follow ``module`` to another device."""
    bad = unmoved_tensors(module)
    if bad:
        groups: dict[str, int] = {}
        for path in bad:  # group by the owner two levels below the root: "Module._sd[0].vae (120 tensors)"
            owner = ".".join(path.replace("[", ".[").split(".")[:4]).replace(".[", "[")
            groups[owner] = groups.get(owner, 0) + 1
        raise AssertionError(f"{type(module).__name__}: tensors that do not follow the module to its device: "
                             + ", ".join(f"{k} ({n} tensors)" for k, n in groups.items()))


def to_meta(obj: Any) -> Any:
    """``obj`` with every tensor moved to the ``meta`` device (tensors, dicts, lists, tuples)."""
    if isinstance(obj, torch.Tensor):
        return obj.to("meta")
    if isinstance(obj, dict):
        return {k: to_meta(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_meta(v) for v in obj) if not hasattr(obj, "_fields") else type(obj)(*[to_meta(v) for v in obj])
    return obj


def is_device_error(e: BaseException) -> bool:
    return isinstance(e, RuntimeError) and any(s in str(e) for s in _DEVICE_ERRORS)


def meta_step(module: nn.Module, batch: Any, step: str = "training_step") -> str | None:
    """Run ``step`` once on meta copies of ``module`` and ``batch``.

    Returns the device-mixing error message, or None. Other failures (``.item()`` on a meta tensor, code
    that needs values) make the step inconclusive and return None too.
    """
    try:
        m = copy.deepcopy(module)
    except Exception:  # noqa: BLE001 - some objects cannot be copied: nothing to check then
        return None
    m.to("meta")
    try:
        getattr(m, step)(to_meta(batch), 0)
    except Exception as e:  # noqa: BLE001
        return str(e).splitlines()[0] if is_device_error(e) else None
    return None


def enabled() -> bool:
    return os.environ.get(ENV, "") not in ("", "0")


def _device_check_callback():
    import pytorch_lightning as pl

    class DeviceCheck(pl.Callback):
        """At the start of training every reachable tensor is on the module's device (a real check on a GPU);
        after ``fit`` every reachable tensor follows the module, and one meta training step mixes no devices."""

        def __init__(self) -> None:
            self.batch: Any = None

        def on_train_start(self, trainer, pl_module) -> None:  # noqa: ANN001
            dev = pl_module.device  # on a GPU: every parameter and buffer the module reaches is there
            off = [p for p, t in reachable_tensors(pl_module) if t.device != dev]
            if off and dev.type != "cpu":
                raise AssertionError(f"{type(pl_module).__name__} is on {dev}, but these tensors are not: "
                                     + ", ".join(off[:8]) + (f" (and {len(off) - 8} more)" if len(off) > 8 else ""))

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
            if self.batch is None:
                self.batch = copy.deepcopy(batch) if isinstance(batch, (torch.Tensor, dict, list, tuple)) else batch

        def on_fit_end(self, trainer, pl_module) -> None:  # noqa: ANN001
            assert_follows(pl_module)
            if self.batch is not None:
                err = meta_step(pl_module, self.batch)
                if err:
                    raise AssertionError(f"{type(pl_module).__name__}.training_step mixes devices "
                                         f"(meta stands in for a GPU): {err}")

    return DeviceCheck()


def device_check_callbacks() -> list:
    """``[DeviceCheck()]`` when ``VISLAB_CHECK_DEVICES=1``, else ``[]``."""
    return [_device_check_callback()] if enabled() else []
