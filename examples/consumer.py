#!/usr/bin/env python3
"""Live order book and trade tape for one symbol, read from marketdata's Redis channels.

    python examples/consumer.py BTCUSDT                 # live, Ctrl-C to stop
    python examples/consumer.py BTCUSDT --once          # print one book and exit
    python examples/consumer.py BTCUSDT --redis-url redis://127.0.0.1:6379/0 --levels 15
    python examples/consumer.py XBT/USD --exchange kraken    # channels orderbook:kraken:XBT/USD

Needs only `redis` and `orjson` (both installed with marketdata).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import deque
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import redis.asyncio as aioredis

CLEAR = "\x1b[H\x1b[2J" if sys.stdout.isatty() else "\n"
# Colours and screen clearing only on a terminal; plain text into a file or a pipe.
GREEN, RED, RESET = ("\x1b[32m", "\x1b[31m", "\x1b[0m") if sys.stdout.isatty() else ("", "", "")
DEFAULT_EXCHANGE = "binance_futures"  # its channels carry no exchange prefix


def channels(exchange: str, symbol: str) -> tuple[str, str]:
    """(orderbook channel, trades channel) as the service names them."""
    prefix = "" if exchange == DEFAULT_EXCHANGE else f"{exchange}:"
    return f"orderbook:{prefix}{symbol}", f"trades:{prefix}{symbol}"


def spread_and_mid(book: dict[str, Any]) -> str:
    """Exact decimals from the top of the book, as the exchange wrote the prices."""
    if not book["bids"] or not book["asks"]:
        return "spread -  mid -"
    bid, ask = Decimal(book["bids"][0][0]), Decimal(book["asks"][0][0])
    return f"spread {ask - bid}  mid {(ask + bid) / 2}"


def render_book(book: dict[str, Any], levels: int) -> str:
    asks = book["asks"][:levels]
    bids = book["bids"][:levels]
    lines = [
        f"{book['exchange']} {book['symbol']}  update {book['last_update_id']}  "
        f"exchange time {_clock(book['exchange_ts'])}  {spread_and_mid(book)}",
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


async def run(
    exchange: str, symbol: str, redis_url: str, levels: int, once: bool, timeout_s: float
) -> int:
    client = aioredis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    book_channel, trade_channel = channels(exchange, symbol)
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
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("symbol", nargs="?", default="BTCUSDT", help="as configured")
    parser.add_argument(
        "--exchange", default=DEFAULT_EXCHANGE, help="the venue, as named in the config"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0", help="Redis to read")
    parser.add_argument("--levels", type=int, default=10, help="book levels shown per side")
    parser.add_argument("--once", action="store_true", help="print one book and exit")
    parser.add_argument(
        "--timeout", type=float, default=15.0, help="with --once, give up after this many s"
    )
    args = parser.parse_args()
    symbol = args.symbol if args.exchange != DEFAULT_EXCHANGE else args.symbol.upper()
    try:
        return asyncio.run(
            run(args.exchange, symbol, args.redis_url, args.levels, args.once, args.timeout)
        )
    except KeyboardInterrupt:
        return 0
    except (OSError, aioredis.ConnectionError) as e:
        print(f"cannot read from Redis at {args.redis_url}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
