#!/usr/bin/env bash
# The quick start: a local Redis (started here if none answers), the exchange simulator,
# and the service pointed at both. Ctrl-C stops what this script started.
set -euo pipefail
cd "$(dirname "$0")/.."

REDIS_PORT="${REDIS_PORT:-6379}"
SIM_PORT="${SIM_PORT:-8765}"
RUN_DIR=".run"
mkdir -p "$RUN_DIR"
pids=()
started_redis=""

cleanup() {
    trap - EXIT INT TERM
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ -n "$started_redis" ]; then
        redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT INT TERM

if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    echo "demo: using the Redis already answering on port $REDIS_PORT"
else
    echo "demo: starting redis-server on port $REDIS_PORT"
    # appendonly: the spool must survive a Redis crash (see README, Persistence)
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly yes \
        --dir "$RUN_DIR" --daemonize yes --logfile "$PWD/$RUN_DIR/redis.log" >/dev/null
    started_redis=1
    for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

echo "demo: starting the exchange simulator on port $SIM_PORT (log: $RUN_DIR/sim.log)"
.venv/bin/marketdata sim --port "$SIM_PORT" >"$RUN_DIR/sim.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$SIM_PORT") 2>/dev/null && break
    sleep 0.1
done

cat <<MSG
demo: starting marketdata. In another terminal:
    redis-cli -p $REDIS_PORT SUBSCRIBE orderbook:BTCUSDT
    redis-cli -p $REDIS_PORT GET market_data:BTCUSDT
    .venv/bin/python examples/consumer.py BTCUSDT
Ctrl-C stops the demo.
MSG
export MARKETDATA_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
export MARKETDATA_BINANCE_FUTURES_WS_URL="ws://127.0.0.1:$SIM_PORT"
export MARKETDATA_BINANCE_FUTURES_REST_URL="http://127.0.0.1:$SIM_PORT"
.venv/bin/marketdata run --config config.yaml &
pids+=($!)
wait "${pids[-1]}"
