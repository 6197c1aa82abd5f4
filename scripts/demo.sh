#!/usr/bin/env bash
# The quick start, the whole product on one machine: a local Redis and PostgreSQL (each
# started here unless one already answers on its port), the exchange simulator, the
# service, and `marketdata persist` draining the spool into PostgreSQL.
# Ctrl-C stops what this script started, and nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."

REDIS_PORT="${REDIS_PORT:-6379}"
SIM_PORT="${SIM_PORT:-8765}"
PG_PORT="${PG_PORT:-55432}"
RUN_DIR="$PWD/.run"
PG_DIR="$RUN_DIR/pg"
mkdir -p "$RUN_DIR"
pids=()
started_redis=""
started_pg=""

pg_bin() {
    local dir
    dir="$(pg_config --bindir 2>/dev/null || true)"
    if [ -z "$dir" ] || [ ! -x "$dir/postgres" ]; then
        dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    fi
    echo "$dir"
}
PG_BIN="$(pg_bin)"
as_pg=()
if [ "$(id -u)" -eq 0 ]; then as_pg=(runuser -u postgres --); fi  # postgres refuses root

cleanup() {
    trap - EXIT INT TERM
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ -n "$started_pg" ]; then
        "${as_pg[@]}" "$PG_BIN/pg_ctl" stop -D "$PG_DIR" -m fast -w >/dev/null 2>&1 || true
    fi
    if [ -n "$started_redis" ]; then
        redis-cli -p "$REDIS_PORT" shutdown >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT INT TERM

wait_for() {  # wait_for WHAT COMMAND...: up to 10 s
    for _ in $(seq 100); do "${@:2}" >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "demo: $1 did not start" >&2
    exit 1
}

if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    echo "demo: using the Redis already answering on port $REDIS_PORT"
else
    echo "demo: starting redis-server on port $REDIS_PORT (append-only file in $RUN_DIR)"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly yes \
        --dir "$RUN_DIR" --daemonize yes --logfile "$RUN_DIR/redis.log" >/dev/null
    started_redis=1
    wait_for redis-server redis-cli -p "$REDIS_PORT" ping
fi

if "$PG_BIN/pg_isready" -h 127.0.0.1 -p "$PG_PORT" -q 2>/dev/null; then
    echo "demo: using the PostgreSQL already answering on port $PG_PORT"
else
    if [ ! -f "$PG_DIR/PG_VERSION" ]; then
        echo "demo: creating a PostgreSQL cluster in $PG_DIR (trust auth, loopback only)"
        mkdir -p "$PG_DIR"
        if [ "$(id -u)" -eq 0 ]; then chown postgres: "$PG_DIR"; fi
        "${as_pg[@]}" "$PG_BIN/initdb" -D "$PG_DIR" -A trust -U marketdata -E UTF8 \
            --no-sync >"$RUN_DIR/initdb.log" 2>&1
    fi
    echo "demo: starting PostgreSQL on port $PG_PORT (log: .run/postgres.log)"
    touch "$RUN_DIR/postgres.log"
    if [ "$(id -u)" -eq 0 ]; then chown postgres: "$RUN_DIR/postgres.log"; fi
    "${as_pg[@]}" "$PG_BIN/pg_ctl" start -D "$PG_DIR" -l "$RUN_DIR/postgres.log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR" >/dev/null
    started_pg=1
    "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U marketdata -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = 'marketdata'" | grep -q 1 \
        || "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U marketdata marketdata
fi

echo "demo: starting the exchange simulator on port $SIM_PORT (log: .run/sim.log)"
.venv/bin/marketdata sim --port "$SIM_PORT" \
    --venues binance_futures,binance_spot,kraken,okx,bybit,coinbase \
    >"$RUN_DIR/sim.log" 2>&1 &
pids+=($!)
wait_for simulator bash -c "exec 3<>/dev/tcp/127.0.0.1/$SIM_PORT"

export MARKETDATA_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
export MARKETDATA_BINANCE_FUTURES_WS_URL="ws://127.0.0.1:$SIM_PORT"
export MARKETDATA_BINANCE_FUTURES_REST_URL="http://127.0.0.1:$SIM_PORT"
export MARKETDATA_BINANCE_SPOT_WS_URL="ws://127.0.0.1:$SIM_PORT"
export MARKETDATA_BINANCE_SPOT_REST_URL="http://127.0.0.1:$SIM_PORT"
export MARKETDATA_KRAKEN_WS_URL="ws://127.0.0.1:$SIM_PORT/kraken/v2"
export MARKETDATA_OKX_WS_URL="ws://127.0.0.1:$SIM_PORT/okx/ws/v5/public"
export MARKETDATA_OKX_REST_URL="http://127.0.0.1:$SIM_PORT"
export MARKETDATA_BYBIT_WS_URL="ws://127.0.0.1:$SIM_PORT/bybit/v5/public/linear"
export MARKETDATA_COINBASE_WS_URL="ws://127.0.0.1:$SIM_PORT/coinbase"
export MARKETDATA_TIMESCALE_DSN="postgresql://marketdata@127.0.0.1:$PG_PORT/marketdata"

echo "demo: starting marketdata persist (log: .run/persist.log)"
.venv/bin/marketdata persist --config config.yaml >"$RUN_DIR/persist.log" 2>&1 &
pids+=($!)
# Its consumer groups first: the service checks at start that something drains the spool.
wait_for "marketdata persist" bash -c \
    "redis-cli -p $REDIS_PORT XINFO GROUPS spool:trades 2>/dev/null | grep -q timescale"

cat <<MSG
demo: starting marketdata. In another terminal:
    redis-cli -p $REDIS_PORT SUBSCRIBE orderbook:BTCUSDT        # Binance USD-M futures
    redis-cli -p $REDIS_PORT SUBSCRIBE 'orderbook:kraken:BTC/USD' # Kraken; also binance_spot,
                                          # okx (BTC-USDT), bybit (BTCUSDT), coinbase (BTC-USD)
    redis-cli -p $REDIS_PORT GET market_data:BTCUSDT
    .venv/bin/python examples/consumer.py BTCUSDT
    psql -h 127.0.0.1 -p $PG_PORT -U marketdata marketdata \\
        -c 'SELECT symbol, count(*), max(time) FROM trades GROUP BY symbol'
    curl -s localhost:9090/ready; curl -s localhost:9091/health
Ctrl-C stops the demo.
MSG
.venv/bin/marketdata run --config config.yaml &
pids+=($!)
wait "${pids[-1]}"
