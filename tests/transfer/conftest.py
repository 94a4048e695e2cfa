"""Fixtures of the protocol tests; helpers live in runkit.py."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # `import runkit` under any import mode
