"""rediss:// URLs: the publisher honours the ssl_* query parameters redis-py honours,
against a real TLS redis-server with a certificate from a CA of the test's own."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from marketdata.metrics import Metrics
from marketdata.publish import Publisher
from marketdata.redis_batch import RespConnection
from tests.redis_server import RedisServer


def make_certificates(directory: Path) -> dict[str, Path]:
    """A CA, and a server certificate it signed for 127.0.0.1."""
    files = {name: directory / f"{name}.pem" for name in ("ca", "ca_key", "key", "cert")}
    csr, ext = directory / "server.csr", directory / "server.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for command in (
        ["req", "-x509", *ec, "-keyout", files["ca_key"], "-out", files["ca"], "-days", "2",
         "-subj", "/CN=marketdata test CA"],
        ["req", *ec, "-keyout", files["key"], "-out", csr, "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", csr, "-CA", files["ca"], "-CAkey", files["ca_key"],
         "-CAcreateserial", "-out", files["cert"], "-days", "2", "-extfile", ext],
    ):  # fmt: skip
        subprocess.run(["openssl", *map(str, command)], check=True, capture_output=True)
    return files


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisServer, Path]]:
    directory = tmp_path_factory.mktemp("redis-tls")
    files = make_certificates(directory)
    server = RedisServer(str(directory))
    server.args = [
        "--port", "0", "--tls-port", str(server.port), "--tls-cert-file", str(files["cert"]),
        "--tls-key-file", str(files["key"]), "--tls-ca-cert-file", str(files["ca"]),
        "--tls-auth-clients", "no",
    ]  # fmt: skip
    server.url = f"rediss://127.0.0.1:{server.port}/0?ssl_ca_certs={files['ca']}"
    server.start()
    yield server, files["ca"]
    server.stop()


@pytest.mark.parametrize("query", ["ssl_ca_certs={ca}", "ssl_cert_reqs=none"])
async def test_tls_parameters_in_the_url_are_honoured(tls_redis, query):
    server, ca = tls_redis
    url = f"rediss://127.0.0.1:{server.port}/0?" + query.format(ca=ca)
    connection = RespConnection(url)
    try:
        assert await connection.send([("PING",), ("SET", "tls", "yes"), ("GET", "tls")]) == [
            b"PONG", b"OK", b"yes",
        ]  # fmt: skip
    finally:
        await connection.close()


async def test_an_unverifiable_certificate_fails_every_batch_and_says_so(tls_redis):
    server, _ = tls_redis
    connection = RespConnection(f"rediss://127.0.0.1:{server.port}/0")  # verify: system CAs
    publisher = Publisher(
        connection, book_depth=5, interval_s=0.1, market_data_ttl_s=60, metrics=Metrics()
    )
    try:
        assert not await publisher.flush()  # nothing pending: the idle PING
        (problem,) = publisher.redis_problems()
        assert "certificate verify failed" in problem, problem
    finally:
        await publisher.close()


def test_an_unreadable_ca_file_is_a_configuration_error(tmp_path):
    with pytest.raises(ValueError, match="TLS parameters"):
        RespConnection(f"rediss://127.0.0.1:1/0?ssl_ca_certs={tmp_path / 'missing.pem'}")
