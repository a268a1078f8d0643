"""Every arrow between portal modules points down.

The import graph of ``portal`` is read from the source with ``ast`` (module-level and
function-level imports, relative imports resolved) and must be free of cycles.  A
function-local import of a portal module is how a cycle usually hides, so those are refused
too, except for the few places listed in ``LOCAL_IMPORT_ALLOWED`` where deferring the import
is the point (the app factory wiring blueprints and commands, an optional dependency, the
sandbox emulators).
"""

from __future__ import annotations

import ast
from pathlib import Path

PORTAL = Path(__file__).resolve().parent.parent / "portal"

# Function-local imports of portal modules that are not cycle dodges: (importing module,
# imported module or package prefix). They run only once every module is loaded, so they are
# no arrow of the import graph either.
LOCAL_IMPORT_ALLOWED = {
    # The app factory binds error handlers, hooks, blueprints and CLI groups once the app
    # exists; importing them at module level would load every feature just to import ``portal``.
    ("portal", "portal."),
    # Registering the command groups happens inside the factory too (``cli.register``).
    ("portal.cli", "portal."),
    # Only a deployment with ``REDIS_URL`` needs the optional ``rq`` package this module wraps.
    ("portal.jobs.runner", "portal.jobs.redis_queue"),
    ("portal.jobs.cli", "portal.jobs.redis_queue"),
    ("portal.jobs.ocr_dispatch", "portal.jobs.redis_queue"),
}
# The sandbox emulators are a separate program (``python -m portal.sandbox``) playing the
# outside systems; they load the portal pieces they imitate only when asked to.
LOCAL_IMPORT_FREE = "portal.sandbox"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PORTAL.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PORTAL.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        found[_module_name(path)] = path
    return found


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _targets(node: ast.AST, module: str, is_package: bool, known: set[str]) -> list[str]:
    """The portal modules one import statement loads."""
    names: list[str] = []
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = _resolve(module, is_package, node)
        for alias in node.names:
            candidate = f"{base}.{alias.name}"
            names.append(candidate if candidate in known else base)
    out = []
    for name in names:
        if not (name == "portal" or name.startswith("portal.")):
            continue
        # ``import portal.a.b`` also loads ``portal.a``; the edge that matters is the deepest known.
        while name not in known and "." in name:
            name = name.rsplit(".", 1)[0]
        if name in known and name != module:
            out.append(name)
            # Loading ``portal.a.b`` first runs the package ``portal.a`` (not the root package,
            # which every module sits in): an edge too, unless the importer is inside it.
            parent = name.rsplit(".", 1)[0]
            while parent.count(".") >= 1:
                if parent in known and not (module == parent or module.startswith(parent + ".")):
                    out.append(parent)
                parent = parent.rsplit(".", 1)[0]
    return out


def _imports(module: str, path: Path, known: set[str]):
    """Yield (target, line, is_local) for every portal import in one module."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"

    def walk(node: ast.AST, local: bool, guarded: bool):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                if not guarded:
                    for target in _targets(child, module, is_package, known):
                        yield target, child.lineno, local
            is_function = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            # ``if TYPE_CHECKING:`` imports never run, so they are no edge.
            is_type_only = (
                isinstance(child, ast.If)
                and "TYPE_CHECKING" in ast.unparse(child.test)
            )
            yield from walk(child, local or is_function, guarded or is_type_only)

    yield from walk(tree, False, False)


def _allowed(name: str, target: str) -> bool:
    if name == LOCAL_IMPORT_FREE or name.startswith(LOCAL_IMPORT_FREE + "."):
        return True
    return any(name == owner and (target == prefix or target.startswith(prefix))
               for owner, prefix in LOCAL_IMPORT_ALLOWED)


def _graph():
    """The import graph (allowed deferred imports left out) and every function-local portal import."""
    modules = _modules()
    known = set(modules)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    local: list[tuple[str, str, int]] = []
    for name, path in modules.items():
        for target, line, is_local in _imports(name, path, known):
            if is_local:
                local.append((name, target, line))
                if _allowed(name, target):
                    continue
            graph[name].add(target)
    return graph, local


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_cycle_finder_sees_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_no_import_cycle_among_portal_modules():
    graph, _ = _graph()
    cycles = _cycles(graph)
    lines = []
    for component in cycles:
        members = set(component)
        lines.append("cycle: " + ", ".join(component))
        for name in component:
            for target in sorted(graph[name] & members):
                lines.append(f"    {name} -> {target}")
    assert not cycles, "import cycles among portal modules:\n" + "\n".join(lines)


def test_no_function_local_import_of_a_portal_module():
    _, local = _graph()
    refused = [
        f"{name}:{line} imports {target} inside a function"
        for name, target, line in local
        if not _allowed(name, target)
    ]
    assert not refused, "\n".join(refused)


def test_htmx_decisions_and_events_live_in_one_module():
    """Fragment-or-page and ``HX-Trigger`` are decided only in ``portal/web/htmx.py``."""
    home = PORTAL / "web" / "htmx.py"
    found = []
    for path in sorted(PORTAL.rglob("*.py")):
        if path == home or "sandbox" in path.parts:
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if any(word in line for word in ("request.htmx", "HX-Trigger\"", "HX-Target", "HX-Request\"")):
                found.append(f"{path.relative_to(PORTAL.parent)}:{n}: {line.strip()}")
    assert not found, "htmx decided outside portal/web/htmx.py:\n" + "\n".join(found)


def test_labels_cover_the_stored_keys():
    """Every stored role, status and job kind has its one Chinese label."""
    from portal import labels
    from portal.models import BillStatus, JobKind, Role

    assert set(labels.ROLES) == {r.value for r in Role}
    assert set(labels.BILL_STATUSES) == {s.value for s in BillStatus}
    assert set(labels.WRITEBACK_KINDS) == {k.value for k in JobKind}


def test_label_tables_live_in_one_module():
    """A dict of Chinese labels defined outside ``portal/labels.py`` is a second home for labels."""
    tables = []
    for path in sorted(PORTAL.rglob("*.py")):
        if path.name == "labels.py" or "sandbox" in path.parts or "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict)):
                continue
            name = getattr(node.targets[0], "id", "")
            if name.endswith(("LABELS", "STATUSES", "KINDS", "ROLES", "MODES", "SOURCES", "ORIGINS")):
                tables.append(f"{path.relative_to(PORTAL.parent)}:{node.lineno} {name}")
    assert not tables, "label tables outside portal/labels.py:\n" + "\n".join(tables)
