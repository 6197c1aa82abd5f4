"""One simulator serving several venues, the spot dialect's faults, and the CLI's venues."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

import aiohttp
import orjson
import pytest
from aiohttp import web

from marketdata.events import DepthDiff
from marketdata.sim.app import VenueError, create_sim_app
from marketdata.sim.bybit_market import BybitSource
from marketdata.sim.coinbase_market import CoinbaseSource
from marketdata.sim.kraken_market import KrakenSource
from marketdata.sim.okx_market import OkxSource
from marketdata.sim.scenarios import Scenario
from marketdata.sim.sources import GeneratedSource, Source
from marketdata.sim.venues import VenueArgsError, describe_venues, sources
from marketdata.venues.binance import BinanceSpot
from tests.helpers import free_port

Serve = Callable[..., Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Serves create_sim_app(venues, scenario) on a free port; its base URL (http)."""
    runners: list[web.AppRunner] = []
    started: list[Mapping[str, Source | KrakenSource | CoinbaseSource]] = []

    async def start(
        venues: Mapping[str, Source | KrakenSource | CoinbaseSource],
        scenario: Scenario | None = None,
    ) -> str:
        runner = web.AppRunner(create_sim_app(venues, scenario), access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        started.append(venues)
        return f"127.0.0.1:{port}"

    yield start
    for venues in started:
        for source in venues.values():
            if isinstance(source, GeneratedSource | KrakenSource | CoinbaseSource):
                await source.close()
    for runner in runners:
        await runner.cleanup()


async def test_one_app_serves_every_venue_in_its_own_dialect(serve):
    host = await serve({
        "binance_futures": GeneratedSource(50.0, 1, ["BTCUSDT"]),
        "binance_spot": GeneratedSource(50.0, 1, ["ETHUSDT"], consecutive_ids=True),
        "kraken": KrakenSource(50.0, 1, ["BTC/USD"]),
    })  # fmt: skip
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://{host}/fapi/v1/exchangeInfo") as r:
            futures = await r.json()
        async with session.get(f"http://{host}/api/v3/exchangeInfo") as r:
            spot = await r.json()
        assert [s["symbol"] for s in futures["symbols"]] == ["BTCUSDT"]
        assert futures["symbols"][0]["contractType"] == "PERPETUAL"
        assert spot["symbols"] == [{"symbol": "ETHUSDT", "status": "TRADING"}]
        async with session.ws_connect(f"ws://{host}/public/stream?streams=btcusdt@depth") as ws:
            data = orjson.loads((await ws.receive(timeout=5)).data)["data"]
            assert (data["e"], data["s"], "pu" in data) == ("depthUpdate", "BTCUSDT", True)
        async with session.ws_connect(f"ws://{host}/stream?streams=ethusdt@depth") as ws:
            data = orjson.loads((await ws.receive(timeout=5)).data)["data"]
            assert (data["e"], data["s"], "pu" in data) == ("depthUpdate", "ETHUSDT", False)
        async with session.ws_connect(f"ws://{host}/kraken/v2") as ws:
            status = orjson.loads((await ws.receive(timeout=5)).data)
            assert (status["channel"], status["data"][0]["api_version"]) == ("status", "v2")


def test_a_venue_needs_a_source_of_its_kind():
    with pytest.raises(VenueError, match="kraken needs a KrakenSource"):
        create_sim_app({"kraken": GeneratedSource(1.0)})
    with pytest.raises(VenueError, match="unknown venue 'nowhere'"):
        create_sim_app({"nowhere": GeneratedSource(1.0)})
    with pytest.raises(VenueError, match="okx needs an OkxSource"):
        create_sim_app({"okx": KrakenSource(1.0)})
    with pytest.raises(VenueError, match="kraken needs a KrakenSource, not OkxSource"):
        create_sim_app({"kraken": OkxSource(1.0)})


async def spot_diffs(host: str, count: int) -> list[DepthDiff]:
    adapter, diffs = BinanceSpot(), []
    async with aiohttp.ClientSession() as session:
        url = f"ws://{host}/stream?streams=btcusdt@depth@100ms"
        async with session.ws_connect(url) as ws:
            while len(diffs) < count:
                message = await ws.receive(timeout=5)
                diffs += [e for e in adapter.parse(message.data, 0.0) if isinstance(e, DepthDiff)]
    return diffs


async def test_gap_every_breaks_the_spot_chain_at_each_dropped_diff(serve):
    source = GeneratedSource(200.0, 2, ["BTCUSDT"], consecutive_ids=True)
    host = await serve({"binance_spot": source}, Scenario(gap_every=10))
    diffs = await spot_diffs(host, 40)
    chain = BinanceSpot.continuity
    breaks = [i for i in range(1, 40) if not chain.follows(diffs[i], diffs[i - 1].last_id)]
    assert breaks == [9, 18, 27, 36]  # the 10th, 20th, ... diff was never sent


async def test_spot_without_faults_chains_every_diff(serve):
    source = GeneratedSource(200.0, 2, ["BTCUSDT"], consecutive_ids=True)
    diffs = await spot_diffs(await serve({"binance_spot": source}), 40)
    chain = BinanceSpot.continuity
    assert all(chain.follows(diffs[i], diffs[i - 1].last_id) for i in range(1, 40))


async def test_spot_snapshots_fail_as_the_scenario_says_then_succeed(serve):
    scenario = Scenario(snapshot_status=429, snapshot_failures=2, retry_after_s=3)
    source = GeneratedSource(10.0, 2, ["BTCUSDT"], consecutive_ids=True)
    host = await serve({"binance_spot": source}, scenario)
    statuses = []
    async with aiohttp.ClientSession() as session:
        for _ in range(3):
            async with session.get(f"http://{host}/api/v3/depth?symbol=BTCUSDT&limit=5") as r:
                statuses.append((r.status, r.headers.get("Retry-After")))
                body = orjson.loads(await r.read())
    assert statuses == [(429, "3"), (429, "3"), (200, None)]
    assert set(body) == {"lastUpdateId", "bids", "asks"}
    assert [s for _, _, s in scenario.snapshot_log] == [429, 429, 200]


async def test_spot_connections_are_cut_by_disconnect_every(serve):
    source = GeneratedSource(200.0, 2, ["BTCUSDT"], consecutive_ids=True)
    host = await serve({"binance_spot": source}, Scenario(disconnect_every=5))
    async with aiohttp.ClientSession() as session:
        url = f"ws://{host}/stream?streams=btcusdt@depth"
        async with session.ws_connect(url) as ws:
            kinds = [(await ws.receive(timeout=5)).type for _ in range(5)]
    assert kinds == [aiohttp.WSMsgType.TEXT] * 4 + [aiohttp.WSMsgType.CLOSE]


def test_the_command_line_names_venues_and_their_symbols():
    venues = sources(
        "binance_futures,binance_spot,kraken",
        ["BTCUSDT,ETHUSDT", "kraken=BTC/USD,SOL/USD", "binance_spot=FTMUSDT"],
        [], 5.0, 1,
    )  # fmt: skip
    futures, spot, kraken = venues.values()
    assert isinstance(futures, GeneratedSource)
    assert isinstance(spot, GeneratedSource)
    assert isinstance(kraken, KrakenSource)
    assert futures.listed() == ["BTCUSDT", "ETHUSDT"]
    assert (spot.listed(), spot.consecutive_ids, futures.consecutive_ids) == (
        ["FTMUSDT"],
        True,
        False,
    )
    assert kraken.listed() == ["BTC/USD", "SOL/USD"]
    line = describe_venues(venues)
    assert "kraken [/kraken/v2]" in line
    assert "binance_spot [/api/v3/... /stream]" in line
    assert list(sources("binance_futures", [], [], 1.0, None)) == ["binance_futures"]


@pytest.mark.parametrize(
    ("venues", "symbols", "replays", "error"),
    [
        ("binance_futures,nowhere", [], [], "unknown"),
        ("binance_futures", ["kraken=BTC/USD"], [], "kraken is not in --venues"),
        ("kraken", [], ["kraken=x.jsonl"], "generated markets only"),
        ("okx", [], ["okx=x.jsonl"], "okx venue serves generated markets only"),
    ],
)
def test_the_command_line_refuses_what_it_cannot_serve(venues, symbols, replays, error):
    with pytest.raises(VenueArgsError, match=error):
        sources(venues, symbols, replays, 1.0, None)


async def test_coinbase_is_served_at_its_own_path_beside_kraken(serve):
    host = await serve({
        "kraken": KrakenSource(50.0, 1, ["BTC/USD"]),
        "coinbase": CoinbaseSource(50.0, 1, ["BTC-USD"]),
    })  # fmt: skip
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"ws://{host}/coinbase") as ws:
            await ws.send_str('{"type":"subscribe","product_ids":[],"channel":"heartbeats"}')
            listing = orjson.loads((await ws.receive(timeout=5)).data)
            assert (listing["channel"], listing["sequence_num"]) == ("subscriptions", 0)
            assert listing["events"] == [{"subscriptions": {"heartbeats": ["heartbeats"]}}]
        async with session.ws_connect(f"ws://{host}/kraken/v2") as ws:
            status = orjson.loads((await ws.receive(timeout=5)).data)
            assert status["channel"] == "status"


def test_coinbase_needs_a_coinbase_source():
    with pytest.raises(VenueError, match="coinbase needs a CoinbaseSource"):
        create_sim_app({"coinbase": KrakenSource(1.0)})
    with pytest.raises(VenueError, match="kraken needs a KrakenSource, not CoinbaseSource"):
        create_sim_app({"kraken": CoinbaseSource(1.0)})


def test_the_command_line_serves_coinbase_products():
    venues = sources("coinbase", ["coinbase=BTC-USD,SOL-USD"], [], 5.0, 1)
    coinbase = venues["coinbase"]
    assert isinstance(coinbase, CoinbaseSource)
    assert coinbase.listed() == ["BTC-USD", "SOL-USD"]
    assert "coinbase [/coinbase]" in describe_venues(venues)
    with pytest.raises(VenueArgsError, match="coinbase venue serves generated markets only"):
        sources("coinbase", [], ["coinbase=x.jsonl"], 1.0, None)


async def test_okx_shares_the_port_with_the_other_dialects(serve):
    host = await serve({
        "kraken": KrakenSource(50.0, 1, ["BTC/USD"]),
        "okx": OkxSource(50.0, 1, ["BTC-USDT"]),
        "binance_spot": GeneratedSource(50.0, 1, ["ETHUSDT"], consecutive_ids=True),
    })  # fmt: skip
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"ws://{host}/okx/ws/v5/public") as ws:
            await ws.send_str('{"op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT"}]}')
            reply = orjson.loads((await ws.receive(timeout=5)).data)
            assert reply["event"] == "subscribe"
            snapshot = orjson.loads((await ws.receive(timeout=5)).data)
            assert (snapshot["action"], snapshot["data"][0]["prevSeqId"]) == ("snapshot", -1)
        url = f"http://{host}/api/v5/market/books?instId=BTC-USDT&sz=3&source=0"
        async with session.get(url) as r:
            body = await r.json()
        assert (body["code"], len(body["data"][0]["asks"])) == ("0", 3)
        async with session.get(f"http://{host}/api/v3/exchangeInfo") as r:
            assert (await r.json())["symbols"] == [{"symbol": "ETHUSDT", "status": "TRADING"}]


def test_the_command_line_serves_okx():
    venues = sources("okx", ["okx=BTC-USDT,ETH-USDT"], [], 5.0, 1, okx_checksums=False)
    (okx,) = venues.values()
    assert isinstance(okx, OkxSource)
    assert (okx.listed(), okx.checksums) == (["BTC-USDT", "ETH-USDT"], False)
    assert "okx [/okx/ws/v5/public /api/v5/market/books]" in describe_venues(venues)
    (default,) = sources("okx", [], [], 5.0, 1).values()
    assert isinstance(default, OkxSource)
    assert default.checksums
    assert "BTC-USDT" in default.listed()


async def test_bybit_is_served_beside_the_others_at_its_own_paths(serve):
    host = await serve({
        "kraken": KrakenSource(50.0, 1, ["BTC/USD"]),
        "bybit": BybitSource(50.0, 1, ["BTCUSDT"]),
    })  # fmt: skip
    async with aiohttp.ClientSession() as session:
        for category in ("linear", "spot", "inverse"):
            async with session.ws_connect(f"ws://{host}/bybit/v5/public/{category}") as ws:
                await ws.send_str('{"op":"subscribe","args":["orderbook.1.BTCUSDT"],"req_id":"a"}')
                reply = orjson.loads((await ws.receive(timeout=5)).data)
                assert (reply["success"], reply["req_id"]) == (True, "a")
                snapshot = orjson.loads((await ws.receive(timeout=5)).data)
                assert (snapshot["topic"], snapshot["type"]) == ("orderbook.1.BTCUSDT", "snapshot")
        async with session.get(f"http://{host}/bybit/v5/public/option") as r:
            assert r.status == 404


def test_bybit_needs_a_bybit_source_and_kraken_refuses_one():
    with pytest.raises(VenueError, match="bybit needs a BybitSource"):
        create_sim_app({"bybit": KrakenSource(1.0)})
    with pytest.raises(VenueError, match="kraken needs a KrakenSource, not BybitSource"):
        create_sim_app({"kraken": BybitSource(1.0)})


def test_the_command_line_serves_bybit_from_generated_markets():
    venues = sources("kraken,bybit", ["bybit=BTCUSDT,SOLUSDT"], [], 5.0, 1)
    bybit = venues["bybit"]
    assert isinstance(bybit, BybitSource)
    assert bybit.listed() == ["BTCUSDT", "SOLUSDT"]
    assert "bybit [/bybit/v5/public/spot /bybit/v5/public/linear /bybit/v5/public/inverse]" in (
        describe_venues(venues)
    )
    with pytest.raises(VenueArgsError, match="bybit venue serves generated markets only"):
        sources("bybit", [], ["bybit=x.jsonl"], 1.0, None)
