"""The venues `marketdata sim` serves, built from its command line.

--venues binance_futures,binance_spot,kraken,coinbase
--symbols BTCUSDT,ETHUSDT                 (no VENUE=: the futures venue)
--symbols kraken=BTC/USD,ETH/USD          (repeatable, one per venue)
--symbols okx=BTC-USDT,ETH-USDT
--symbols bybit=BTCUSDT,ETHUSDT
--replay binance_spot=spot.jsonl          (a capture instead of generated markets)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from marketdata.sim.app import PATHS, VENUES, AnySource
from marketdata.sim.bybit_market import BybitSource
from marketdata.sim.capture import load_capture
from marketdata.sim.coinbase_market import CoinbaseSource
from marketdata.sim.kraken_market import KrakenSource
from marketdata.sim.okx_market import OkxSource
from marketdata.sim.sources import COMMON_SYMBOLS, GeneratedSource, ReplaySource

DEFAULT_VENUE = "binance_futures"  # what a value without VENUE= is for


class VenueArgsError(ValueError):
    """A --venues, --symbols or --replay value that names no venue being served."""


def sources(
    venues: str,
    symbols: Sequence[str],
    replays: Sequence[str],
    rate: float,
    seed: int | None,
    speed: float = 1.0,
    okx_checksums: bool = True,
) -> dict[str, AnySource]:
    """venue -> its source. Generated sources start their markets on first use."""
    served = [v.strip() for v in venues.split(",") if v.strip()]
    unknown = [v for v in served if v not in VENUES]
    if unknown or not served:
        raise VenueArgsError(f"--venues: unknown {unknown or venues!r}; known: {', '.join(VENUES)}")
    listed = _per_venue("--symbols", symbols, served)
    captures = _per_venue("--replay", replays, served)
    for generated_only in ("kraken", "okx", "coinbase", "bybit"):
        if generated_only in captures:
            raise VenueArgsError(
                f"--replay: the {generated_only} venue serves generated markets only"
            )
    out: dict[str, AnySource] = {}
    for venue in served:
        names = [s.strip() for s in listed.get(venue, "").split(",") if s.strip()] or None
        if venue == "bybit":
            out[venue] = BybitSource(rate, seed, names)
        elif venue == "okx":
            out[venue] = OkxSource(rate, seed, names, checksums=okx_checksums)
        elif venue == "kraken":
            out[venue] = KrakenSource(rate, seed, names)
        elif venue == "coinbase":
            out[venue] = CoinbaseSource(rate, seed, names)
        elif venue in captures:
            out[venue] = ReplaySource(load_capture(captures[venue]), speed)
        else:
            spot = venue == "binance_spot"
            out[venue] = GeneratedSource(rate, seed, names or COMMON_SYMBOLS, consecutive_ids=spot)
    return out


def _per_venue(flag: str, values: Sequence[str], served: list[str]) -> dict[str, str]:
    out = {}
    for value in values:
        venue, _, rest = value.partition("=") if "=" in value else ("", "", value)
        venue = venue.strip() or DEFAULT_VENUE
        if venue not in served:
            raise VenueArgsError(f"{flag} {value!r}: venue {venue} is not in --venues")
        out[venue] = rest
    return out


def describe_venues(venues: Mapping[str, AnySource]) -> str:
    """One line: each venue with its paths and where its data comes from."""
    parts = []
    for venue, source in venues.items():
        if isinstance(source, GeneratedSource | KrakenSource | CoinbaseSource):
            what = f"generated, {source.rate:g} events/s per symbol"
        else:
            what = "replayed"
        parts.append(f"{venue} [{' '.join(PATHS[venue])}] ({what})")
    return "; ".join(parts)


async def close_sources(venues: Mapping[str, AnySource]) -> None:
    for source in venues.values():
        if isinstance(source, GeneratedSource | KrakenSource | CoinbaseSource):
            await source.close()
