"""The house itself: no import cycle among the project's modules (imports inside functions
counted), no module of ``xnorfault/`` over 800 lines, and the README's layout section naming the
packages that exist. The layering between packages is import-linter's (``make lint``)."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# setuptools package-dir: these top-level folders install as xnorfault.<folder>
FOLDERS = {
    "xnorfault": "xnorfault",
    **{f: f"xnorfault.{f}" for f in ("exporters", "runtimes", "targets")},
}
MAX_MODULE_LINES = 800


def project_modules() -> dict[str, Path]:
    modules = {}
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join([package, *parts])] = path
    return modules


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules ``name`` imports anywhere in its body (``from P import m`` of a
    submodule m counts as importing P.m, as Python resolves it)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            submodules = [
                f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in modules
            ]
            targets = submodules or [module]
        else:
            continue
        for target in targets:
            parts = target.split(".")
            while parts and ".".join(parts) not in modules:
                parts.pop()
            if parts and ".".join(parts) != name:
                found.add(".".join(parts))
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph[node]:
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_no_import_cycle_among_the_modules_counting_imports_in_functions():
    modules = project_modules()
    graph = {name: imported_modules(name, path, modules) for name, path in modules.items()}
    assert len(modules) > 50 and graph["xnorfault.evaluation.run"]  # the walk found the code
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_of_the_package_is_over_800_lines():
    lengths = {
        str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines())
        for path in (ROOT / "xnorfault").rglob("*.py")
    }
    assert {path: n for path, n in lengths.items() if n > MAX_MODULE_LINES} == {}


def test_the_readme_layout_names_the_packages_that_exist():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"^\s*(xnorfault/[\w/]+/|\w+/)\s", section, re.M))
    packages = {
        f"{path.parent.relative_to(ROOT).as_posix()}/"
        for path in (ROOT / "xnorfault").rglob("__init__.py")
        if path.parent != ROOT / "xnorfault"
    }
    assert packages <= named, f"the README's layout lacks {sorted(packages - named)}"
    missing = sorted(p for p in named if not (ROOT / p).is_dir())
    assert missing == [], f"the README's layout names folders that do not exist: {missing}"


def test_every_evaluation_option_reaches_the_api_and_the_command_line_by_one_name():
    """An option is a field of the request (or one of its groups): the API's keyword and the
    command's parameter are that field's option name, with nothing in between to forget."""
    import inspect

    import typer

    import xnorfault
    from xnorfault.cli import app
    from xnorfault.evaluation.request import EvaluationRequest, request_options

    options = request_options()
    assert {"repeats", "chips", "latency_batches", "shard", "threads"} <= set(options)
    api_keywords = set(inspect.signature(xnorfault.evaluate).parameters)
    assert set(options) <= api_keywords
    command = typer.main.get_command(app).commands["evaluate"]
    command_parameters = {parameter.name for parameter in command.params}
    assert set(options) <= command_parameters
    # every option lands in the request: the defaults give the default request
    request = EvaluationRequest.from_options(
        "m.onnx",
        "t.npz",
        faults=EvaluationRequest.__dataclass_fields__["faults"].default_factory(),
        weights=EvaluationRequest.__dataclass_fields__["weights"].default_factory(),
        **{name: option.default for name, option in options.items()},
    )
    assert request == EvaluationRequest(model=Path("m.onnx"), data="t.npz")


def test_an_unknown_evaluation_keyword_is_refused_by_name():
    import pytest

    import xnorfault

    with pytest.raises(TypeError, match="repeat"):
        xnorfault.evaluate("m.onnx", "t.npz", repeat=3)
