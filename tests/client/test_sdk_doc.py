"""docs/sdk.md's walk-through, run as written: each ```python block against a live demo server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.client.conftest import Demo
from tests.e2e.conftest import REPO, Server

DOC = REPO / "docs" / "sdk.md"


def blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def test_the_sdk_walk_through_runs_as_written(demo: tuple[Demo, Server], tmp_path: Path) -> None:
    d, _ = demo
    found = blocks()
    assert len(found) == 2
    env = {**os.environ, "GREENRIGHTS_URL": d.url, "GREENRIGHTS_API_KEY": d.keys["power"]}
    outputs = []
    for i, code in enumerate(found):
        script = tmp_path / f"block{i}.py"
        script.write_text(code, encoding="utf-8")
        run = subprocess.run(
            [sys.executable, str(script)], check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 0, run.stderr
        outputs.append(run.stdout)
    first = outputs[0]
    assert "CEA-NATIONAL-2025" in first and "completed" in first
    assert "refused: quantity-invalid field quantity" in first or "refused: invalid-input field quantity" in first
    assert "CEA-NATIONAL-2025" in outputs[1]
