"""A throwaway PostgreSQL server: initdb in a temp dir, `postgres` on a free port.

As root, the server runs as the `postgres` user (PostgreSQL refuses to run as root).
Used by the integration tests and the benchmarks.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.helpers import free_port


def find_bindir() -> Path:
    pg_config = shutil.which("pg_config")
    if pg_config:
        bindir = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True).stdout
        if (Path(bindir.strip()) / "postgres").exists():
            return Path(bindir.strip())
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    return Path(found[-1]).parent


class PostgresServer:
    def __init__(self, durable: bool = False) -> None:
        """durable=False turns fsync off: fine for tests, not for benchmarks."""
        self.bindir = find_bindir()
        self.dir = Path(tempfile.mkdtemp(prefix="marketdata-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.dsn = f"postgresql://marketdata@127.0.0.1:{self.port}/marketdata"
        self.durable = durable
        self.process: subprocess.Popen[bytes] | None = None
        self._as_postgres: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            self._as_postgres = ["runuser", "-u", "postgres", "--"]
        self._run(
            self.bindir / "initdb", "-D", self.data, "-A", "trust", "-U", "marketdata",
            "-E", "UTF8", "--no-sync",
        )  # fmt: skip

    def start(self) -> None:
        options = ["-c", "listen_addresses=127.0.0.1", "-k", str(self.dir), "-p", str(self.port)]
        if not self.durable:
            options += ["-c", "fsync=off", "-c", "synchronous_commit=off"]
        self.process = subprocess.Popen(
            [*self._as_postgres, str(self.bindir / "postgres"), "-D", str(self.data), *options],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while not self._ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not start on port {self.port}")
            time.sleep(0.1)
        exists = subprocess.run(
            [str(self.bindir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U",
             "marketdata", "-d", "postgres", "-tAc",
             "SELECT 1 FROM pg_database WHERE datname = 'marketdata'"],
            capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        if exists != "1":
            self._run(
                self.bindir / "createdb", "-h", "127.0.0.1", "-p", str(self.port),
                "-U", "marketdata", "marketdata",
            )  # fmt: skip

    def stop(self) -> None:
        if self.process is not None:
            self._run(self.bindir / "pg_ctl", "stop", "-D", self.data, "-m", "fast", "-w")
            self.process.wait(30)
            self.process = None

    def add_password_role(self, role: str, password: str) -> str:
        """A role that must log in with `password` (every other role is trusted); its DSN."""
        hba = self.data / "pg_hba.conf"
        line = f"host all {role} 127.0.0.1/32 scram-sha-256\n"
        text = hba.read_text()
        if line not in text:
            hba.write_text(line + text)  # the first matching line wins
            self._run(self.bindir / "pg_ctl", "reload", "-D", self.data)
        self._run(
            self.bindir / "psql", "-h", "127.0.0.1", "-p", self.port, "-U", "marketdata",
            "-d", "marketdata", "-c",
            f"DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN PASSWORD '{password}'",
        )  # fmt: skip
        return f"postgresql://{role}:{password}@127.0.0.1:{self.port}/marketdata"

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _ready(self) -> bool:
        result = subprocess.run(
            [str(self.bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"],
            capture_output=True,
        )
        return result.returncode == 0

    def _run(self, *args: object, check: bool = True) -> None:
        subprocess.run(
            [*self._as_postgres, *map(str, args)], check=check, capture_output=True, cwd=self.dir
        )
