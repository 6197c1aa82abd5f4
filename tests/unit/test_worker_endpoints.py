"""The supervisor's merge of the workers' /ready and /metrics answers."""

from __future__ import annotations

import signal

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from marketdata.metrics import Metrics
from marketdata.worker_endpoints import WorkerReady, label_metrics, merge_ready
from marketdata.worker_process import describe_exit


def test_every_worker_ready_is_200_with_the_symbols_summed():
    status, body = merge_ready([WorkerReady(0, 200, symbols=4), WorkerReady(1, 200, symbols=2)], {})
    assert (status, body) == (200, {"ready": True, "problems": {}, "symbols": 6})


def test_problems_merge_under_their_keys_and_a_down_worker_has_its_own():
    redis = ["publishing fails: OOM"]
    futures = {"binance_futures:BTCUSDT": ["stale"], "redis": redis}
    readies = [
        WorkerReady(0, 503, symbols=2, problems=futures),
        WorkerReady(2, 503, symbols=2, problems={"kraken:BTC/USD": ["not synced"], "redis": redis}),
        WorkerReady(3, error="/ready does not answer: ClientConnectorError"),
    ]  # fmt: skip
    status, body = merge_ready(readies, {1: "down (killed by SIGKILL); restart 1 in 0.3 s"})
    assert status == 503
    assert body["problems"] == {
        "worker-1": ["down (killed by SIGKILL); restart 1 in 0.3 s"],
        "binance_futures:BTCUSDT": ["stale"],
        "redis": redis,  # once, though two workers say it
        "kraken:BTC/USD": ["not synced"],
        "worker-3": ["/ready does not answer: ClientConnectorError"],
    }
    assert body["symbols"] == 4


def test_metrics_get_a_worker_label_and_each_family_appears_once():
    texts = {}
    for index, symbol in ((0, "BTCUSDT"), (1, "ETHUSDT")):
        metrics = Metrics()
        metrics.orderbook_updates.labels("binance_futures", symbol).inc(3)
        metrics.processing_latency.observe(0.001)
        texts[index] = generate_latest(metrics.registry).decode()
    merged = label_metrics(texts).decode()
    assert merged.count("# TYPE orderbook_updates_total counter") == 1
    families = {f.name: f for f in text_string_to_metric_families(merged)}
    updates = {
        (s.labels["worker"], s.labels["symbol"]): s.value
        for s in families["orderbook_updates"].samples
    }
    assert updates == {("0", "BTCUSDT"): 3.0, ("1", "ETHUSDT"): 3.0}
    for family in families.values():
        for sample in family.samples:
            assert sample.labels["worker"] in ("0", "1"), sample
    counts = [
        s for s in families["processing_latency_seconds"].samples if s.name.endswith("_count")
    ]
    assert sorted(s.labels["worker"] for s in counts) == ["0", "1"]


def test_exits_are_described_by_code_or_signal():
    assert describe_exit(0) == "exit code 0"
    assert describe_exit(1) == "exit code 1"
    assert describe_exit(-signal.SIGKILL) == "killed by SIGKILL"
