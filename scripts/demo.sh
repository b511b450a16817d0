#!/usr/bin/env bash
# `make demo`: Redis (if not running), Gunicorn with 4 recycling workers, a local Prometheus
# scraping it with the project's alert rules, and the load generator. Ctrl-C stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
DEMO=.demo
PORT=${DEMO_PORT:-8000}
PROM_PORT=${DEMO_PROMETHEUS_PORT:-9090}
mkdir -p "$DEMO"
pids=()

cleanup() {
  trap - EXIT INT TERM
  echo; echo "stopping: ${pids[*]:-nothing}"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

scripts/ensure-services.sh   # installs redis-server and prometheus if missing, starts Redis

export AURA_INSTANCE_PATH="$PWD/$DEMO/instance" DATABASE_URL="sqlite:///$PWD/$DEMO/demo.db"
export GUNICORN_BIND="127.0.0.1:$PORT" WEB_CONCURRENCY=4 GUNICORN_MAX_REQUESTS=300 GUNICORN_MAX_REQUESTS_JITTER=100
export PROMETHEUS_MULTIPROC_DIR="$PWD/$DEMO/metrics" GUNICORN_ACCESS_LOG=""
export ACCESS_TOKEN_EXPIRES=5 RATE_LIMIT_LOGIN_ACCOUNT="20 per hour" RATE_LIMIT_LOGIN="100000 per hour"
export RATE_LIMIT_DEFAULT="100000 per hour" RATE_LIMIT_WORKFLOWS="100000 per hour" RATE_LIMIT_REGISTER="100000 per hour"
$BIN/flask --app wsgi db upgrade
$BIN/gunicorn -c gunicorn.conf.py wsgi:app > "$DEMO/gunicorn.log" 2>&1 &
pids+=($!)

cat > "$DEMO/prometheus.yml" <<YAML
global: {scrape_interval: 5s, evaluation_interval: 5s}
rule_files: ["$PWD/k8s/monitoring/prometheus/alert-rules.yml"]
scrape_configs:
  - job_name: aura
    static_configs: [{targets: ["127.0.0.1:$PORT"]}]
YAML
prometheus --config.file="$DEMO/prometheus.yml" --storage.tsdb.path="$DEMO/prometheus-data" \
  --web.listen-address="127.0.0.1:$PROM_PORT" > "$DEMO/prometheus.log" 2>&1 &
pids+=($!)

for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done
INACTIVE="inactive-$$@loadgen.example"
curl -fs -XPOST "http://127.0.0.1:$PORT/api/v1/auth/register" -H 'Content-Type: application/json' \
  -d "{\"email\":\"$INACTIVE\",\"password\":\"loadgen-password-1\"}" >/dev/null || true
$BIN/flask --app wsgi user deactivate "$INACTIVE" >/dev/null

cat <<TXT

Aura demo running:
  API         http://127.0.0.1:$PORT/api/v1/openapi.json
  /metrics    http://127.0.0.1:$PORT/metrics
  Prometheus  http://127.0.0.1:$PROM_PORT  (Alerts tab: the project's rules; Graph: any query in docs/metrics.md)
  Logs        $DEMO/gunicorn.log, $DEMO/prometheus.log
Driving load for ${DEMO_SECONDS:-120}s; Ctrl-C stops everything.

TXT
$BIN/python scripts/loadgen.py --url "http://127.0.0.1:$PORT" --seconds "${DEMO_SECONDS:-120}" \
  --requests "${DEMO_REQUESTS:-20000}" --burst 5000 --burst-threads 2 --inactive-email "$INACTIVE" --token-ttl 5
echo "Load finished; Aura and Prometheus keep running until Ctrl-C."
wait "${pids[0]}"
