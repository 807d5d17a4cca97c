"""The package's shape, checked: dependencies point down only.

Each folder under ``persrm_gen/`` has one job (README "Code layout"); a module may import
its own folder, the shared top-level modules and the folders below it, never one above.
Imports inside functions count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "persrm_gen"
SHARED = "shared"  # the top-level modules: errors, records, text utilities, secrets, ...
BELOW = {
    SHARED: set(),
    "llm": {SHARED},
    "prompts": {SHARED, "llm"},
    "authors": {SHARED},
    "generator": {SHARED, "llm", "prompts"},
    "dataset": {SHARED},
    "cards": {SHARED, "dataset"},
    "pipeline": {SHARED, "llm", "prompts", "authors", "generator", "dataset", "cards"},
    "publish": {SHARED, "dataset", "cards"},
    "trainers": {SHARED, "llm", "prompts", "dataset", "cards"},
    "cli": {SHARED, "llm", "prompts", "authors", "generator", "dataset", "cards", "pipeline", "publish", "trainers"},
}


def folder_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and (PKG / parts[1]).is_dir() else SHARED


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("persrm_gen"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)  # the name may be a module
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("persrm_gen"))
    return found


def modules() -> list[tuple[str, Path]]:
    return [(".".join(p.relative_to(PKG.parent).with_suffix("").parts), p) for p in sorted(PKG.rglob("*.py"))]


def test_every_folder_is_in_the_map():
    folders = {p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(BELOW) - {SHARED}


def test_dependencies_point_down_only():
    upward = []
    for module, path in modules():
        here = folder_of(module)
        for target in imports(path):
            there = folder_of(target)
            if there != here and there not in BELOW[here]:
                upward.append(f"{module} ({here}) imports {target} ({there})")
    assert not upward, "\n".join(upward)


def test_the_map_itself_has_no_cycle():
    seen: dict[str, int] = {}

    def depth(folder: str, trail: tuple[str, ...] = ()) -> int:
        assert folder not in trail, f"cycle: {' -> '.join((*trail, folder))}"
        if folder not in seen:
            seen[folder] = 1 + max((depth(b, (*trail, folder)) for b in BELOW[folder]), default=0)
        return seen[folder]

    for folder in BELOW:
        depth(folder)


# The access floor's own floor: the vocabulary every part of llm/ shares.
LLM_VOCABULARY = {"persrm_gen.llm.types", "persrm_gen.llm.faults"}


def as_module(target: str) -> str:
    """``persrm_gen.llm.faults.TransientError`` -> ``persrm_gen.llm.faults``: the module a name comes from."""
    parts = target.split(".")
    while len(parts) > 1 and not PKG.parent.joinpath(*parts).with_suffix(".py").exists():
        if PKG.parent.joinpath(*parts).is_dir():
            break
        parts.pop()
    return ".".join(parts)


def llm_imports(module: str) -> set[str]:
    path = PKG.parent.joinpath(*module.split(".")).with_suffix(".py")
    found = {as_module(t) for t in imports(path)}
    return {t for t in found if t.startswith("persrm_gen.llm.")}


def test_transports_never_import_the_client_above_them():
    upward = [f"{m} imports {t}" for m, _ in modules() if m.startswith("persrm_gen.llm.transports.")
              for t in llm_imports(m) if t == "persrm_gen.llm.client"]
    assert not upward, "\n".join(upward)


def test_request_types_and_faults_import_nothing_else_from_llm():
    assert all((PKG / "llm" / f"{m.rsplit('.', 1)[1]}.py").exists() for m in LLM_VOCABULARY)
    wider = [f"{m} imports {t}" for m in sorted(LLM_VOCABULARY) for t in llm_imports(m) - LLM_VOCABULARY]
    assert not wider, "\n".join(wider)


def test_command_modules_never_import_the_app_back():
    """cli/app.py registers each command module (``register(app)``); a command module that
    imported the app module back would tie the commands into a cycle through it."""
    offenders = [module for module, path in modules()
                 if module.startswith("persrm_gen.cli.") and module not in ("persrm_gen.cli.app", "persrm_gen.cli.__main__")
                 and "persrm_gen.cli.app" in imports(path)]  # fmt: skip
    assert not offenders, offenders
    commands = [m for m, _ in modules() if m.startswith("persrm_gen.cli.") and not m.endswith(("app", "__main__", "__init__"))]
    from persrm_gen.cli import app  # noqa: PLC0415

    assert all(callable(getattr(__import__(m, fromlist=["register"]), "register", None)) for m in commands), commands
    assert app.app.registered_commands and app.app.registered_groups


def test_no_module_imports_a_private_name_of_another():
    """A leading underscore means "only this module relies on it": a second module that
    imports it (as dryrun once did with the pipeline's helpers) hides a dependency."""
    private = []
    for module, path in modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("persrm_gen"):
                private += [f"{module} imports {node.module}.{a.name}" for a in node.names
                            if a.name.startswith("_") and not a.name.startswith("__")]
    assert not private, "\n".join(private)
