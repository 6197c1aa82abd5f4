"""Command line: `marketdata run | check-config | sim`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Sequence

from aiohttp import web

from marketdata import __version__
from marketdata.config import Config, ConfigError, load_config
from marketdata.logs import setup_logging

EXIT_CONFIG = 2
log = logging.getLogger("marketdata")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return int(args.handler(args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="marketdata", description=__doc__)
    parser.add_argument("--version", action="version", version=f"marketdata {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the service")
    run.add_argument("--config", default="config.yaml", help="YAML file (default: %(default)s)")
    run.add_argument("--log-format", choices=("text", "json"), help="overrides log_format")
    run.add_argument("--log-level", help="overrides log_level")
    run.set_defaults(handler=_run)

    check = commands.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("--config", default="config.yaml")
    check.set_defaults(handler=_check_config)

    sim = commands.add_parser("sim", help="run the local Binance USD-M futures simulator")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8765)
    sim.add_argument("--rate", type=float, default=10.0, help="depth events/s per symbol")
    sim.add_argument("--seed", type=int, help="fix the generated markets")
    sim.add_argument("--replay", metavar="FILE", help="serve a recorded capture instead")
    sim.add_argument("--speed", type=float, default=1.0, help="replay speed (0: no pauses)")
    sim.add_argument("--ping-interval", type=float, default=180.0, help="server pings, s")
    sim.set_defaults(handler=_sim)
    return parser


def _load(path: str) -> Config | None:
    try:
        return load_config(path)
    except ConfigError as e:
        for problem in e.problems:
            print(f"marketdata: config error: {problem}", file=sys.stderr)
        return None


def _check_config(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_CONFIG
    symbols = sum(len(e.symbols) for e in config.exchanges.values())
    print(f"{args.config}: ok ({len(config.exchanges)} exchange(s), {symbols} symbol(s))")
    return 0


def _run(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_CONFIG
    setup_logging(args.log_level or config.log_level, args.log_format or config.log_format)
    from marketdata.service import Service

    async def run() -> None:
        service = Service(config)
        _on_signals(service.stop)
        await service.run()

    asyncio.run(run())
    return 0


def _sim(args: argparse.Namespace) -> int:
    setup_logging("INFO", "text")
    from marketdata.sim.capture import CaptureError, load_capture
    from marketdata.sim.server import create_app
    from marketdata.sim.sources import GeneratedSource, ReplaySource, Source

    async def run() -> None:
        source: Source
        if args.replay:
            source = ReplaySource(load_capture(args.replay), args.speed)
        else:
            source = GeneratedSource(args.rate, args.seed)
        runner = web.AppRunner(create_app(source, args.ping_interval), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, args.host, args.port).start()
        what = f"replaying {args.replay}" if args.replay else f"generated, {args.rate:g} diffs/s"
        log.info("simulator on http://%s:%d and ws://%s:%d (%s)",
                 args.host, args.port, args.host, args.port, what)  # fmt: skip
        stop = asyncio.Event()
        _on_signals(stop.set)
        await stop.wait()
        if isinstance(source, GeneratedSource):
            await source.close()
        await runner.cleanup()

    try:
        asyncio.run(run())
    except (CaptureError, OSError) as e:
        print(f"marketdata sim: {e}", file=sys.stderr)
        return 1
    return 0


def _on_signals(callback: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, callback)


if __name__ == "__main__":
    sys.exit(main())
