"""docs/RELIABILITY.md is generated from this suite and must not drift from it."""
from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_the_reliability_document_matches_the_suite() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "write_reliability_doc.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
