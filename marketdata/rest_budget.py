"""One venue's REST request-weight budget for every process behind one egress IP, in Redis.

A venue limits request weight per minute per IP (Binance futures 2,400, spot 6,000), not
per process: N instances (or `--workers N`) behind one IP each keeping their own budget
would spend N times it. With `rest_budget.shared` on, every RestGate of a venue asks one
Redis key instead, `rest_budget:<venue>:<ip_label>`, through one Lua script that checks and
counts atomically, so that together they never pass the budget. On a Redis Cluster the two
keys the script touches are hash-tagged into one slot: `rest_budget:{<venue>:<ip_label>}`
and `rest_pause:{<venue>:<ip_label>}`.

The window is the wall-clock minute of the Redis server's clock (a fixed window, not a
sliding one): Binance counts weight per calendar minute (X-MBX-USED-WEIGHT-1M resets when
the minute turns), so the same window lets the venue's header raise the shared count
(max(used, header)), and one clock (Redis's) serves every instance whatever their own
clocks say. The budget's margin (RestGate's budget_fraction) covers a few hundred ms
between Redis's clock and the venue's.

A 429 or ban seen by one process sets `rest_pause:<venue>:<ip_label>` (the end time, with
an expiry) and the same script holds every request until then.

Redis that cannot be reached is not a reason to stop REST requests: `take` answers None
and each process keeps its own budget (RestGate's local count) until Redis answers again,
told as one Outage (a WARNING when it starts, an INFO when it ends). After a failure Redis
is asked again only every RETRY_INTERVAL_S, so a down Redis costs requests no time.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Sequence

from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError

from marketdata.outage import Outage
from marketdata.redis_cluster_client import (
    REDIS_FAILURES,
    AnyRedis,
    aclose_client,
    hash_tagged,
    redis_client,
)

log = logging.getLogger(__name__)

TIMEOUT_S = 1.0  # one script call; past it this process counts alone for a while
RETRY_INTERVAL_S = 2.0  # module level: tests shorten it
MAX_PAUSE_S = 3 * 86400.0

# KEYS: budget, pause. ARGV: weight, budget, now in ms ("": the Redis server's clock),
# window in ms (a minute for Binance, 2 s for OKX). Returns 0 when the weight is counted,
# else the ms to wait (a pause's end or the next window). The field `minute` holds the
# window's number.
TAKE = """
local now = tonumber(ARGV[3])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local paused = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
if paused > now then return paused - now end
local span = tonumber(ARGV[4])
local window = math.floor(now / span)
local state = redis.call('HMGET', KEYS[1], 'minute', 'used')
local used = 0
if tonumber(state[1]) == window then used = tonumber(state[2]) or 0 end
local weight = tonumber(ARGV[1])
if used + weight > tonumber(ARGV[2]) then return (window + 1) * span - now end
redis.call('HSET', KEYS[1], 'minute', window, 'used', used + weight)
redis.call('PEXPIRE', KEYS[1], (window + 2) * span - now)
return 0
"""

# KEYS: budget, pause. ARGV: used weight the venue reported (-1: none), pause in ms (0:
# none), now in ms ("": the Redis server's clock). The count and the pause only grow.
REPORT = """
local now = tonumber(ARGV[3])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local reported = tonumber(ARGV[1])
if reported >= 0 then
  local minute = math.floor(now / 60000)
  local state = redis.call('HMGET', KEYS[1], 'minute', 'used')
  local used = 0
  if tonumber(state[1]) == minute then used = tonumber(state[2]) or 0 end
  if reported > used then
    redis.call('HSET', KEYS[1], 'minute', minute, 'used', reported)
    redis.call('PEXPIRE', KEYS[1], (minute + 2) * 60000 - now)
  end
end
local pause = tonumber(ARGV[2])
if pause > 0 then
  local ends = now + pause
  if ends > (tonumber(redis.call('GET', KEYS[2]) or '0') or 0) then
    redis.call('SET', KEYS[2], ends, 'PX', pause)
  end
end
return 0
"""


class Script:
    """A Lua script run by EVALSHA, sent in full (EVAL) when the server does not have it
    (a restarted or flushed Redis)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def run(self, client: AnyRedis, keys: Sequence[str], args: Sequence[str]) -> int:
        try:
            reply = await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            reply = await client.eval(self.source, len(keys), *keys, *args)
        return int(reply)


_TAKE, _REPORT = Script(TAKE), Script(REPORT)


class SharedBudget:
    """One venue's budget behind one IP label, for one process (its RestGate)."""

    def __init__(
        self,
        client: AnyRedis,
        venue: str,
        ip_label: str,
        *,
        cluster: bool = False,  # hash-tag the keys into one slot
        window_s: float = 60.0,  # the venue's counting window (Binance: the minute)
        limit: int | None = None,  # per window; None: the caller's budget (per minute)
        now_ms: Callable[[], int] | None = None,  # tests; None: the Redis server's clock
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._window_ms = str(round(window_s * 1000))
        self._limit = limit
        self.key = hash_tagged("rest_budget", f"{venue}:{ip_label}", cluster)
        self.pause_key = hash_tagged("rest_pause", f"{venue}:{ip_label}", cluster)
        self.outage = Outage(
            f"shared REST budget {self.key} (each process keeps its own budget meanwhile)", log
        )
        self._client = client
        self._now_ms = now_ms
        self._clock = clock
        self._retry_at = 0.0  # monotonic; Redis is not asked before it after a failure
        self._reports: set[asyncio.Task[None]] = set()

    async def take(self, weight: int, budget: int) -> float | None:
        """Count `weight` against `budget` (this budget's own limit per window when it has
        one) (0.0), or the seconds to wait before asking again; None: Redis cannot be asked
        now, the caller's own budget decides."""
        limit = budget if self._limit is None else self._limit
        args = (str(weight), str(limit), self._now(), self._window_ms)
        waited = await self._run(_TAKE, args)
        return None if waited is None else waited / 1000

    def report(self, used: int | None, pause_s: float) -> None:
        """Tell the others, in the background: the venue reported `used` weight this minute;
        no request for `pause_s` (a 429 or a ban). A pause is tried even while Redis is
        failing; a used weight then is not."""
        if pause_s <= 0 and (used is None or self._clock() < self._retry_at):
            return
        pause_ms = round(min(pause_s, MAX_PAUSE_S) * 1000)
        args = ("-1" if used is None else str(used), str(max(0, pause_ms)), self._now())
        task = asyncio.get_running_loop().create_task(self._report(args))
        self._reports.add(task)
        task.add_done_callback(self._reports.discard)

    async def drain(self) -> None:
        """Wait for the reports under way (each bounded by TIMEOUT_S)."""
        while self._reports:
            await asyncio.gather(*self._reports, return_exceptions=True)

    async def _report(self, args: Sequence[str]) -> None:
        await self._run(_REPORT, args, retry_now=True)

    async def _run(
        self, script: Script, args: Sequence[str], retry_now: bool = False
    ) -> int | None:
        if not retry_now and self._clock() < self._retry_at:
            return None
        try:
            async with asyncio.timeout(TIMEOUT_S):
                reply = await script.run(self._client, (self.key, self.pause_key), args)
        except REDIS_FAILURES as e:
            self._retry_at = self._clock() + RETRY_INTERVAL_S
            self.outage.fail(e)
            return None
        self.outage.ok()
        return reply

    def _now(self) -> str:
        return "" if self._now_ms is None else str(self._now_ms())


class RestBudgets:
    """The Redis client of the shared budgets and one SharedBudget per venue."""

    def __init__(self, client: AnyRedis, ip_label: str, cluster: bool = False) -> None:
        self.ip_label = ip_label
        self.cluster = cluster
        self._client = client
        self._budgets: dict[str, SharedBudget] = {}

    @classmethod
    def connect(cls, redis_url: str, ip_label: str, cluster: bool = False) -> RestBudgets:
        """Nothing is sent until a budget is asked; a URL redis-py refuses raises ValueError."""
        client = redis_client(
            redis_url, cluster, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S,
            retry=Retry(NoBackoff(), 1),  # a stale connection once; never a backoff's wait
        )  # fmt: skip
        return cls(client, ip_label, cluster)

    def for_venue(
        self, venue: str, window_s: float = 60.0, limit: int | None = None
    ) -> SharedBudget:
        """The venue's budget (one per venue: `window_s` and `limit` as given first)."""
        budget = self._budgets.get(venue)
        if budget is None:
            budget = self._budgets[venue] = SharedBudget(
                self._client, venue, self.ip_label, cluster=self.cluster,
                window_s=window_s, limit=limit,
            )  # fmt: skip
        return budget

    async def aclose(self) -> None:
        for budget in self._budgets.values():
            await budget.drain()
        await aclose_client(self._client)
