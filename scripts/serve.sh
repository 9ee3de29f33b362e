#!/usr/bin/env bash
# Serve the API and the drawing dashboard until Ctrl-C: `make run` calls this after the pipeline.
#   usage: scripts/serve.sh HOST API_PORT DASHBOARD_PORT
# The API (uvicorn, serving.main:create_app) starts first and is waited for on /healthz; then
# Voilà serves notebooks/dashboard.ipynb. Ctrl-C (or TERM) stops both, kernels included.
set -euo pipefail

HOST="${1:-127.0.0.1}"
API_PORT="${2:-8000}"
DASHBOARD_PORT="${3:-8866}"
cd "$(dirname "$0")/.."
BIN=.venv/bin
# Idle dashboard kernels (one per page load, ~70 MB each) are reclaimed after 10 minutes.
CULL_INTERVAL=60
CULL_IDLE_TIMEOUT=600
HEALTH_TIMEOUT_S=60

export JUPYTER_DATA_DIR="${JUPYTER_DATA_DIR:-$PWD/.jupyter-data}"
export IPYTHONDIR="${IPYTHONDIR:-$PWD/.config/ipython}"
export MPLCONFIGDIR="${MPLCONFIGDIR:-$PWD/.cache/matplotlib}"

api_pid=""
voila_pid=""

stop_all() {
    trap - INT TERM EXIT
    echo
    echo "Stopping..."
    # Each server runs in its own process group (setsid), so its workers and kernels go too.
    for pid in "$voila_pid" "$api_pid"; do
        [[ -n "$pid" ]] && kill -TERM -- "-$pid" 2>/dev/null || true
    done
    for pid in "$voila_pid" "$api_pid"; do
        [[ -n "$pid" ]] && wait "$pid" 2>/dev/null || true
    done
    echo "Stopped."
}
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM
trap 'stop_all' EXIT

port_free() {
    ! (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

for port in "$API_PORT" "$DASHBOARD_PORT"; do
    if ! port_free "$HOST" "$port"; then
        echo "Port $HOST:$port is already in use; pass other ports: make run API_PORT=... DASHBOARD_PORT=..." >&2
        exit 1
    fi
done

if grep -q "^def create_app" serving/main.py 2>/dev/null; then
    setsid "$BIN/uvicorn" serving.main:create_app --factory --host "$HOST" --port "$API_PORT" &
    api_pid=$!
    printf "Waiting for the API on http://%s:%s/healthz " "$HOST" "$API_PORT"
    deadline=$((SECONDS + HEALTH_TIMEOUT_S))
    until "$BIN/python" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" \
            "http://$HOST:$API_PORT/healthz" 2>/dev/null; do
        if ! kill -0 "$api_pid" 2>/dev/null; then
            echo; echo "The API exited during start-up (see its log above)." >&2; exit 1
        fi
        if ((SECONDS > deadline)); then
            echo; echo "The API did not answer /healthz within ${HEALTH_TIMEOUT_S} s." >&2; exit 1
        fi
        printf "."; sleep 0.5
    done
    echo " up."
else
    echo "serving/main.py has no create_app yet: starting the dashboard only." >&2
fi

setsid "$BIN/voila" notebooks/dashboard.ipynb --no-browser --port="$DASHBOARD_PORT" --Voila.ip="$HOST" --Voila.port_retries=0 --MappingKernelManager.cull_interval="$CULL_INTERVAL" --MappingKernelManager.cull_idle_timeout="$CULL_IDLE_TIMEOUT" --VoilaConfiguration.show_tracebacks=True --Voila.root_dir="$PWD" &
voila_pid=$!
deadline=$((SECONDS + HEALTH_TIMEOUT_S))
until ! port_free "$HOST" "$DASHBOARD_PORT"; do
    if ! kill -0 "$voila_pid" 2>/dev/null; then
        echo "Voilà exited during start-up (see its log above)." >&2; exit 1
    fi
    if ((SECONDS > deadline)); then
        echo "Voilà did not listen on $HOST:$DASHBOARD_PORT within ${HEALTH_TIMEOUT_S} s." >&2; exit 1
    fi
    sleep 0.5
done

cat <<EOF

  Dashboard (draw a digit):  http://$HOST:$DASHBOARD_PORT/
EOF
if [[ -n "$api_pid" ]]; then
cat <<EOF
  API docs:                  http://$HOST:$API_PORT/docs
  API health / metrics:      http://$HOST:$API_PORT/healthz   http://$HOST:$API_PORT/metrics
EOF
fi
cat <<EOF

  Press Ctrl-C to stop.

EOF

# Return when either server stops on its own (then the EXIT trap stops the other).
wait -n
echo "A server stopped; shutting down the rest." >&2
