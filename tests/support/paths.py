"""Where the tests find the checkout and the project's shared fixtures."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The project's shared fixtures sit beside the checkout (read-only); override with MOSS_SHARED.
SHARED = Path(os.environ.get("MOSS_SHARED", REPO.parent / "shared"))
FIXTURES = SHARED / "fixtures"
GOLDEN = REPO / "tests" / "golden"
