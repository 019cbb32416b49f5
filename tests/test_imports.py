"""The house: no import cycles in sb3_distill/, and the CLI at the top with nothing importing it."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "sb3_distill"
CLI = f"{PACKAGE}.cli"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path) -> set[str]:
    """Every sb3_distill module a file imports, at the top or inside functions."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], *filter(None, [base])])
            # `from package import submodule` imports the submodule
            known = {alias.name for alias in node.names if (ROOT / Path(*base.split("."), alias.name)).exists()}
            known |= {alias.name for alias in node.names if (ROOT / Path(*base.split("."), alias.name + ".py")).exists()}
            modules.add(base)
            modules.update(f"{base}.{name}" for name in known)
    return {module for module in modules if module == PACKAGE or module.startswith(PACKAGE + ".")}


#: ``python -m sb3_distill``: the command's other entry point, which runs the CLI when imported (left out of the graph)
MAIN = "__main__.py"


def import_graph() -> dict[str, set[str]]:
    files = sorted(path for path in (ROOT / PACKAGE).rglob("*.py") if path.name != MAIN)
    graph = {module_name(path): imported_modules(path) for path in files}
    return {
        module: {target for target in targets if target in graph and target != module} for module, targets in graph.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the graph as a list of modules, or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = "open"
        stack.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            return cycle
    return None


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert {"sb3_distill.recipe", "sb3_distill.tuning.study", CLI} <= set(graph)
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_main_module_only_runs_the_cli():
    assert imported_modules(ROOT / PACKAGE / MAIN) & {module for module in import_graph()} == {CLI}
    completed = subprocess.run([sys.executable, "-m", PACKAGE, "--help"], capture_output=True, text=True, cwd=ROOT)
    assert completed.returncode == 0 and completed.stdout.startswith("usage: sb3-distill")


def test_nothing_imports_the_cli():
    importers = {module for module, targets in import_graph().items() if CLI in targets and module != CLI}
    benchmark_importers = {path.name for path in (ROOT / "benchmarks").glob("*.py") if CLI in imported_modules(path)}
    assert importers == set() and benchmark_importers == set()


def test_shared_helpers_live_below_the_cli():
    graph = import_graph()
    for module in ("sb3_distill.tuning.study", "sb3_distill.zoo", "sb3_distill.runs"):
        assert "sb3_distill.recipe" in graph[module] or any("sb3_distill.recipe" in graph[target] for target in graph[module])


def test_importing_every_module_but_the_cli_leaves_the_cli_unimported():
    modules = sorted(module for module in import_graph() if module != CLI)
    code = f"import importlib, sys\nfor name in {modules!r}: importlib.import_module(name)\nprint({CLI!r} in sys.modules)"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert completed.stdout.strip() == "False"


#: The student packages, one per algorithm (sb3-contrib's layout); common/ imports none of them
STUDENT_PACKAGES = ("sb3_distill.dqn", "sb3_distill.qrdqn", "sb3_distill.ppo", "sb3_distill.sac", "sb3_distill.td3")
#: What is built on the students: common/ imports none of it either
ABOVE_THE_STUDENTS = (
    "sb3_distill.recipe",
    "sb3_distill.runs",
    "sb3_distill.teacher_runs",
    "sb3_distill.zoo",
    "sb3_distill.tuning",
    "sb3_distill.export",
    CLI,
)


def test_the_common_core_imports_no_student_and_nothing_built_on_them():
    graph = import_graph()
    common = {module: targets for module, targets in graph.items() if module.startswith("sb3_distill.common")}
    assert {"sb3_distill.common.teacher", "sb3_distill.common.losses", "sb3_distill.common.buffers"} <= set(common)
    for module, targets in common.items():
        above = {target for target in targets if target.startswith(STUDENT_PACKAGES + ABOVE_THE_STUDENTS)}
        assert above == set(), f"{module} imports {sorted(above)}"
