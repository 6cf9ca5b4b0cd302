"""The house rules, read from the code itself: imports run one way down the layers with no
circle, and no platform's markup or ids live outside that platform's adapter."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bot", "handlers", "storage")

# lowest first; a module may import its own layer and those below, never one above
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("domain", ("bot.domain",)),
    ("shared", ("storage", "bot.config", "bot.i18n", "bot.metrics", "bot.charts",
                "bot.messages", "bot.pacing")),
    ("services", ("bot.services",)),
    ("handlers and worker", ("handlers", "bot.worker", "bot.jobs")),
    ("adapters", ("bot.adapters",)),
    ("composition root", ("bot.app",)),
    ("command line", ("bot.cli",)),
]


def layer_of(module: str) -> int:
    best, best_len = 1, -1  # anything unnamed counts as shared
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = i, len(prefix)
    return best


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `module` imports (a package's own __init__ excluded)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names = [base, *(f"{base}.{a.name}" for a in node.names)]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module and not module.startswith(name + "."):
                out.add(name)
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {m: imports_of(m, p, set(mods)) for m, p in mods.items()}


def test_imports_never_run_up_the_layers() -> None:
    upward = sorted(f"{a} ({LAYERS[layer_of(a)][0]}) -> {b} ({LAYERS[layer_of(b)][0]})"
                    for a, targets in graph().items() for b in targets
                    if layer_of(b) > layer_of(a))
    assert upward == []


def test_no_import_circles() -> None:
    g = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in g:
        if v not in index:
            visit(v)
    assert circles == []


def test_the_checker_sees_an_upward_import_and_a_circle(tmp_path: Path) -> None:
    """The rules above can fail: a made-up domain module importing a service is caught."""
    assert layer_of("bot.domain.model") < layer_of("bot.services.cases") < \
        layer_of("handlers.core") < layer_of("bot.adapters.slack.app") < layer_of("bot.cli")
    bad = tmp_path / "bad.py"
    bad.write_text("from bot.services import cases\n", "utf-8")
    assert imports_of("bot.domain.bad", bad, {"bot.services.cases", "bot.domain.bad"}) == \
        {"bot.services.cases"}


# Slack's markup: *bold*, :emoji:, <@U…> mentions, <!date…> tokens
SLACK_MARKUP = re.compile(r"(?<![\w*])\*[A-Za-z{<][^*\n]*\*(?![\w*])|:(?:rotating_light|warning|"
                          r"white_check_mark|mega|bar_chart|bell|ticket|x):|<@[A-Z{]|<!date")


def strings_in(path: Path) -> list[tuple[int, str]]:
    """Every string a module could put in front of a reader: its constants and f-string
    parts, docstrings and comments left out."""
    tree = ast.parse(path.read_text("utf-8"))
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) \
                and node.body and isinstance(node.body[0], ast.Expr) \
                and isinstance(node.body[0].value, ast.Constant):
            docstrings.add(id(node.body[0].value))
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings]


def test_no_slack_markup_outside_the_slack_adapter() -> None:
    hits = []
    for path in [*(ROOT / "bot").rglob("*.py"), *(ROOT / "handlers").rglob("*.py")]:
        if "slack" not in path.relative_to(ROOT).parts:
            hits += [f"{path.relative_to(ROOT)}:{n}: {text!r}" for n, text in strings_in(path)
                     if SLACK_MARKUP.search(text)]
    for path in (ROOT / "bot" / "locales").glob("*.yaml"):
        hits += [f"{path.relative_to(ROOT)}:{n}: {line}"
                 for n, line in enumerate(path.read_text("utf-8").splitlines(), 1)
                 if not line.startswith("#") and SLACK_MARKUP.search(line)]
    assert hits == []


def test_the_markup_check_can_fail(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text('"""*docs* may say :warning:."""\nTEXT = ":warning: *CS-1* for <@U1>"\n',
                      "utf-8")
    assert [text for _, text in strings_in(sample) if SLACK_MARKUP.search(text)] == \
        [":warning: *CS-1* for <@U1>"]


def test_sql_lives_only_in_storage() -> None:
    """Services and handlers call repositories; tables and query builders stay in storage/."""
    offenders = []
    for folder in ("bot", "handlers"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text("utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.module and (
                        node.module.startswith(("storage.tables", "sqlalchemy"))
                        and not (node.module.startswith("sqlalchemy.exc")
                                 or node.module == "sqlalchemy.ext.asyncio")):
                    offenders.append(f"{path.relative_to(ROOT)}: from {node.module} import …")
    assert offenders == []
