"""Where services/ passes, stores or compares an error reason: the arguments of the error helpers
in xerolink_common/errors.py, `reason=` keywords, the `reason` parameter of any function defined
under services/ (found by name, so a new one is covered without listing it), assignments to a
`reason` attribute and comparisons with one."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SERVICES = Path(__file__).resolve().parents[2] / "services"
# Reason position in the helpers of xerolink_common/errors.py and in XerolinkError itself.
HELPERS = {"invalid_argument": 0, "failed_precondition": 0, "not_found": 0, "unavailable": 0, "XerolinkError": 1}


@dataclass(frozen=True)
class Site:
    path: Path
    line: int
    node: ast.expr


def source_files() -> list[Path]:
    return [
        p
        for p in sorted(SERVICES.rglob("*.py"))
        if "tests" not in p.parts and "xero_emulator" not in p.parts and not p.name.endswith("_pb2.py")
    ]


def _reason_positions(trees: list[ast.Module]) -> dict[str, int]:
    """Every function under services/ with a parameter named `reason`, by name: its position."""
    found = dict(HELPERS)
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                names = [a.arg for a in node.args.args]
                if "reason" in names:
                    index = names.index("reason") - (1 if names[0] in {"self", "cls"} else 0)
                    found.setdefault(node.name, index)
            elif isinstance(node, ast.ClassDef):
                # A class is called by its name: its __init__'s parameters, or a dataclass's fields.
                init = [f for f in node.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"]
                names = [a.arg for a in init[0].args.args[1:]] if init else _fields(node)
                if "reason" in names:
                    found.setdefault(node.name, names.index("reason"))
    return found


def _fields(node: ast.ClassDef) -> list[str]:
    return [f.target.id for f in node.body if isinstance(f, ast.AnnAssign) and isinstance(f.target, ast.Name)]


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _stored_or_compared(node: ast.AST) -> list[ast.expr]:
    """`x.reason = "..."` (also inside a tuple assignment) and `reason == "..."`."""
    if isinstance(node, ast.Assign):
        pairs: list[tuple[ast.expr, ast.expr]] = []
        for target in node.targets:
            if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                pairs += zip(target.elts, node.value.elts, strict=False)
            else:
                pairs.append((target, node.value))
        return [value for target, value in pairs if _name(target) == "reason"]
    if isinstance(node, ast.Compare):
        sides = [node.left, *node.comparators]
        if any(_name(side) == "reason" for side in sides):
            return [side for side in sides if _name(side) != "reason"]
    return []


def reason_sites() -> Iterator[Site]:
    files = source_files()
    trees = [ast.parse(p.read_text(), str(p)) for p in files]
    positions = _reason_positions(trees)
    for path, tree in zip(files, trees, strict=True):
        for node in ast.walk(tree):
            for value in _stored_or_compared(node):
                yield Site(path, value.lineno, value)
            if not isinstance(node, ast.Call):
                continue
            for kw in node.keywords:
                if kw.arg == "reason":
                    yield Site(path, kw.value.lineno, kw.value)
            index = positions.get(_name(node.func))
            if index is not None and index < len(node.args):
                yield Site(path, node.args[index].lineno, node.args[index])
