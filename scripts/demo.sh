#!/usr/bin/env bash
# `make demo`: its own Redis, Gunicorn with 4 recycling workers, a local Prometheus scraping it
# with the project's rules in their demo override (dashboards/demo-rules.yml: the same alerts
# on short windows and `for:`), Alertmanager with the project's routing and a local receiver
# (scripts/alert_sink.py) in place of the pager and ticket system, and the load generator.
# Midway the demo stops its Redis for DEMO_OUTAGE_SECONDS: token checks fail closed (503), the
# availability SLO burns, and its fast-burn page fires, then resolves when Redis is back.
# Ctrl-C stops the load generator at once, then everything this script started (by pid), and
# exits 0.
#
# Settings: DEMO_PORT (8000), DEMO_PROMETHEUS_PORT (9090), DEMO_ALERTMANAGER_PORT (9093),
# DEMO_ALERT_SINK_PORT (9094), DEMO_REDIS_PORT (6390), DEMO_DIR (.demo), DEMO_SECONDS (120),
# DEMO_REQUESTS (20000), DEMO_OUTAGE_AFTER (30, seconds into the load), DEMO_OUTAGE_SECONDS (50;
# 0: no outage).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
DEMO=${DEMO_DIR:-.demo}
PORT=${DEMO_PORT:-8000}
PROM_PORT=${DEMO_PROMETHEUS_PORT:-9090}
REDIS_PORT=${DEMO_REDIS_PORT:-6390}
AM_PORT=${DEMO_ALERTMANAGER_PORT:-9093}
SINK_PORT=${DEMO_ALERT_SINK_PORT:-9094}
OUTAGE_AFTER=${DEMO_OUTAGE_AFTER:-30}
OUTAGE_SECONDS=${DEMO_OUTAGE_SECONDS:-50}
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

if ! command -v redis-server >/dev/null || ! command -v prometheus >/dev/null \
    || ! command -v prometheus-alertmanager >/dev/null; then
  scripts/ensure-services.sh --install-only   # Debian: redis-server, prometheus, prometheus-alertmanager
fi

# Always its own Redis, never a shared one: the demo stops it midway to show an outage.
if redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  echo "something already answers on 127.0.0.1:$REDIS_PORT; the demo needs its own Redis there" \
       "(it stops it midway): set DEMO_REDIS_PORT" >&2
  exit 1
fi
start_redis() {
  setsid redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    >> "$DEMO/redis.log" 2>&1 &
  redis_pid=$!
  started "$redis_pid"
  for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
}
echo "starting redis-server on 127.0.0.1:$REDIS_PORT (stopped with the demo)"
start_redis

export REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
export AURA_INSTANCE_PATH="$DEMO/instance" DATABASE_URL="sqlite:///$DEMO/demo.db"
export GUNICORN_BIND="127.0.0.1:$PORT" WEB_CONCURRENCY=4 GUNICORN_MAX_REQUESTS=300 GUNICORN_MAX_REQUESTS_JITTER=100
export PROMETHEUS_MULTIPROC_DIR="$DEMO/metrics" GUNICORN_ACCESS_LOG="" GUNICORN_CONTROL_SOCKET="$DEMO/gunicorn.ctl"
# REDIS_SOCKET_TIMEOUT: during the outage, requests fail fast (503) rather than hang.
export ACCESS_TOKEN_EXPIRES=5 RATE_LIMIT_LOGIN_ACCOUNT="20 per hour" RATE_LIMIT_LOGIN="100000 per hour" REDIS_SOCKET_TIMEOUT=1
# loadgen stamps X-Request-Start as a proxy would: trust one proxy so Queue Time has data.
export TRUSTED_PROXY_COUNT=1
export RATE_LIMIT_DEFAULT="100000 per hour" RATE_LIMIT_WORKFLOWS="100000 per hour" RATE_LIMIT_REGISTER="100000 per hour"
$BIN/flask --app wsgi db upgrade
setsid $BIN/gunicorn -c gunicorn.conf.py wsgi:app > "$DEMO/gunicorn.log" 2>&1 &
started $!

# Alertmanager: the project's configuration (routes, grouping, inhibition) with its two webhook
# receivers pointed at the local sink, and shorter waits so notifications follow in seconds.
sed -e "s#http://alert-relay.monitoring.svc:8080#http://127.0.0.1:$SINK_PORT#" \
    -e "s#group_wait: .*#group_wait: 5s#" -e "s#group_interval: .*#group_interval: 10s#" \
    k8s/monitoring/alertmanager/alertmanager.yml > "$DEMO/alertmanager.yml"
setsid $BIN/python scripts/alert_sink.py --port "$SINK_PORT" --log "$DEMO/notifications.log" \
  > /dev/null 2>&1 &
started $!
setsid prometheus-alertmanager --config.file="$DEMO/alertmanager.yml" --storage.path="$DEMO/alertmanager-data" \
  --web.listen-address="127.0.0.1:$AM_PORT" --cluster.listen-address= > "$DEMO/alertmanager.log" 2>&1 &
started $!

# The labels Kubernetes discovery would add: the rules and dashboards select by them.
cat > "$DEMO/prometheus.yml" <<YAML
global: {scrape_interval: 5s, evaluation_interval: 5s}
rule_files: ["$PWD/dashboards/demo-rules.yml"]
alerting:
  alertmanagers: [{static_configs: [{targets: ["127.0.0.1:$AM_PORT"]}]}]
scrape_configs:
  - job_name: aura
    static_configs: [{targets: ["127.0.0.1:$PORT"], labels: {namespace: demo, pod: demo-0}}]
YAML
setsid prometheus --config.file="$DEMO/prometheus.yml" --storage.tsdb.path="$DEMO/prometheus-data" \
  --web.listen-address="127.0.0.1:$PROM_PORT" > "$DEMO/prometheus.log" 2>&1 &
started $!

for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done
INACTIVE="inactive-$$@loadgen.example"
curl -fs -XPOST "http://127.0.0.1:$PORT/api/v1/auth/register" -H 'Content-Type: application/json' \
  -d "{\"email\":\"$INACTIVE\",\"password\":\"loadgen-password-1\"}" >/dev/null || true
$BIN/flask --app wsgi user deactivate "$INACTIVE" >/dev/null

if ((OUTAGE_SECONDS > 0)); then
  outage="At ${OUTAGE_AFTER}s the demo stops its Redis for ${OUTAGE_SECONDS}s: authenticated requests
answer 503, and AuraAvailabilitySLOFastBurn (critical: page) fires about 30s later; its slow
burn (ticket) fires too and is inhibited by the page. Both resolve once Redis is back."
else
  outage="DEMO_OUTAGE_SECONDS=0: no Redis outage, so no SLO alert will fire."
fi
cat <<TXT

Aura demo running:
  API           http://127.0.0.1:$PORT/api/v1/openapi.json  (browse it at /api/v1/docs)
  /metrics      http://127.0.0.1:$PORT/metrics
  Prometheus    http://127.0.0.1:$PROM_PORT/alerts  (pending and firing; Graph: any query in docs/metrics.md)
  Alertmanager  http://127.0.0.1:$AM_PORT/#/alerts  (grouped by namespace and alert, inhibited ones under "Inhibited")
  Notifications $DEMO/notifications.log  (what the pager and ticket receivers got)
  Logs          $DEMO/gunicorn.log, $DEMO/prometheus.log, $DEMO/alertmanager.log

ALERTS FIRE IN THIS DEMO: it loads dashboards/demo-rules.yml, the project's rules with every
\`for:\` at 10s and the SLO burn-rate windows shortened (1h->2m, 5m->20s, ...; production uses
alert-rules.yml and slo-rules.yml, where nothing fires this fast). Within the first minute the
spec's HighAuthenticationFailureRate fires (the bad logins), RateLimitHitsHigh too when the
login burst is rejected more than 10 times a second.
$outage
Driving load for ${DEMO_SECONDS:-120}s; Ctrl-C stops everything.

TXT
# In the background + wait, so that a signal reaches the trap at once (bash runs traps only
# between commands, and `wait` is interrupted by a trapped signal; a foreground child is not).
$BIN/python scripts/loadgen.py --url "http://127.0.0.1:$PORT" --seconds "${DEMO_SECONDS:-120}" \
  --requests "${DEMO_REQUESTS:-20000}" --burst 5000 --burst-threads 2 --inactive-email "$INACTIVE" --token-ttl 5 &
loadgen=$!
echo "$loadgen" >> "$DEMO/pids"
pids=("$loadgen" "${pids[@]}")  # stopped first: no request is sent to a stopping server

# The outage: stop Redis after OUTAGE_AFTER seconds, start it again OUTAGE_SECONDS later. Each
# sleep runs in the background and is waited for, so Ctrl-C still reaches the trap at once.
pause() {  # pause SECONDS: false as soon as the load generator has finished
  local i
  for ((i = 0; i < $1; i++)); do
    kill -0 "$loadgen" 2>/dev/null || return 1
    sleep 1 & wait $!
  done
}
if ((OUTAGE_SECONDS > 0)) && pause "$OUTAGE_AFTER"; then
  echo; echo ">>> $(date +%T) stopping Redis for ${OUTAGE_SECONDS}s: watch http://127.0.0.1:$PROM_PORT/alerts"
  kill -TERM "$redis_pid" 2>/dev/null || true
  wait "$redis_pid" 2>/dev/null || true
  pause "$OUTAGE_SECONDS" || true
  echo; echo ">>> $(date +%T) Redis back: the SLO alerts resolve within a few minutes"
  start_redis
fi
wait "$loadgen" || true
pids=("${pids[@]:1}")
echo "Load finished; Aura, Prometheus and Alertmanager keep running until Ctrl-C."
wait "${pids[@]}"
