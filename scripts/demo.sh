#!/usr/bin/env bash
# `make demo`: Redis (its own, if none answers), Gunicorn with 4 recycling workers, a local
# Prometheus scraping it with the project's alert rules, and the load generator.
# Ctrl-C stops the load generator at once, then everything this script started (by pid, the
# Redis it started included), and exits 0.
#
# Settings: DEMO_PORT (8000), DEMO_PROMETHEUS_PORT (9090), DEMO_REDIS_PORT (6379), DEMO_DIR
# (.demo), DEMO_SECONDS (120), DEMO_REQUESTS (20000).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
DEMO=${DEMO_DIR:-.demo}
PORT=${DEMO_PORT:-8000}
PROM_PORT=${DEMO_PROMETHEUS_PORT:-9090}
REDIS_PORT=${DEMO_REDIS_PORT:-6379}
mkdir -p "$DEMO"
DEMO=$(cd "$DEMO" && pwd)
pids=()

cleanup() {
  trap - EXIT INT TERM
  if ((${#pids[@]})); then
    echo "stopping what the demo started (pids ${pids[*]})"
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  fi
  rm -f "$DEMO/pids"
}
# Ctrl-C is how the demo is meant to end: clean up and report success.
trap 'cleanup; exit 0' INT TERM
trap cleanup EXIT

# The services run in sessions of their own (setsid): Ctrl-C reaches only this script and the
# load generator, which stop first; the services are then stopped gracefully by pid (a Gunicorn
# worker hit by the terminal's SIGINT would abort the request it is serving).
started() {  # remember a background process, for cleanup and for whoever watches $DEMO/pids
  pids+=("$1")
  echo "$1" >> "$DEMO/pids"
}
: > "$DEMO/pids"

if ! command -v redis-server >/dev/null || ! command -v prometheus >/dev/null; then
  scripts/ensure-services.sh --install-only   # Debian packages redis-server and prometheus
fi

if ! redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  echo "starting redis-server on 127.0.0.1:$REDIS_PORT (stopped with the demo)"
  setsid redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    > "$DEMO/redis.log" 2>&1 &
  started $!
  for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

export REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
export AURA_INSTANCE_PATH="$DEMO/instance" DATABASE_URL="sqlite:///$DEMO/demo.db"
export GUNICORN_BIND="127.0.0.1:$PORT" WEB_CONCURRENCY=4 GUNICORN_MAX_REQUESTS=300 GUNICORN_MAX_REQUESTS_JITTER=100
export PROMETHEUS_MULTIPROC_DIR="$DEMO/metrics" GUNICORN_ACCESS_LOG="" GUNICORN_CONTROL_SOCKET="$DEMO/gunicorn.ctl"
export ACCESS_TOKEN_EXPIRES=5 RATE_LIMIT_LOGIN_ACCOUNT="20 per hour" RATE_LIMIT_LOGIN="100000 per hour"
export RATE_LIMIT_DEFAULT="100000 per hour" RATE_LIMIT_WORKFLOWS="100000 per hour" RATE_LIMIT_REGISTER="100000 per hour"
$BIN/flask --app wsgi db upgrade
setsid $BIN/gunicorn -c gunicorn.conf.py wsgi:app > "$DEMO/gunicorn.log" 2>&1 &
started $!

cat > "$DEMO/prometheus.yml" <<YAML
global: {scrape_interval: 5s, evaluation_interval: 5s}
rule_files: ["$PWD/k8s/monitoring/prometheus/alert-rules.yml"]
scrape_configs:
  - job_name: aura
    static_configs: [{targets: ["127.0.0.1:$PORT"]}]
YAML
setsid prometheus --config.file="$DEMO/prometheus.yml" --storage.tsdb.path="$DEMO/prometheus-data" \
  --web.listen-address="127.0.0.1:$PROM_PORT" > "$DEMO/prometheus.log" 2>&1 &
started $!

for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done
INACTIVE="inactive-$$@loadgen.example"
curl -fs -XPOST "http://127.0.0.1:$PORT/api/v1/auth/register" -H 'Content-Type: application/json' \
  -d "{\"email\":\"$INACTIVE\",\"password\":\"loadgen-password-1\"}" >/dev/null || true
$BIN/flask --app wsgi user deactivate "$INACTIVE" >/dev/null

cat <<TXT

Aura demo running:
  API         http://127.0.0.1:$PORT/api/v1/openapi.json  (browse it at /api/v1/docs)
  /metrics    http://127.0.0.1:$PORT/metrics
  Prometheus  http://127.0.0.1:$PROM_PORT  (Alerts tab: the project's rules; Graph: any query in docs/metrics.md)
  Logs        $DEMO/gunicorn.log, $DEMO/prometheus.log
Driving load for ${DEMO_SECONDS:-120}s; Ctrl-C stops everything.

TXT
# In the background + wait, so that a signal reaches the trap at once (bash runs traps only
# between commands, and `wait` is interrupted by a trapped signal; a foreground child is not).
$BIN/python scripts/loadgen.py --url "http://127.0.0.1:$PORT" --seconds "${DEMO_SECONDS:-120}" \
  --requests "${DEMO_REQUESTS:-20000}" --burst 5000 --burst-threads 2 --inactive-email "$INACTIVE" --token-ttl 5 &
loadgen=$!
echo "$loadgen" >> "$DEMO/pids"
pids=("$loadgen" "${pids[@]}")  # stopped first: no request is sent to a stopping server
wait "$loadgen" || true
pids=("${pids[@]:1}")
echo "Load finished; Aura and Prometheus keep running until Ctrl-C."
wait "${pids[@]}"
