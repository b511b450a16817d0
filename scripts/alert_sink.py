"""A webhook receiver for `make demo`'s Alertmanager: prints each notification it gets.

    python scripts/alert_sink.py --port 9094 [--log FILE]

One line per alert in each notification (receiver, status, alertname, severity, namespace,
runbook), to stdout and the log file. Binds 127.0.0.1 only. Stands in for the pager and the
ticket system that k8s/monitoring/alertmanager/alertmanager.yml's receivers point at.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", help="append each line to this file too")
    args = parser.parse_args(argv)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            self.send_response(200)
            self.end_headers()
            now = datetime.now(UTC).strftime("%H:%M:%S")
            for alert in body.get("alerts", []):
                labels, annotations = alert.get("labels", {}), alert.get("annotations", {})
                line = (
                    f"{now} {self.path.strip('/')} {alert.get('status')} {labels.get('alertname')} "
                    f"severity={labels.get('severity')} namespace={labels.get('namespace')} "
                    f"runbook={annotations.get('runbook_url')}"
                )
                print(line, flush=True)
                if args.log:
                    with open(args.log, "a") as log:
                        log.write(line + "\n")

        def log_message(self, *_args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
