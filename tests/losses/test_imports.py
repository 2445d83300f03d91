"""The loss package stays free of Ray (STYLE.md: loss modules import no Ray, no I/O)."""

from __future__ import annotations

import subprocess
import sys


def test_importing_losses_does_not_import_ray_faiss_or_pot():
    code = "import sys, pauc_ray.losses; print(sorted(m for m in ('ray', 'ot', 'faiss') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
