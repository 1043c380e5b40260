"""Run inside a fresh venv (by tests/test_wheels.py): is everything a package imports installed?

``python wheel_closure.py <pkg>`` walks the imports of the installed package ``<pkg>`` (every file,
lazy imports inside functions included) and of the vislab code it reaches, and prints one JSON line:
``{"needed": [...], "missing": [...], "heavy_installed": [...]}``.

vislab is followed at the granularity the package uses it: ``from vislab.toy import toy_clip`` reads
vislab/toy/__init__.py's top level and ``toy_clip`` (with the module-level functions it calls), not
``toy_sd``, so a package that only uses the toy CLIP is not required to install diffusers. The lazy
``_WHERE`` name tables of vislab.clip / vislab.diffusion, ``importlib.import_module("x")`` and
``find_spec("x")`` (vislab.clip reads open_clip's vocabulary file without importing it) count as imports. Imports inside
``try: ... except ImportError`` and ``if TYPE_CHECKING:`` are optional and skipped.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import pkgutil
import sys
from pathlib import Path

STD = set(sys.stdlib_module_names) | {"__future__"}
HEAVY = ["diffusers", "transformers", "open_clip", "skimage", "cv2", "matplotlib", "scipy", "peft", "jsonargparse"]

_trees: dict[str, tuple[ast.Module, bool] | None] = {}


def _tree(mod: str) -> tuple[ast.Module, bool] | None:
    """(AST, is_package) of an installed pure-Python module, None when it is not one."""
    if mod not in _trees:
        try:
            spec = importlib.util.find_spec(mod)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not (spec.origin or "").endswith(".py"):
            _trees[mod] = None
        else:
            _trees[mod] = (ast.parse(Path(spec.origin).read_text()), spec.submodule_search_locations is not None)
    return _trees[mod]


def _optional(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """Inside `try/except ImportError` or `if TYPE_CHECKING:`."""
    while node in parents:
        p = parents[node]
        if isinstance(p, ast.Try) and node in p.body:
            for h in p.handlers:
                names = [h.type] if not isinstance(h.type, ast.Tuple) else list(h.type.elts)
                if any(isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError") for n in names):
                    return True
        if isinstance(p, ast.If) and "TYPE_CHECKING" in ast.unparse(p.test) and node in p.body:
            return True
        node = p
    return False


class Walker:
    def __init__(self) -> None:
        self.third: set[str] = set()
        self.seen: set[tuple[str, str | None]] = set()
        self.todo: list[tuple[str, str | None]] = []

    def push(self, mod: str, name: str | None) -> None:
        parts = mod.split(".")
        for i in range(1, len(parts)):  # importing a.b.c runs a's and a.b's top level
            self.todo.append((".".join(parts[:i]), ""))
        self.todo.append((mod, name))

    def imports_in(self, nodes: list[ast.AST], mod: str, is_pkg: bool, parents: dict) -> None:
        for top in nodes:
            for n in ast.walk(top):
                if isinstance(n, ast.Import | ast.ImportFrom) and _optional(n, parents):
                    continue
                if isinstance(n, ast.Import):
                    for a in n.names:
                        self.add(a.name, None)
                elif isinstance(n, ast.ImportFrom):
                    base = n.module or ""
                    if n.level:
                        pkg = mod.split(".") if is_pkg else mod.split(".")[:-1]
                        pkg = pkg[: len(pkg) - (n.level - 1)]
                        base = ".".join(pkg + ([base] if base else []))
                    for a in n.names:
                        self.add(base, a.name)
                elif (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute | ast.Name)
                      and getattr(n.func, "attr", getattr(n.func, "id", "")) in ("import_module", "find_spec")
                      and n.args and isinstance(n.args[0], ast.Constant) and isinstance(n.args[0].value, str)):
                    self.add(n.args[0].value, None)

    def add(self, mod: str, name: str | None) -> None:
        top = mod.split(".")[0]
        if top in STD:
            return
        if top not in FOLLOW:  # third-party: only its top-level name matters (find_spec("a.b") would import a)
            self.third.add(top)
            return
        if name is not None and name != "*" and _tree(f"{mod}.{name}") is not None:
            self.push(f"{mod}.{name}", None)
        else:
            self.push(mod, name)

    def run(self) -> None:
        while self.todo:
            item = self.todo.pop()
            if item in self.seen:
                continue
            self.seen.add(item)
            mod, name = item
            t = _tree(mod)
            if t is None:
                continue
            tree, is_pkg = t
            parents = {c: p for p in ast.walk(tree) for c in ast.iter_child_nodes(p)}
            defs = {d.name: d for d in tree.body if isinstance(d, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)}
            if name is None or name == "*":  # the whole module
                self.imports_in(tree.body, mod, is_pkg, parents)
                continue
            self.imports_in([s for s in tree.body if s not in defs.values()], mod, is_pkg, parents)
            if name == "":
                continue
            if name in defs:  # the def and the module-level defs it refers to
                stack, done = [name], set()
                while stack:
                    d = stack.pop()
                    if d in done:
                        continue
                    done.add(d)
                    self.imports_in([defs[d]], mod, is_pkg, parents)
                    stack += [n.id for n in ast.walk(defs[d]) if isinstance(n, ast.Name) and n.id in defs]
                continue
            where = _where(tree)
            if name in where:  # vislab.clip / vislab.diffusion lazy tables
                self.push(f"{mod}.{where[name]}", name)


def _where(tree: ast.Module) -> dict[str, str]:
    for s in tree.body:
        if isinstance(s, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_WHERE" for t in s.targets):
            return ast.literal_eval(s.value)
    return {}


def main(pkg: str) -> None:
    global FOLLOW
    FOLLOW = {"vislab", pkg}
    w = Walker()
    root = importlib.util.find_spec(pkg).submodule_search_locations
    w.push(pkg, None)
    for m in pkgutil.walk_packages(root, f"{pkg}."):
        w.push(m.name, None)
    w.run()
    needed = sorted(w.third - FOLLOW)
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    heavy = [m for m in HEAVY if importlib.util.find_spec(m) is not None]
    print(json.dumps({"needed": needed, "missing": missing, "heavy_installed": heavy}))


FOLLOW: set[str] = set()

if __name__ == "__main__":
    main(sys.argv[1])
