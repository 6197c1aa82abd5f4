"""A throwaway redis-server on a free loopback port (tests and benchmarks)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence

import redis

from tests.helpers import free_port


class RedisServer:
    def __init__(
        self, directory: str | None = None, args: Sequence[str] = (), password: str | None = None
    ) -> None:
        """args: more redis-server options; password: the one they require, if any."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.binary = binary
        self.dir = directory or tempfile.mkdtemp(prefix="marketdata-redis-")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self.args = list(args)
        self.password = password

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, *self.args],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url, password=self.password)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None
