"""On PYTHONPATH, makes the installed prometheus-client report a version Aura was not tested against."""

import importlib.metadata as m

_real = m.version
m.version = lambda name: "0.99.0" if name == "prometheus-client" else _real(name)
