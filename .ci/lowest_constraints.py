"""Prints pip constraints that pin every `>=` floor of pyproject.toml (runtime, test extra, and the
transitive floors of [tool.lowest-versions]) to exactly that version, for the lowest-versions job
of `.ci/run`."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

pyproject = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
project = pyproject["project"]
transitive = pyproject["tool"]["lowest-versions"]["transitive"]
for requirement in [*project["dependencies"], *project["optional-dependencies"]["test"], *transitive]:
    match = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*>=\s*([^,;\s]+)", requirement)
    if match:
        print(f"{match.group(1)}=={match.group(2)}")
