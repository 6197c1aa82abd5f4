"""Static placement: which (venue, symbol) pairs shard K of N serves.

A pair belongs to shard `h("venue:SYMBOL") % N`, h being the first 8 bytes of BLAKE2b (not
Python's hash(), which changes per process): every process computes the same answer
from the pair alone, so the shards are disjoint, cover every pair, and adding or removing a
symbol never moves any other symbol to another shard (N staying the same). CRC-32 balances
real names as well, but being linear it splits series like SYM0..SYM299 unevenly (8 shards:
24..62 of 300 symbols; BLAKE2b: 24..48, the spread of random placement). No placement that
stays stable under additions does better than random: expect about mean +- 2*sqrt(mean).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from marketdata.config import Config

_SHARD = re.compile(r"^(\d+)/(\d+)$")


@dataclass(frozen=True)
class Shard:
    index: int  # K, 0-based
    count: int  # N

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, exchange: str, symbol: str) -> bool:
        return shard_of(exchange, symbol, self.count) == self.index


def parse_shard(text: str) -> Shard:
    """`K/N` with 0 <= K < N; ValueError says what is wrong."""
    match = _SHARD.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not K/N (e.g. 0/2)")
    index, count = int(match[1]), int(match[2])
    if count < 1:
        raise ValueError(f"{text!r}: N must be at least 1")
    if index >= count:
        raise ValueError(f"{text!r}: K must be in 0..{count - 1}")
    return Shard(index, count)


def shard_of(exchange: str, symbol: str, count: int) -> int:
    digest = hashlib.blake2b(f"{exchange}:{symbol}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


def shard_config(config: Config, shard: Shard) -> Config:
    """The config with only this shard's symbols; venues left with none are removed."""
    exchanges = {}
    for name, exchange in config.exchanges.items():
        symbols = tuple(s for s in exchange.symbols if shard.owns(name, s))
        if symbols:
            exchanges[name] = dataclasses.replace(exchange, symbols=symbols)
    return dataclasses.replace(config, exchanges=exchanges)


def pairs(config: Config) -> list[tuple[str, str]]:
    return [(name, s) for name, exchange in config.exchanges.items() for s in exchange.symbols]


def spread(keys: Iterable[tuple[str, str]], count: int) -> list[int]:
    """How many pairs each of `count` shards gets."""
    sizes = [0] * count
    for exchange, symbol in keys:
        sizes[shard_of(exchange, symbol, count)] += 1
    return sizes


def describe_shard(config: Config, shard: Shard) -> str:
    """One log line: what this shard serves."""
    mine = pairs(config)
    if not mine:
        return (f"shard {shard}: no configured symbol falls in this shard; serving "
                "/health and /ready (Redis) only")  # fmt: skip
    listed = ", ".join(f"{e}:{s}" for e, s in mine)
    return f"shard {shard}: {len(mine)} symbol(s): {listed}"
