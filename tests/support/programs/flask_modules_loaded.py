"""Imports the modules named in argv[1:] and prints, as JSON, every Flask, Flask extension or
Werkzeug module that importing them loaded."""

import importlib
import json
import sys

for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("flask", "werkzeug") or m.startswith("flask_"))))
