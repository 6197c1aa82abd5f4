"""The workers' operations endpoints, read and merged into the supervisor's answers.

/ready: every worker's problems in one mapping (their `exchange:SYMBOL` keys never collide,
the shards being disjoint; shared keys such as `redis` get every worker's lines, once each),
plus `worker-K` for a worker that is down or does not answer.
/metrics: each worker's exposition parsed, `worker="K"` added to every sample, and each
family written once with every worker's samples (HELP and TYPE once per family, as the
text format requires; a plain concatenation would repeat them).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from marketdata.logs import describe

FETCH_TIMEOUT_S = 2.0
WORKER_LABEL = "worker"


@dataclass
class WorkerReady:
    """One worker's /ready, or why there is none."""

    index: int
    status: int | None = None  # None: no answer
    body: Any = None
    error: str = ""
    symbols: int = 0
    problems: dict[str, list[str]] = field(default_factory=dict)


async def fetch(session: aiohttp.ClientSession, port: int, path: str) -> tuple[int, bytes]:
    timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S)
    async with session.get(f"http://127.0.0.1:{port}{path}", timeout=timeout) as response:
        return response.status, await response.read()


async def worker_ready(session: aiohttp.ClientSession, index: int, port: int) -> WorkerReady:
    try:
        status, body = await fetch(session, port, "/ready")
        parsed = orjson.loads(body)
    except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as e:
        return WorkerReady(index, error=f"/ready does not answer: {describe(e)}")
    result = WorkerReady(index, status, parsed)
    if isinstance(parsed, dict):
        result.symbols = int(parsed.get("symbols", 0))
        problems = parsed.get("problems")
        if isinstance(problems, dict):
            result.problems = {str(k): [str(v) for v in vs] for k, vs in problems.items()}
        if parsed.get("busy"):
            result.error = "/ready busy (its endpoint is overloaded)"
    if status != 200 and not result.problems and not result.error:
        result.error = f"/ready answered {status}"
    return result


def merge_ready(
    readies: Iterable[WorkerReady], down: Mapping[int, str]
) -> tuple[int, dict[str, Any]]:
    """(status, body): 200 only when every worker is up and answers 200."""
    problems: dict[str, list[str]] = {}
    symbols = 0
    for index, reason in sorted(down.items()):
        problems[f"worker-{index}"] = [reason]
    for ready in sorted(readies, key=lambda r: r.index):
        symbols += ready.symbols
        if ready.error:
            problems.setdefault(f"worker-{ready.index}", []).append(ready.error)
        for key, lines in ready.problems.items():
            merged = problems.setdefault(key, [])
            merged += [line for line in lines if line not in merged]
    body = {"ready": not problems, "problems": problems, "symbols": symbols}
    return (200 if not problems else 503), body


async def gather_ready(
    session: aiohttp.ClientSession, ports: Mapping[int, int]
) -> list[WorkerReady]:
    return list(await asyncio.gather(*(worker_ready(session, i, p) for i, p in ports.items())))


async def gather_metrics(
    session: aiohttp.ClientSession, ports: Mapping[int, int]
) -> dict[int, str]:
    """Each answering worker's exposition text; a worker that does not answer is left out
    (`workers_up` says which)."""

    async def one(port: int) -> str | None:
        try:
            status, body = await fetch(session, port, "/metrics")
        except (aiohttp.ClientError, TimeoutError):
            return None
        return body.decode() if status == 200 else None

    texts = await asyncio.gather(*(one(p) for p in ports.values()))
    return {i: t for i, t in zip(ports, texts, strict=True) if t is not None}


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


def label_metrics(texts: Mapping[int, str], extra: Iterable[Metric] = ()) -> bytes:
    """One exposition: every worker's samples with `worker="K"`, each family once."""
    families: dict[str, Metric] = {}
    for index, text in sorted(texts.items()):
        for family in text_string_to_metric_families(text):
            merged = families.get(family.name)
            if merged is None:
                merged = families[family.name] = Metric(
                    family.name, family.documentation, family.type, family.unit
                )
            merged.samples += [_labelled(s, index) for s in family.samples]
    for family in extra:
        families[family.name] = family
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(list(families.values())))
    return generate_latest(registry)


def _labelled(sample: Sample, index: int) -> Sample:
    return sample._replace(labels={**sample.labels, WORKER_LABEL: str(index)})
