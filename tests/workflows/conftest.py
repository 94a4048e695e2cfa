"""Fixtures of the WorkflowTemplate tests (helpers live in argo_docs.py and argo_sim.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # `import argo_docs` under any import mode

from argo_docs import load_templates  # noqa: E402


@pytest.fixture(scope="session")
def templates() -> dict[str, dict]:
    return load_templates()
