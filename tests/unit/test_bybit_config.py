"""The `exchanges.bybit` section: category-derived URL, checks naming key paths; request
batches within Bybit's limits; which topics a reply names."""

from __future__ import annotations

import orjson
import pytest

from marketdata.config import ConfigError, parse_config
from marketdata.venues.bybit.config import BybitConfig
from marketdata.venues.bybit.subscriptions import MAX_ARGS_CHARS, batches, named_topics


def test_the_url_follows_the_category_unless_set() -> None:
    config = parse_config({"exchanges": {"bybit": {"symbols": ["btcusdt"]}}}, environ={})
    bybit = config.exchanges["bybit"]
    assert isinstance(bybit, BybitConfig)
    assert (bybit.category, bybit.depth, bybit.symbols) == ("linear", 200, ("BTCUSDT",))
    assert bybit.ws_url == "wss://stream.bybit.com/v5/public/linear"
    spot = BybitConfig(symbols=("BTCUSDT",), category="spot")
    assert spot.ws_url == "wss://stream.bybit.com/v5/public/spot"
    mine = BybitConfig(symbols=("BTCUSDT",), category="inverse", ws_url="ws://127.0.0.1:9/x")
    assert mine.ws_url == "ws://127.0.0.1:9/x"


def test_problems_name_their_key_paths() -> None:
    section = {"symbols": ["BTCUSDT"], "category": "option", "depth": 25,
               "symbols_per_connection": 0, "ping_interval_s": 0.5}  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        parse_config({"exchanges": {"bybit": section}}, environ={})
    assert caught.value.problems == [
        "exchanges.bybit.category: 'option' is not one of spot, linear, inverse",
    ]
    section["category"] = "spot"
    with pytest.raises(ConfigError) as caught:
        parse_config({"exchanges": {"bybit": section}}, environ={})
    assert caught.value.problems == [
        "exchanges.bybit.depth: 25 is not one of 1, 50, 200, 1000",
        "exchanges.bybit.symbols_per_connection: 0 is outside 1..100",
        "exchanges.bybit.ping_interval_s: 0.5 is outside 1..600",
    ]


def test_a_depth_below_book_depth_is_refused() -> None:
    problems: list[str] = []
    BybitConfig(symbols=("BTCUSDT",), depth=50).check("exchanges.bybit", 100, problems)
    assert problems == [
        "exchanges.bybit.depth: 50 is below book_depth 100; published levels would be missing"
    ]


def test_batches_keep_to_the_args_length_and_count() -> None:
    topics = [f"orderbook.1000.SYMBOL{i:04d}USDT" for i in range(2000)]
    out = list(batches(topics, None))
    assert [t for batch in out for t in batch] == topics
    assert all(len(orjson.dumps(batch)) <= MAX_ARGS_CHARS for batch in out)
    assert all(len(orjson.dumps(batch + [topics[0]])) > MAX_ARGS_CHARS for batch in out[:-1])
    assert [len(b) for b in batches(topics[:25], 10)] == [10, 10, 5]
    assert list(batches([], 10)) == []


def test_a_reply_names_only_whole_topics() -> None:
    topics = ["orderbook.200.BTCUSDT", "publicTrade.BTCUSDT", "orderbook.200.BTCUSD"]
    assert named_topics("error:already subscribed,topic:orderbook.200.BTCUSDT", topics) == {
        "orderbook.200.BTCUSDT"
    }
    assert named_topics("error:handler not found", topics) == set()
    assert named_topics("Params Error", topics) == set()


async def test_the_venue_builds_one_feed_per_group_of_symbols() -> None:
    from marketdata.config import ReconnectConfig
    from marketdata.metrics import Metrics
    from marketdata.venue import FeedContext
    from marketdata.venues.catalog import VENUE_CONFIGS
    from marketdata.venues.registry import VENUES

    assert VENUE_CONFIGS["bybit"] is BybitConfig
    venue = VENUES["bybit"]
    config = BybitConfig(symbols=("BTCUSDT", "ETHUSDT", "SOLUSDT"), symbols_per_connection=2)
    context = FeedContext(None, None, ReconnectConfig(), Metrics(), 30.0)  # type: ignore[arg-type]
    feeds = venue.build(config, context)
    assert [feed.key for feed in feeds] == ["bybit:connection1", "bybit:SOLUSDT"]
    assert [[s.symbol for s in feed.states] for feed in feeds] == [
        ["BTCUSDT", "ETHUSDT"], ["SOLUSDT"],
    ]  # fmt: skip
    assert await venue.symbol_problems(None, config) == []  # type: ignore[arg-type]


def test_reply_verdicts_per_topic() -> None:
    from marketdata.backoff import Backoff
    from marketdata.venues.bybit.subscriptions import Subscription, SubState, Verdict, verdicts

    subs = [
        Subscription(c, f"{c}.BTCUSDT", "BTCUSDT", "t", Backoff(1, 2))
        for c in ("orderbook", "publicTrade", "tickers")
    ]
    for sub in subs[:2]:
        sub.state = SubState.SENT  # the third had its answer already
    ok, trade = subs[0], subs[1]
    assert verdicts(subs, True, "") == [(ok, Verdict.CONFIRMED), (trade, Verdict.CONFIRMED)]
    assert verdicts(subs, False, "Params Error") == [
        (ok, Verdict.REJECTED), (trade, Verdict.REJECTED),
    ]  # fmt: skip
    assert verdicts(subs, False, "error:handler not found,topic:publicTrade.BTCUSDT") == [
        (ok, Verdict.ASK_AGAIN), (trade, Verdict.REJECTED),
    ]  # fmt: skip
    assert verdicts(subs, False, "error:already subscribed,topic:publicTrade.BTCUSDT") == [
        (ok, Verdict.ASK_AGAIN), (trade, Verdict.CONFIRMED),
    ]  # fmt: skip
