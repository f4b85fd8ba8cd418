"""The house's rooms import cleanly in any order: each module of `bot/` and `cogs/`, imported first
in a fresh interpreter's view of the project, finds everything it needs (no circle of imports
that only works when another module happened to be imported before)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import importlib, pathlib, sys
names = []
for path in sorted([*pathlib.Path("bot").rglob("*.py"), *pathlib.Path("cogs").glob("*.py")]):
    parts = path.with_suffix("").parts
    names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
failed = []
for name in names:
    for loaded in [m for m in sys.modules if m.split(".")[0] in ("bot", "cogs")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as error:
        failed.append(f"{name}: {error!r}")
print("\\n".join(failed) or f"ok {len(names)}")
"""


def test_every_module_imports_first_without_a_circle() -> None:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok "), result.stdout
