"""The README's Python examples run as written (the README stays true).

Every ```python block of README.md is executed. A block that does not start with an import
continues the previous block's namespace, as a reader running the tour in one session would.
Blocks that need a running Dask scheduler are skipped (marked by ``Client("tcp://``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
_NEEDS_CLUSTER = 'Client("tcp://'


def _sessions() -> list[tuple[int, list[str]]]:
    """Groups of blocks run in one namespace, keyed by the README line of their first block."""
    text = README.read_text(encoding="utf-8")
    sessions: list[tuple[int, list[str]]] = []
    for match in _BLOCK.finditer(text):
        code = match.group(1)
        line = text.count("\n", 0, match.start()) + 1
        if _NEEDS_CLUSTER in code:
            continue
        starts_fresh = code.lstrip().startswith(("import ", "from "))
        if starts_fresh or not sessions:
            sessions.append((line, [code]))
        else:
            sessions[-1][1].append(code)
    return sessions


SESSIONS = _sessions() if README.exists() else []


def test_readme_has_examples():
    if not README.exists():
        pytest.skip("README.md is not beside the tests (an installed test copy)")
    assert len(SESSIONS) >= 5


@pytest.mark.parametrize("session", SESSIONS, ids=[f"line{line}" for line, _ in SESSIONS])
def test_readme_example_runs(session, tmp_path, monkeypatch):
    line, blocks = session
    code = "\n".join(blocks)
    if "torch" in code:
        pytest.importorskip("torch")
    if "matplotlib" in code:
        pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)  # examples may write files (plans, PNGs)
    namespace: dict[str, object] = {"__name__": "__readme__"}
    exec(compile(code, f"README.md, the example at line {line}", "exec"), namespace)
