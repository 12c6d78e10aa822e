"""
The documentation builds with Sphinx without a single warning.
"""

import subprocess
import sys
from pathlib import Path


DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_sphinxBuildsWithoutWarnings(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         str(DOCS), str(tmp_path / "html")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "html" / "index.html").exists()
