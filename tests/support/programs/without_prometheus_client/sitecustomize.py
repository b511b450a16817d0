"""On PYTHONPATH, makes prometheus_client unimportable in every process of a server under test."""

import sys


class _Block:
    def find_spec(self, name, path=None, target=None):
        if name == "prometheus_client" or name.startswith("prometheus_client."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


sys.meta_path.insert(0, _Block())
