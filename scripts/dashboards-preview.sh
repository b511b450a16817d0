#!/usr/bin/env bash
# `make dashboards-preview`: run `make demo`'s stack (Gunicorn, Prometheus, Alertmanager, the
# load generator and its Redis outage; not its saturation phase) on free ports under .demo/preview, then draw every
# dashboard's panels from that Prometheus (dashboards/preview.py) into
# docs/images/dashboards/*.png, and stop the stack (by pid). About 4 minutes.
# PREVIEW_SECONDS (150): how long the load runs; PREVIEW_OUT (docs/images/dashboards).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
DIR=.demo/preview
OUT=${PREVIEW_OUT:-docs/images/dashboards}
SECONDS_OF_LOAD=${PREVIEW_SECONDS:-150}
rm -rf "$DIR"
mkdir -p "$DIR"
ports=($($BIN/python -c '
import socket
socks = [socket.socket() for _ in range(6)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))'))
start=$(date +%s)
DEMO_DIR="$DIR/demo" DEMO_PORT=${ports[0]} DEMO_PROMETHEUS_PORT=${ports[1]} DEMO_REDIS_PORT=${ports[2]} \
  DEMO_ALERTMANAGER_PORT=${ports[3]} DEMO_ALERT_SINK_PORT=${ports[4]} DEMO_METRICS_PORT=${ports[5]} \
  DEMO_SECONDS=$SECONDS_OF_LOAD DEMO_SATURATION_MAX=0 \
  bash scripts/demo.sh > "$DIR/demo.log" 2>&1 &
demo=$!
stop_demo() { kill -TERM "$demo" 2>/dev/null || true; wait "$demo" 2>/dev/null || true; }
trap stop_demo EXIT
echo "demo stack started (pid $demo, log $DIR/demo.log); load for ${SECONDS_OF_LOAD}s"
deadline=$((SECONDS + SECONDS_OF_LOAD + 180))
until grep -q "Load finished" "$DIR/demo.log"; do
  if ((SECONDS > deadline)) || ! kill -0 "$demo" 2>/dev/null; then
    echo "the demo did not finish its load; see $DIR/demo.log" >&2
    tail -20 "$DIR/demo.log" >&2
    exit 1
  fi
  sleep 2
done
sleep 10  # a last scrape and rule evaluation
$BIN/python dashboards/preview.py --prometheus "http://127.0.0.1:${ports[1]}" --start "$start" \
  --end "$(date +%s)" --namespace demo --scrape-interval 5 --out "$OUT"
