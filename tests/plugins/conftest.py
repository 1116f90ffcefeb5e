"""The example plugin packages under examples/plugins/, importable without installing them.

Unit tests of an example import its modules from the source tree; the end-to-end
tests install it with pip into a fresh virtual environment instead.
"""

from __future__ import annotations

import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "plugins"
MIPS_PACKAGE = EXAMPLES / "autotune-mips"

if str(MIPS_PACKAGE) not in sys.path:
    sys.path.insert(0, str(MIPS_PACKAGE))
