"""Documentation cites only what the repository has: every relative link, every backticked
repository path, every `path::test_name` (the test must exist), and every `*.md` it names.

README.md joins `DOCS` once its layout section and the hostile-server reference are updated
(see the ops report); the check itself does not care which file it reads.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.deploy._helpers import REPO

DOCS = [
    "README.md",
    "docs/operations.md",
    "docs/metrics.md",
    "docs/replicas.md",
    "deploy/README.md",
]

TOP_DIRS = ("daily_otel_bridge/", "tests/", "deploy/", "docs/", "config/", "bench/", ".ci/")
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_CODE = re.compile(r"`([^`\n]+)`")
_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
_MD_NAME = re.compile(r"(?<![\w/.-])([\w.-]+\.md)\b")
_TEST_REF = re.compile(r"^([\w./-]+\.py)::(\w+)$")


def citations(text: str) -> set[str]:
    """Repository paths a Markdown text cites (links, backticked paths, *.md names)."""
    found: set[str] = set()
    for target in _LINK.findall(text):
        if not re.match(r"^[a-z]+:", target) and not target.startswith("#"):
            found.add(target.split("#", 1)[0])
    prose = _FENCE.sub(" ", text)
    for code in _CODE.findall(prose):
        token = code.strip()
        if token.startswith(TOP_DIRS) and " " not in token:
            found.add(token)
        elif token.startswith("::"):
            continue
    found.update(_MD_NAME.findall(prose))
    return found


def _exists(doc: Path, cited: str) -> bool:
    test_ref = _TEST_REF.match(cited)
    path_text = test_ref.group(1) if test_ref else cited.rstrip("/")
    candidates = [doc.parent / path_text, REPO / path_text]
    if "/" not in path_text:  # a bare file name: anywhere in the repository
        candidates.extend(p for p in REPO.rglob(path_text) if ".venv" not in p.parts)
    path = next((c for c in candidates if c.exists()), None)
    if path is None:
        return False
    if test_ref:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        functions = (ast.FunctionDef, ast.AsyncFunctionDef)
        names = {n.name for n in ast.walk(tree) if isinstance(n, functions)}
        return test_ref.group(2) in names
    return True


def test_the_checker_reads_what_it_should() -> None:
    text = (
        "see [m](docs/metrics.md), `deploy/grafana/bridge.json`, "
        "`tests/deploy/test_docs.py::test_the_checker_reads_what_it_should`, "
        "daily-api.md and `--config PATH`\n```\nnot/this.py\n```\n"
    )
    assert citations(text) == {
        "docs/metrics.md",
        "deploy/grafana/bridge.json",
        "tests/deploy/test_docs.py::test_the_checker_reads_what_it_should",
        "daily-api.md",
    }
    assert _exists(
        REPO / "README.md", "tests/deploy/test_docs.py::test_the_checker_reads_what_it_should"
    )
    assert not _exists(REPO / "README.md", "tests/deploy/test_docs.py::no_such_test")
    assert not _exists(REPO / "README.md", "daily-api.md")


@pytest.mark.parametrize("doc", DOCS)
def test_docs_cite_only_what_the_repository_has(doc: str) -> None:
    path = REPO / doc
    missing = sorted(c for c in citations(path.read_text(encoding="utf-8")) if not _exists(path, c))
    assert not missing, f"{doc} cites what the repository does not have: {missing}"


def test_license_is_the_apache_2_0_text_pyproject_declares() -> None:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "Apache-2.0"
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert text.split()[:5] == ["Apache", "License", "Version", "2.0,", "January"]
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text
    # The packaged example config (`daily-otel-bridge init`) is declared as package data, so
    # the wheel carries it; setuptools adds LICENSE to the wheel's metadata by default.
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
        "setuptools"
    ]["package-data"]["daily_otel_bridge"]
    assert "config/example.yaml" in package_data


def test_operations_lists_every_metric_with_its_labels() -> None:
    from prometheus_client import Counter, Gauge, Histogram

    from daily_otel_bridge.instruments import BridgeMetrics

    rows: dict[str, tuple[str, list[str]]] = {}
    for line in (REPO / "docs" / "operations.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("| `daily_otel_bridge_"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            labels = [c.strip("` ") for c in cells[2].split(",")] if cells[2] else []
            rows[cells[0].strip("`")] = (cells[1], labels)
    exposed: dict[str, tuple[str, list[str]]] = {}
    for metric in vars(BridgeMetrics()).values():
        if isinstance(metric, Counter | Gauge | Histogram):
            family = metric.describe()[0]
            name = family.name + ("_total" if family.type == "counter" else "")
            exposed[name] = (family.type, list(metric._labelnames))
    assert rows == exposed


_SECTION = re.compile(r"README(?:\.md|'s)?[,:]?\s*\(?[\"“]([^\"”\n]+)[\"”]")
CODE_DIRS = ("daily_otel_bridge", "bench", "tests", "deploy")


def _headings(path: Path) -> set[str]:
    return {
        line.lstrip("#").strip()
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    }


def code_citations(text: str) -> tuple[set[str], set[str]]:
    """(paths and *.md names, README section titles) a source file's comments cite."""
    paths = {c for c in citations(text) if not c.startswith(("http", "www"))}
    sections = {m.strip() for m in _SECTION.findall(text)}
    return paths, sections


def _python_files() -> list[Path]:
    return sorted(
        p
        for top in CODE_DIRS
        for p in (REPO / top).rglob("*.py")
        if ".venv" not in p.parts and p.name != "test_docs.py"
    )


def test_code_comments_cite_only_what_the_repository_has() -> None:
    """A docstring or comment that sends the reader to a file, a test or a README section
    sends them somewhere that exists (`ast` strings and `#` comments alike: the whole text
    of the file is read, which is stricter)."""
    readme = _headings(REPO / "README.md")
    missing: list[str] = []
    for path in _python_files():
        text = path.read_text(encoding="utf-8")
        cited, sections = code_citations(text)
        rel = path.relative_to(REPO)
        missing += [f"{rel}: {c}" for c in sorted(cited) if not _exists(path, c)]
        missing += [
            f'{rel}: README "{s}"'
            for s in sorted(sections)
            if not any(h == s or h.startswith(s) for h in readme)
        ]
    assert not missing, "code cites what the repository does not have:\n" + "\n".join(missing)
