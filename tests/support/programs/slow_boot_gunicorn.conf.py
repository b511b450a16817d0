"""gunicorn.conf.py, with every worker after the first spending AURA_TEST_BOOT_DELAY seconds in
``post_fork``: between the fork and Gunicorn's own signal handlers, where a stop signal used to be
lost. Test only; every setting and every other hook is Aura's own."""

import os
import runpy
import time
from pathlib import Path

_aura = runpy.run_path(str(Path(__file__).resolve().parents[3] / "gunicorn.conf.py"))
globals().update({name: value for name, value in _aura.items() if not name.startswith("__")})


def post_fork(server, worker):  # noqa: D103 - Aura's, then the delay
    _aura["post_fork"](server, worker)
    if worker.age > 1:
        time.sleep(float(os.environ["AURA_TEST_BOOT_DELAY"]))
