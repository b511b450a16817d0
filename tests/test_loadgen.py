"""scripts/loadgen.py stops on a signal whenever it lands, the second one included."""

from __future__ import annotations

import argparse
import importlib.util
import signal
import threading

from aura.testing.servers import ROOT

_spec = importlib.util.spec_from_file_location("aura_loadgen", ROOT / "scripts" / "loadgen.py")
assert _spec and _spec.loader
loadgen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(loadgen)


def test_a_signal_landing_inside_the_stop_event_still_stops_the_run():
    # `make demo` on Ctrl-C: the terminal's SIGINT and the script's SIGTERM arrive together, and
    # Python ran the second handler in the main thread inside the first one's Event.set(), with
    # the Event's lock held: a handler that took that lock waited for itself forever.
    load = loadgen.Load(argparse.Namespace(url=["http://127.0.0.1:9"], seconds=60, requests=100))
    assert load.budget_left()

    def second_signal_inside_event_set() -> None:
        with load.stopped._cond:  # what Event.set() holds while it runs
            load.interrupt(signal.SIGTERM, None)

    handler = threading.Thread(target=second_signal_inside_event_set, daemon=True)
    handler.start()
    handler.join(5)
    assert not handler.is_alive(), "the signal handler waited on the lock its own thread holds"
    assert not load.budget_left()
    load.interrupt(signal.SIGINT, None)
    assert load.signal == signal.SIGTERM  # the first signal is the one the run dies of
