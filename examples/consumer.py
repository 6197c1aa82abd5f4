#!/usr/bin/env python3
"""Live order book and trade tape for one symbol, read from marketdata's Redis channels.

    python examples/consumer.py BTCUSDT                 # live, Ctrl-C to stop
    python examples/consumer.py BTCUSDT --once          # print one book and exit
    python examples/consumer.py BTCUSDT --redis-url redis://127.0.0.1:6379/0 --levels 15

Needs only `redis` and `orjson` (both installed with marketdata).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import deque
from datetime import UTC, datetime
from typing import Any

import orjson
import redis.asyncio as aioredis

CLEAR = "\x1b[H\x1b[2J"
GREEN, RED, RESET = "\x1b[32m", "\x1b[31m", "\x1b[0m"


def render_book(book: dict[str, Any], levels: int) -> str:
    asks = book["asks"][:levels]
    bids = book["bids"][:levels]
    lines = [
        f"{book['exchange']} {book['symbol']}  update {book['last_update_id']}  "
        f"exchange time {_clock(book['exchange_ts'])}",
        f"{'price':>16} {'qty':>14}",
    ]
    lines += [f"{RED}{p:>16} {q:>14}{RESET}" for p, q in reversed(asks)]
    lines.append("-" * 31)
    lines += [f"{GREEN}{p:>16} {q:>14}{RESET}" for p, q in bids]
    return "\n".join(lines)


def render_trade(trade: dict[str, Any]) -> str:
    color = GREEN if trade["side"] == "buy" else RED
    return (
        f"{_clock(trade['exchange_ts'])} {color}{trade['side']:<4} {trade['price']:>14} "
        f"x {trade['qty']:<12}{RESET} #{trade['trade_id']}"
    )


def _clock(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%H:%M:%S.%f")[:-3]


async def run(symbol: str, redis_url: str, levels: int, once: bool, timeout_s: float) -> int:
    client = aioredis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    book_channel, trade_channel = f"orderbook:{symbol}", f"trades:{symbol}"
    await pubsub.subscribe(book_channel, trade_channel)
    tape: deque[str] = deque(maxlen=15)
    book_text = "waiting for the first book..."
    waited = 0.0
    try:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
            if message is None:
                waited += 0.5
                if once and waited >= timeout_s:
                    print(f"no book on {book_channel} within {timeout_s:g}s", file=sys.stderr)
                    return 1
                continue
            data = orjson.loads(message["data"])
            if message["channel"].decode() == book_channel:
                book_text = render_book(data, levels)
                if once:
                    print(book_text.replace(GREEN, "").replace(RED, "").replace(RESET, ""))
                    return 0
            else:
                tape.appendleft(render_trade(data))
            if not once:
                print(CLEAR + book_text + "\n\ntrades\n" + "\n".join(tape), flush=True)
    finally:
        await pubsub.aclose()
        await client.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("symbol", nargs="?", default="BTCUSDT")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--levels", type=int, default=10)
    parser.add_argument("--once", action="store_true", help="print one book and exit")
    parser.add_argument("--timeout", type=float, default=15.0, help="with --once, give up after")
    args = parser.parse_args()
    try:
        return asyncio.run(
            run(args.symbol.upper(), args.redis_url, args.levels, args.once, args.timeout)
        )
    except KeyboardInterrupt:
        return 0
    except (OSError, aioredis.ConnectionError) as e:
        print(f"cannot read from Redis at {args.redis_url}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
