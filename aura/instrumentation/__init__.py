"""What Aura measures: the spec's metrics (``definitions``), the ``recorder`` every layer records
through, and the HTTP middleware (``http``). The multiprocess machinery is ``aura.metrics``."""

from aura.instrumentation.recorder import Recorder, recorder

__all__ = ["Recorder", "recorder"]
