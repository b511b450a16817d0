"""An Aura app whose import waits until the file named by $BOOT_GATE exists (at most 60 s): a
worker that is alive but cannot serve yet, as while a slow import or a stuck start-up runs.

    gunicorn ... tests.support.programs.gated_app:app   (with GUNICORN_PRELOAD=false)
"""

from __future__ import annotations

import os
import time
from pathlib import Path

_gate = Path(os.environ["BOOT_GATE"])
_deadline = time.monotonic() + 60
while not _gate.exists() and time.monotonic() < _deadline:
    time.sleep(0.1)

from wsgi import app  # noqa: E402 - imported only once the gate opens

__all__ = ["app"]
