"""How far a target travels, read from the source: every branch, not one run.

``benchmarks.target_path`` traces the target through one search as it runs,
so it sees only the branch that search takes. This script reads the code
instead, as a newcomer following the parameter would: it starts at
``run_search_job``'s ``target`` and walks depth first through every call in
hwprof's own code (``cli.py``, ``hwprof/``, ``nas/``, ``devices/``) that is
handed the target or anything computed from it (a label, a split token, the
Device object), whichever branch the call sits in. Calls are resolved
statically: functions by their imports (re-exports followed), classes to
their ``__init__`` (or the class, for a dataclass), methods on values whose
class is known (from a constructor, a return annotation or a parameter
annotation, ``self`` included), and properties read on such values. A
dynamic call (a registry's factory, a callback) is not followed, on either
commit alike.

It prints the walk as a reader takes it: a *stop* each time the walk enters a
file (the first file included), *returns* (stops in a file already visited
and left), *climbs* (stops in a higher layer than the one just left, layers as
in pyproject's import-linter contract: cli > nas > hwprof workflows > devices
> hwprof core), and the distinct files and functions.

    python -m benchmarks.target_path_static                       # this checkout
    python -m benchmarks.target_path_static --root /path/to/old/checkout --layers-from pyproject.toml
    python -m benchmarks.target_path_static --list                 # every function visited, in order
"""

from __future__ import annotations

import argparse
import ast
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import target_path

PACKAGES = ("hwprof", "nas", "devices")


@dataclass
class Module:
    name: str
    path: Path
    tree: ast.Module
    defs: dict[str, ast.AST] = field(default_factory=dict)  # top-level functions and classes
    imports: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # alias -> (module, name or None)


def _module_name(root: Path, path: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def load_modules(root: Path) -> dict[str, Module]:
    """Parse cli.py and every module of the three packages under ``root``."""
    paths = [root / "cli.py"] + [p for pkg in PACKAGES for p in sorted((root / pkg).rglob("*.py"))]
    modules = {}
    for path in paths:
        name = _module_name(root, path)
        tree = ast.parse(path.read_text(), str(path))
        mod = Module(name, path, tree)
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                mod.defs[node.name] = node
        for node in ast.walk(tree):  # imports at any depth (local imports are common here)
            if isinstance(node, ast.Import):
                for alias in node.names:
                    mod.imports[alias.asname or alias.name.split(".")[0]] = (
                        alias.name if alias.asname else alias.name.split(".")[0], None)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                    package = package[:len(package) - node.level + 1]
                    base = ".".join(package + ([node.module] if node.module else []))
                for alias in node.names:
                    mod.imports[alias.asname or alias.name] = (base, alias.name)
        modules[name] = mod
    return modules


@dataclass(frozen=True)
class Target:
    """A function, method or class the walk can stop in."""

    module: str
    qualname: str  # "f", "Class.method" or "Class"

    def __str__(self) -> str:
        return f"{self.module}.{self.qualname}"


class Walker:
    """Depth-first walk of the calls a tainted value reaches."""

    def __init__(self, modules: dict[str, Module]):
        self.modules = modules
        self.visited: set[Target] = set()
        self.order: list[Target] = []
        self._module = ""
        self.why: dict[Target, tuple[str, list[str]]] = {}  # stop -> (module it was entered from, tainted params)

    # --- resolution -----------------------------------------------------------------------------------------
    def resolve_name(self, module: str, name: str, depth: int = 0) -> Target | str | None:
        """A name in a module: a Target, a module name (for ``import x``), or None when not ours."""
        mod = self.modules.get(module)
        if mod is None or depth > 10:
            return None
        if name in mod.defs:
            return Target(module, name)
        if name in mod.imports:
            source, attr = mod.imports[name]
            if attr is None:
                return source if source in self.modules or source in PACKAGES else None
            if f"{source}.{attr}" in self.modules:
                return f"{source}.{attr}"
            return self.resolve_name(source, attr, depth + 1)
        return None

    def node_of(self, target: Target) -> ast.AST | None:
        mod = self.modules[target.module]
        parts = target.qualname.split(".")
        node = mod.defs.get(parts[0])
        for part in parts[1:]:
            node = next((n for n in getattr(node, "body", []) if getattr(n, "name", None) == part), None)
        return node

    def method(self, cls: Target, name: str, depth: int = 0) -> Target | None:
        """``name`` looked up on our class ``cls`` and its bases (ours only)."""
        node = self.node_of(cls)
        if not isinstance(node, ast.ClassDef) or depth > 10:
            return None
        for item in node.body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name == name:
                return Target(cls.module, f"{cls.qualname}.{name}")
        for base in node.bases:
            resolved = self.resolve_expr_target(cls.module, base)
            if isinstance(resolved, Target):
                found = self.method(resolved, name, depth + 1)
                if found:
                    return found
        return None

    def resolve_expr_target(self, module: str, expr: ast.AST) -> Target | str | None:
        if isinstance(expr, ast.Name):
            return self.resolve_name(module, expr.id)
        if isinstance(expr, ast.Attribute):
            owner = self.resolve_expr_target(module, expr.value)
            if isinstance(owner, str):
                if f"{owner}.{expr.attr}" in self.modules:
                    return f"{owner}.{expr.attr}"
                return self.resolve_name(owner, expr.attr)
            if isinstance(owner, Target):
                return self.method(owner, expr.attr)
        return None

    def class_of_annotation(self, module: str, annotation: ast.AST | None) -> Target | None:
        """Our class named by an annotation (``Device``, ``Device | None``, ``"Device"``)."""
        if annotation is None:
            return None
        if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
            try:
                annotation = ast.parse(annotation.value, mode="eval").body
            except SyntaxError:
                return None
        if isinstance(annotation, ast.BinOp):
            return self.class_of_annotation(module, annotation.left) or self.class_of_annotation(
                module, annotation.right)
        if isinstance(annotation, ast.Subscript):  # Optional[Device]
            return self.class_of_annotation(module, annotation.slice)
        resolved = self.resolve_expr_target(module, annotation)
        if isinstance(resolved, Target) and isinstance(self.node_of(resolved), ast.ClassDef):
            return resolved
        return None

    # --- the walk -------------------------------------------------------------------------------------------
    def walk(self, target: Target, tainted: dict[str, Target | None]) -> None:
        """Visit ``target`` with these parameters tainted (name -> their class, if known)."""
        if target in self.visited:
            return
        self.visited.add(target)
        self.order.append(target)
        self.why[target] = (self._module, sorted(tainted))
        node = self.node_of(target)
        if isinstance(node, ast.ClassDef):  # a dataclass built from the target: its __post_init__, if any
            post = self.method(target, "__post_init__")
            if post and tainted:
                self.walk(post, {f"self.{name}": cls for name, cls in tainted.items()})
            return
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return
        owner = Target(target.module, target.qualname.rsplit(".", 1)[0]) if "." in target.qualname else None
        taint = dict(tainted)
        self._module = target.module
        self._propagate(target.module, node, taint, owner)
        calls = sorted((n for n in ast.walk(node) if isinstance(n, (ast.Call, ast.Attribute))),
                       key=lambda n: (n.lineno, n.col_offset))
        for call in calls:
            self._module = target.module
            if isinstance(call, ast.Call):
                self._follow_call(target.module, call, taint, owner)
            else:
                self._follow_property(target.module, call, taint, owner)

    def _piece(self, module: str, expr: ast.AST | None, taint: dict) -> tuple[bool, Target | None]:
        """Whether ``expr`` is the target or a piece of it, and its class when the code says it.

        Pieces: a tainted name; its attributes and items (``dev.label``, ``parts[0]``); a method of a piece
        that is not one of our classes (``target.split(":")``); ``a or b`` / ``a if c else b`` with a piece in
        it; and the result of one of our functions handed a piece that returns a device or a string
        (``get_device``, ``device_label``, ``split_target``, ``resolve``). Results computed *with* the
        target (a predictor, a path, a table) are not pieces: a reader follows the target, not everything
        it touches.
        """
        if expr is None:
            return False, None
        if isinstance(expr, ast.Name):
            return (expr.id in taint), taint.get(expr.id)
        if isinstance(expr, ast.Attribute) and ast.unparse(expr) in taint:  # a carried field: self.device
            return True, taint[ast.unparse(expr)]
        if isinstance(expr, (ast.Attribute, ast.Subscript, ast.Starred)):
            base, _ = self._piece(module, expr.value, taint)
            return base, None
        if isinstance(expr, ast.BoolOp):
            return any(self._piece(module, v, taint)[0] for v in expr.values), None
        if isinstance(expr, ast.IfExp):
            return self._piece(module, expr.body, taint)[0] or self._piece(module, expr.orelse, taint)[0], None
        if isinstance(expr, ast.Call):
            if isinstance(expr.func, ast.Attribute):
                is_piece, cls = self._piece(module, expr.func.value, taint)
                if is_piece and cls is None:  # a method of a string or a dict of options
                    return True, None
                if is_piece and cls is not None:
                    callee = self.method(cls, expr.func.attr)
                    return self._returns_piece(callee)
            if isinstance(expr.func, ast.Name) and expr.func.id in ("str", "tuple", "dict") and expr.args:
                return self._piece(module, expr.args[0], taint)[0], None
            handed = any(self._piece(module, a, taint)[0] for a in expr.args) or any(
                self._piece(module, k.value, taint)[0] for k in expr.keywords)
            if handed:
                callee = self.resolve_expr_target(module, expr.func)
                if isinstance(callee, Target):
                    return self._returns_piece(callee)
        return False, None

    def _returns_piece(self, callee: Target | None, depth: int = 0) -> tuple[bool, Target | None]:
        """Whether one of our functions returns a device or a string (or a tuple of strings).

        Read from its return annotation; without one, from the functions its ``return`` statements call.
        """
        node = self.node_of(callee) if callee else None
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or depth > 5:
            return False, None
        if node.returns is None:
            for ret in (n for n in ast.walk(node) if isinstance(n, ast.Return) and isinstance(n.value, ast.Call)):
                inner = self.resolve_expr_target(callee.module, ret.value.func)
                if not isinstance(inner, Target):  # a local import: resolve it in the function's own imports
                    inner = None
                found = self._returns_piece(inner, depth + 1) if inner else (False, None)
                if found[0]:
                    return found
            return False, None
        cls = self.class_of_annotation(callee.module, node.returns)
        if cls is not None and ("Device" in cls.qualname or "Profile" in cls.qualname):
            return True, cls
        text = ast.unparse(node.returns).replace(" ", "")
        stringy = {"str", "str|None", "tuple[str,str]", "tuple[str,str|None]", "tuple[str,...]"}
        return text in stringy, None

    def _tainted(self, expr: ast.AST | None, taint: dict) -> bool:
        return self._piece(self._module, expr, taint)[0]

    def _class_of(self, module: str, expr: ast.AST, taint: dict, owner: Target | None) -> Target | None:
        """Our class of a value, when the code says it."""
        if isinstance(expr, ast.Name):
            return taint.get(expr.id)
        if isinstance(expr, ast.Call):
            callee = self.resolve_expr_target(module, expr.func)
            if isinstance(expr.func, ast.Attribute):
                cls = self._class_of(module, expr.func.value, taint, owner)
                if cls:
                    callee = self.method(cls, expr.func.attr)
            if isinstance(callee, Target):
                node = self.node_of(callee)
                if isinstance(node, ast.ClassDef):
                    return callee
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    return self.class_of_annotation(callee.module, node.returns)
        return None

    def _propagate(self, module: str, func: ast.AST, taint: dict, owner: Target | None) -> None:
        """Names assigned a piece of the target are pieces too (to a fixed point)."""
        for _ in range(5):
            before = dict(taint)
            for node in ast.walk(func):
                if isinstance(node, (ast.Assign, ast.AnnAssign, ast.NamedExpr)):
                    value = node.value
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                elif isinstance(node, (ast.For, ast.comprehension)):
                    value, targets = node.iter, [node.target]
                elif isinstance(node, ast.withitem) and node.optional_vars is not None:
                    value, targets = node.context_expr, [node.optional_vars]
                else:
                    continue
                is_piece, cls = self._piece(module, value, taint)
                if not is_piece:
                    continue
                for t in targets:
                    if isinstance(t, ast.Attribute):
                        taint.setdefault(ast.unparse(t), cls)
                        continue
                    for name in ast.walk(t):
                        if isinstance(name, ast.Name) and name.id not in taint:
                            taint[name.id] = cls if isinstance(t, ast.Name) else None
            if taint == before:
                break

    def _follow_property(self, module: str, attr: ast.Attribute, taint: dict, owner: Target | None) -> None:
        cls = self._class_of(module, attr.value, taint, owner)
        if cls is None or not self._tainted(attr.value, taint):
            return
        found = self.method(cls, attr.attr)
        node = self.node_of(found) if found else None
        if node is not None and any(isinstance(d, ast.Name) and d.id in ("property", "cached_property")
                                    for d in getattr(node, "decorator_list", [])):
            self.walk(found, {"self": cls})

    def _follow_call(self, module: str, call: ast.Call, taint: dict, owner: Target | None) -> None:
        receiver = call.func.value if isinstance(call.func, ast.Attribute) else None
        receiver_cls = self._class_of(module, receiver, taint, owner) if receiver is not None else None
        if receiver_cls is not None:
            callee = self.method(receiver_cls, call.func.attr)
        else:
            callee = self.resolve_expr_target(module, call.func)
        if not isinstance(callee, Target):
            return
        receiver_tainted = receiver_cls is not None and self._tainted(receiver, taint)
        args_tainted = [self._tainted(a, taint) for a in call.args]
        kw_tainted = {k.arg: self._tainted(k.value, taint) for k in call.keywords if k.arg}
        carries = isinstance(receiver, ast.Name) and receiver.id == "self" and any(
            k.startswith("self.") for k in taint)
        if not (receiver_tainted or carries or any(args_tainted) or any(kw_tainted.values())):
            return
        node = self.node_of(callee)
        if isinstance(node, ast.ClassDef):
            init = self.method(callee, "__init__")
            if init is None:  # a dataclass: the class is the stop; the fields handed a piece are carried
                fields = [n.target.id for n in node.body if isinstance(n, ast.AnnAssign)
                          and isinstance(n.target, ast.Name)]
                carried = {f: None for f, t in zip(fields, args_tainted) if t}
                carried.update({k: None for k, t in kw_tainted.items() if t and k in fields})
                self.walk(callee, carried)
                return
            callee, node, bound = init, self.node_of(init), True
            receiver_cls = Target(callee.module, callee.qualname.rsplit(".", 1)[0])
        else:
            bound = receiver_cls is not None or (
                isinstance(call.func, ast.Attribute) and isinstance(call.func.value, ast.Name)
                and call.func.value.id == "self")
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return
        params = [a for a in node.args.posonlyargs + node.args.args]
        tainted: dict[str, Target | None] = {}
        if bound and params and params[0].arg in ("self", "cls"):
            if receiver_tainted or (receiver is not None and self._tainted(receiver, taint)):
                tainted[params[0].arg] = receiver_cls
            params = params[1:]
        by_name = {a.arg: a for a in params + node.args.kwonlyargs}
        for arg, is_tainted in zip(params, args_tainted):
            if is_tainted:
                tainted[arg.arg] = self.class_of_annotation(callee.module, arg.annotation)
        for name, is_tainted in kw_tainted.items():
            if is_tainted and name in by_name:
                tainted[name] = self.class_of_annotation(callee.module, by_name[name].annotation)
        if receiver is not None and isinstance(receiver, ast.Name) and receiver.id == "self" and bound:
            tainted.update({k: v for k, v in taint.items() if k.startswith("self.")})
        if tainted:
            self.walk(callee, tainted)


def count(order: list[Target], layers: list) -> dict:
    """Stops (entering a file), returns, climbs, files and functions of a walk."""
    stops, returns, climbs, seen = 0, 0, 0, set()
    previous = None
    for t in order:
        module = t.module
        file_ = module
        if previous is not None and file_ == previous:
            continue
        stops += 1
        if file_ in seen:
            returns += 1
        if previous is not None and target_path.layer_of(file_, layers) < target_path.layer_of(previous, layers):
            climbs += 1
        seen.add(file_)
        previous = file_
    return {"files": len(seen), "stops": stops, "returns": returns, "climbs": climbs, "functions": len(order)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=target_path.ROOT, help="checkout to read (default: this one)")
    parser.add_argument("--layers-from", type=Path, default=target_path.LAYERS_FROM,
                        help="pyproject.toml whose import-linter layers rank the modules (default: this checkout's)")
    parser.add_argument("--start", default="nas.search_job.run_search_job")
    parser.add_argument("--params", default="target",
                        help="comma-separated parameters of the start that are the target or its pieces "
                             "(e.g. target,graph_style,seed: the pieces issue 41 names)")
    parser.add_argument("--list", action="store_true", help="print every function visited, in order")
    args = parser.parse_args()
    target_path.LAYERS_FROM = args.layers_from
    modules = load_modules(args.root.resolve())
    module, _, name = args.start.rpartition(".")
    walker = Walker(modules)
    walker.walk(Target(module, name), {p: None for p in args.params.split(",")})
    if args.list:
        for t in walker.order:
            print(f"  {t}  <- {walker.why[t][0]} ({', '.join(walker.why[t][1])})")
    c = count(walker.order, target_path._layers())
    print(f"{args.root}: {c['files']} files, {c['stops']} stops, {c['returns']} returns to a file already left, "
          f"{c['climbs']} climbs, {c['functions']} functions")


if __name__ == "__main__":
    main()
