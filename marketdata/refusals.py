"""Commands Redis refused inside a batch it otherwise accepted: counted per command and
reason, logged once when a command starts being refused and once when it is accepted
again, and listed (with Redis's own error text) for /ready while it lasts.

Typical reasons: OOM (maxmemory reached with noeviction: SET and XADD refused, PUBLISH
still accepted), NOPERM (the ACL user lacks the command), READONLY (a replica); MOVED from
a Redis Cluster that redis_url names while redis_cluster is false (said so, with what to
set).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from prometheus_client import Counter

from marketdata.redis_batch import Command, ReplyError

log = logging.getLogger(__name__)

CLUSTER_REPLIES = ("MOVED ", "ASK ", "CLUSTERDOWN")


def command_name(command: Command) -> str:
    name = command[0]
    return (name.decode() if isinstance(name, bytes) else str(name)).upper()


def _hinted(text: str) -> str:
    """A cluster's redirection, seen by a publisher that does not follow them, says what to
    set."""
    if text.startswith(CLUSTER_REPLIES):
        return f"redis_url names a Redis Cluster: set redis_cluster: true ({text})"
    return text


class Refusals:
    def __init__(self, counter: Counter) -> None:
        self._counter = counter  # labels: command, reason
        self.active: dict[str, str] = {}  # command -> Redis's error text, while refused

    def record(self, commands: Sequence[Command], replies: Sequence[Any]) -> set[int]:
        """The indices of the refused commands; counts them and notes the change."""
        refused: set[int] = set()
        counts: dict[tuple[str, str], int] = {}
        texts: dict[str, str] = {}
        for i, reply in enumerate(replies):
            if type(reply) is ReplyError:
                refused.add(i)
                raw = str(reply)
                name, text = command_name(commands[i]), _hinted(raw)
                key = (name, raw.split(" ", 1)[0])
                counts[key] = counts.get(key, 0) + 1
                texts[name] = text
        for (name, reason), n in counts.items():
            self._counter.labels(name, reason).inc(n)
        for name, text in texts.items():
            if name not in self.active:
                log.warning("redis refuses %s: %s", name, text)
            self.active[name] = text
        if len(texts) < len(self.active):
            self.accepted(commands, skip=texts)
        return refused

    def accepted(self, commands: Sequence[Command], skip: dict[str, str] | None = None) -> None:
        """Commands of a batch with no refusal of their kind are accepted again."""
        sent = {command_name(c) for c in commands}
        for name in [n for n in self.active if n in sent and not (skip and n in skip)]:
            del self.active[name]
            log.info("redis accepts %s again", name)

    def problems(self) -> list[str]:
        return [f"{name} refused: {text}" for name, text in self.active.items()]
