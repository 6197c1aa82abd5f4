"""marketdata: exchange feeds -> order books, trades and market data on Redis.

Commands: run (the service), persist (spool -> TimescaleDB/MongoDB), check-config, sim."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from aiohttp import web

from marketdata import __version__
from marketdata.config import Config, ConfigError, load_config
from marketdata.gc_tuning import tune_for_streaming
from marketdata.logs import describe, setup_logging
from marketdata.shard import Shard, describe_shard, parse_shard, shard_config

EXIT_CONFIG = 2
log = logging.getLogger("marketdata")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return int(args.handler(args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="marketdata", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"marketdata {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the service", formatter_class=_DefaultsShown)
    _logging_options(run)
    _scale_options(run)
    run.set_defaults(handler=_run)

    persist = commands.add_parser(
        "persist", help="drain the spool into TimescaleDB/MongoDB", formatter_class=_DefaultsShown
    )
    _logging_options(persist)
    persist.set_defaults(handler=_persist)

    check = commands.add_parser(
        "check-config", help="validate a config file and exit", formatter_class=_DefaultsShown
    )
    check.add_argument("--config", default="config.yaml", help="YAML file")
    check.set_defaults(handler=_check_config)

    sim = commands.add_parser(
        "sim",
        help="run the local exchange simulator (Binance futures/spot, Kraken, OKX, Coinbase, "
        "Bybit)",
        description="A local exchange on one port, in each venue's wire format: "
        "binance_futures at /fapi/v1/... and /public|market/stream, binance_spot at "
        "/api/v3/... and /stream, kraken (spot WebSocket v2) at /kraken/v2, okx (v5 public) at "
        "/okx/ws/v5/public and /api/v5/market/books, coinbase (Advanced Trade market data) "
        "at /coinbase, bybit (v5 public) at /bybit/v5/public/linear (and /spot, /inverse).",
        formatter_class=_DefaultsShown,
    )
    sim.add_argument("--host", default="127.0.0.1", help="address to listen on")
    sim.add_argument("--port", type=int, default=8765, help="port for REST and WebSockets")
    sim.add_argument(
        "--venues", metavar="A,B", default="binance_futures",
        help="venues to serve: binance_futures, binance_spot, kraken, okx, coinbase, bybit",
    )  # fmt: skip
    sim.add_argument("--rate", type=float, default=10.0, help="depth events/s per symbol")
    sim.add_argument("--seed", type=int, help="fix the generated markets (default: random)")
    sim.add_argument(
        "--symbols", metavar="[VENUE=]A,B", action="append",
        help="the symbols a generated venue lists; without VENUE= the futures venue's; "
        "repeat per venue, e.g. --symbols kraken=BTC/USD,ETH/USD (default: 24 common "
        "USD-M contracts on Binance, 13 busy pairs on Kraken)",
    )  # fmt: skip
    sim.add_argument(
        "--replay", metavar="[VENUE=]FILE", action="append",
        help="serve a recorded capture on a Binance venue (without VENUE=: futures; "
        "default: generated markets)",
    )  # fmt: skip
    sim.add_argument("--speed", type=float, default=1.0, help="replay speed (0: no pauses)")
    sim.add_argument("--ping-interval", type=float, default=180.0, help="server pings, s")
    faults = sim.add_argument_group(
        "fault scenarios (per connection; N=0 is off; every venue gets its own counts)"
    )
    for flag, text in (
        ("gap-every", "drop every N-th depth diff (the id chain breaks; on Kraken: every "
         "N-th book update, its checksum then fails; on Bybit: every N-th book delta)"),
        ("duplicate-every", "send every N-th depth diff (Kraken: book update) twice"),
        ("reorder-every", "send every N-th depth diff (Kraken: book update) after the next"),
        ("disconnect-every", "close each connection after N frames"),
        ("oversize-every", "send a frame over 4 MiB every N frames"),
        ("malformed-every", "send a malformed frame every N frames"),
        ("silence-every", "with --silence-ms: go silent after every N frames (default 100)"),
        ("checksum-corrupt-every", "Kraken, OKX: every N-th book update carries a wrong "
         "checksum (OKX with --okx-zero-checksums: a wrong prevSeqId)"),
        ("reject-subscribes", "Kraken, OKX: refuse the first N subscribe requests of each "
         "connection (later ones succeed); Bybit: answer them \"Params Error\""),
        ("restart-every", "Bybit: every N-th book delta is a snapshot with u=1, as after a "
         "Bybit service restart"),
    ):  # fmt: skip
        faults.add_argument(f"--{flag}", type=int, metavar="N", help=text)
    faults.add_argument("--disconnect-streams", metavar="A,B",
                        help="--disconnect-every cuts only connections carrying these streams "
                        "(e.g. aggTrade; on Kraken channels, e.g. trade)")  # fmt: skip
    faults.add_argument("--silence-ms", type=int, metavar="MS", help="length of each silence")
    faults.add_argument("--silence-symbols", metavar="A,B", help="only these symbols go silent")
    faults.add_argument(
        "--reject-symbols", metavar="A,B",
        help="Kraken, OKX, Coinbase, Bybit: refuse subscribing these symbols (e.g. ETH/USD)",
    )  # fmt: skip
    faults.add_argument(
        "--fault-symbols", metavar="A,B",
        help="Coinbase: gap, duplicate, reorder (on every frame) and disconnect only on "
        "connections carrying these products (e.g. BTC-USD)",
    )  # fmt: skip
    faults.add_argument(
        "--snapshot-status", type=int, choices=(429, 418, 500),
        help="answer Binance (and OKX REST books) snapshot requests with this status",
    )  # fmt: skip
    faults.add_argument(
        "--snapshot-failures", type=int, metavar="N", help="that many times (default: 1)"
    )
    faults.add_argument("--retry-after", type=float, metavar="S", help="Retry-After with 429/418")
    faults.add_argument(
        "--upgrade-notice-after", type=float, metavar="S",
        help="OKX: send notice 64008 this long into each connection...",
    )  # fmt: skip
    faults.add_argument(
        "--upgrade-close", type=float, metavar="S",
        help="...and close the connection this long after it (default: 30)",
    )  # fmt: skip
    sim.add_argument(
        "--okx-zero-checksums", action="store_true",
        help="OKX: send every books checksum as 0, as production does",
    )  # fmt: skip
    sim.set_defaults(handler=_sim)
    return parser


class _DefaultsShown(argparse.HelpFormatter):
    """Every option's help ends with its default, where it has one."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if action.option_strings and default not in (None, False, argparse.SUPPRESS):
            if "%(default)" not in text:
                text += " (default: %(default)s)"
        return text


def _logging_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--config", default="config.yaml", help="YAML file")
    command.add_argument(
        "--log-format", choices=("text", "json"), help="overrides the config's log_format"
    )
    command.add_argument("--log-level", help="overrides the config's log_level")


def _scale_options(run: argparse.ArgumentParser) -> None:
    run.add_argument(
        "--workers", type=_workers, default=1, metavar="N",
        help="run N worker processes, one shard each, behind one endpoint on health_port "
        "(auto: one per CPU; 1: this process serves every symbol)",
    )  # fmt: skip
    run.add_argument(
        "--shard", type=_shard, metavar="K/N",
        help="serve only shard K of N of the configured (venue, symbol) pairs, for "
        "placement by an orchestrator (default: every pair)",
    )  # fmt: skip
    run.add_argument(
        "--leases", action="store_true",
        help="share the configured symbols with the other instances on this Redis through "
        "leases (as leases.enabled: true)",
    )  # fmt: skip
    # Set by the --workers supervisor for each worker; not for people.
    run.add_argument("--health-host", help=argparse.SUPPRESS)
    run.add_argument("--health-port", type=int, help=argparse.SUPPRESS)
    run.add_argument("--spill-path", help=argparse.SUPPRESS)
    run.add_argument("--shared-rest-budget", action="store_true", help=argparse.SUPPRESS)


def _workers(text: str) -> int:
    if text == "auto":
        return os.cpu_count() or 1
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of processes (1, 2, ... or auto)"
        )
    return int(text)


def _shard(text: str) -> Shard:
    try:
        return parse_shard(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _load(path: str) -> Config | None:
    try:
        return load_config(path)
    except ConfigError as e:
        _print_problems(e)
        return None


def _print_problems(error: ConfigError) -> None:
    for problem in error.problems:
        print(f"marketdata: config error: {problem}", file=sys.stderr)


def _check_config(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_CONFIG
    symbols = sum(len(e.symbols) for e in config.exchanges.values())
    print(f"{args.config}: ok ({len(config.exchanges)} exchange(s), {symbols} symbol(s))")
    return 0


class _Runnable(Protocol):
    def stop(self) -> None: ...

    async def run(self) -> None: ...


def _run(args: argparse.Namespace) -> int:
    loaded = _load(args.config)
    if loaded is None:
        return EXIT_CONFIG
    if args.leases and not loaded.leases.enabled:
        loaded = dataclasses.replace(
            loaded, leases=dataclasses.replace(loaded.leases, enabled=True)
        )
    if loaded.leases.enabled and (args.shard is not None or args.workers > 1):
        option = "--shard" if args.shard is not None else "--workers"
        print(f"marketdata run: {option} cannot be combined with leases (leases.enabled, "
              "--leases): leases place the symbols themselves; use one or the other",
              file=sys.stderr)  # fmt: skip
        return EXIT_CONFIG
    if args.workers > 1:
        if args.shard is not None:
            print("marketdata run: --shard and --workers cannot be combined (the workers "
                  "are the shards)", file=sys.stderr)  # fmt: skip
            return EXIT_CONFIG
        return _supervise(loaded, args)
    config = _worker_overrides(loaded, args)
    shard: Shard | None = args.shard
    if shard is not None:
        config = shard_config(config, shard)
    from marketdata.service import Service

    def make() -> _Runnable:
        if shard is not None:
            log.info("%s", describe_shard(config, shard))
        return Service(config)

    return _serve(make, config, args)


def _worker_overrides(config: Config, args: argparse.Namespace) -> Config:
    if args.health_host is not None:
        config = dataclasses.replace(config, health_host=args.health_host)
    if args.health_port is not None:
        config = dataclasses.replace(config, health_port=args.health_port)
    if args.spill_path is not None:
        spool = dataclasses.replace(config.spool, spill_path=args.spill_path)
        config = dataclasses.replace(config, spool=spool)
    if args.shared_rest_budget and not config.rest_budget.shared:
        budget = dataclasses.replace(config.rest_budget, shared=True)
        config = dataclasses.replace(config, rest_budget=budget)
    return config


def _supervise(config: Config, args: argparse.Namespace) -> int:
    """Run the --workers supervisor until SIGINT/SIGTERM."""
    log_format = args.log_format or config.log_format
    setup_logging(args.log_level or config.log_level, log_format)
    from marketdata.supervisor import Supervisor, SupervisorError

    def command(index: int, port: int) -> list[str]:
        argv = [sys.executable, "-m", "marketdata.cli", "run", "--config", args.config,
                "--shard", f"{index}/{args.workers}", "--health-host", "127.0.0.1",
                "--health-port", str(port),
                "--spill-path", f"{config.spool.spill_path}.worker-{index}",
                # Workers on one host share its IP, so its REST limits: one budget.
                "--shared-rest-budget"]  # fmt: skip
        if args.log_format:
            argv += ["--log-format", args.log_format]
        if args.log_level:
            argv += ["--log-level", args.log_level]
        return argv

    if os.path.exists(config.spool.spill_path):
        log.warning("%s, spilled by a run without --workers, is left as it is: a run "
                    "without --workers appends it", config.spool.spill_path)  # fmt: skip

    async def run() -> int:
        supervisor = Supervisor(
            args.workers, command, config.health_host, config.health_port, log_format
        )
        _on_signals(supervisor.stop)
        return await supervisor.run()

    try:
        return asyncio.run(run())
    except SupervisorError as e:
        print(f"marketdata run: {e}", file=sys.stderr)
        return 1


def _persist(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_CONFIG
    from marketdata.persist.service import PersistService, sinks_from_config

    sinks = sinks_from_config(config)
    if not sinks:
        print("marketdata: config error: persist: enable persist.timescale or persist.mongo",
              file=sys.stderr)  # fmt: skip
        return EXIT_CONFIG
    return _serve(lambda: PersistService(config, sinks), config, args)


def _serve(make: Callable[[], _Runnable], config: Config, args: argparse.Namespace) -> int:
    """Run a service until SIGINT/SIGTERM; a start-up failure is one line, exit 1."""
    setup_logging(args.log_level or config.log_level, args.log_format or config.log_format)
    from marketdata.service import StartupError

    async def run() -> None:
        service = make()
        tune_for_streaming()  # after start-up's allocations: they are frozen
        _on_signals(service.stop)
        await service.run()

    try:
        asyncio.run(run())
    except ConfigError as e:
        _print_problems(e)
        return EXIT_CONFIG
    except (StartupError, OSError) as e:
        print(f"marketdata {args.command}: {str(e) or describe(e)}", file=sys.stderr)
        return 1
    return 0


def _sim(args: argparse.Namespace) -> int:
    setup_logging("INFO", "text")
    from marketdata.sim.app import create_sim_app
    from marketdata.sim.capture import CaptureError
    from marketdata.sim.venues import VenueArgsError, close_sources, describe_venues, sources

    async def run() -> None:
        venues = sources(args.venues, args.symbols or [], args.replay or [], args.rate,
                         args.seed, args.speed, not args.okx_zero_checksums)  # fmt: skip
        scenarios = {venue: _scenario(args) for venue in venues}
        app = create_sim_app(venues, scenarios, args.ping_interval)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, args.host, args.port).start()
            log.info("simulator on http://%s:%d and ws://%s:%d: %s", args.host, args.port,
                     args.host, args.port, describe_venues(venues))  # fmt: skip
            stop = asyncio.Event()
            _on_signals(stop.set)
            await stop.wait()
        finally:
            await close_sources(venues)
            await runner.cleanup()

    try:
        asyncio.run(run())
    except VenueArgsError as e:
        print(f"marketdata sim: {e}", file=sys.stderr)
        return EXIT_CONFIG
    except (CaptureError, OSError) as e:
        print(f"marketdata sim: {str(e) or describe(e)}", file=sys.stderr)
        return 1
    return 0


def _scenario(args: argparse.Namespace) -> Any:
    from marketdata.sim.scenarios import Scenario

    given = {
        name: getattr(args, name)
        for name in (
            "gap_every", "duplicate_every", "reorder_every", "disconnect_every", "oversize_every",
            "malformed_every", "silence_every", "silence_ms", "snapshot_status",
            "snapshot_failures", "checksum_corrupt_every", "reject_subscribes", "restart_every",
        )
        if getattr(args, name) is not None
    }  # fmt: skip
    if args.retry_after is not None:
        given["retry_after_s"] = args.retry_after
    if args.upgrade_notice_after is not None:
        given["upgrade_notice_after_s"] = args.upgrade_notice_after
    if args.upgrade_close is not None:
        given["upgrade_close_s"] = args.upgrade_close
    if args.disconnect_streams:
        given["disconnect_streams"] = frozenset(
            s.strip().lower() for s in args.disconnect_streams.split(",")
        )
    if args.silence_symbols:
        given["silence_symbols"] = frozenset(
            s.strip().upper() for s in args.silence_symbols.split(",")
        )
    if args.reject_symbols:
        given["reject_symbols"] = frozenset(
            s.strip().upper() for s in args.reject_symbols.split(",")
        )
    if args.fault_symbols:
        given["fault_symbols"] = frozenset(s.strip().upper() for s in args.fault_symbols.split(","))
    return Scenario(**given)


def _on_signals(callback: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, callback)


if __name__ == "__main__":
    sys.exit(main())
