"""docs/students.md: its compatibility table is the one the code enforces, and its Python example runs."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from sb3_distill.common.pairs import compatibility_table_markdown

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "students.md"


def test_the_pages_compatibility_table_is_the_enforced_one():
    assert compatibility_table_markdown() in PAGE.read_text()


@pytest.mark.slow
def test_the_pages_python_example_runs(tmp_path):
    (block,) = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.DOTALL)
    completed = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    # What the example says it saves, a zip plain SAC loads
    assert (tmp_path / "sac_student.zip").is_file()
