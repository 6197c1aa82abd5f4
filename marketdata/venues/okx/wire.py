"""OKX v5 public WebSocket (`wss://ws.okx.com:8443/ws/v5/public`) frames -> OKX events.
Pure, no I/O.

    {"arg": {"channel": "books", "instId": "BTC-USDT"}, "action": "update",
     "data": [{"asks": [["30261", "4", "0", "1"]], "bids": [], "ts": "1652459225464",
               "checksum": -914047754, "prevSeqId": 123, "seqId": 130}]}

Every price and size is a JSON string, kept as the exchange's text (a level is
marketdata.events.Level: the float only orders it). `checksum` is a signed 32-bit int
(0 since OKX voided it in production); `seqId`/`prevSeqId` are absent on older feeds (the
2022 recording). Replies are `{"event": "subscribe"|"unsubscribe", "arg": {...}}`,
`{"event": "error", "code": "60012", "msg": ...}` (which may not name the arg) and
`{"event": "notice", "code": "64008", ...}`; the keepalive reply is the bare text `pong`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from marketdata.events import Level, Trade
from marketdata.venues.base import KNOWN_DECIMALS, MAX_ID, MalformedMessage, decimal_value

NAME = "okx"
WS_URL = "wss://ws.okx.com:8443/ws/v5/public"
REST_URL = "https://www.okx.com"


@dataclass(slots=True)
class BookMessage:
    """One `books` message of one instrument: an in-band snapshot or an update."""

    inst_id: str
    snapshot: bool  # action "snapshot": replaces the book
    bids: list[Level]
    asks: list[Level]
    checksum: int  # signed CRC32 of the top 25 levels after this message; 0: not sent
    seq_id: int | None  # seqId: this message's sequence number (None: not sent)
    prev_seq_id: int | None  # prevSeqId: the seqId of the message before (-1: snapshot)
    exchange_ts: int  # ms
    recv_ts: float


@dataclass(slots=True)
class RestBook:
    """`GET /api/v5/market/books` for one instrument: the book as of `seq_id`."""

    inst_id: str
    bids: list[Level]
    asks: list[Level]
    seq_id: int
    exchange_ts: int
    recv_ts: float


@dataclass(slots=True)
class Trades:
    """The trades of one `trades` frame, each with its `count` (trades aggregated into it:
    its tradeId is the last of them; 1 where the field is absent)."""

    trades: list[Trade]
    counts: list[int]


@dataclass(slots=True)
class Bbo:
    """Best bid/offer, from `bbo-tbt` (with seqId in production) or `tickers`."""

    inst_id: str
    bid_price: str
    bid_qty: str
    ask_price: str
    ask_qty: str
    seq_id: int | None
    exchange_ts: int
    recv_ts: float


@dataclass(slots=True)
class Reply:
    """A subscribe or unsubscribe confirmed, for one channel of one instrument."""

    event: str  # "subscribe" | "unsubscribe"
    channel: str
    inst_id: str | None
    conn_id: str | None


@dataclass(slots=True)
class ErrorReply:
    """`event: error`: a request refused. It may not say which argument."""

    code: str
    msg: str
    conn_id: str | None


@dataclass(slots=True)
class Notice:
    """`event: notice` (64008: the connection will be cut for an upgrade in 30 s)."""

    code: str
    msg: str
    conn_id: str | None


@dataclass(slots=True)
class Pong:
    pass


OkxEvent = BookMessage | Trades | Bbo | Reply | ErrorReply | Notice | Pong
_PONG = (Pong(),)


def parse(frame: bytes | str, recv_ts: float) -> Sequence[OkxEvent]:
    """Events in one frame. Raises MalformedMessage naming what is wrong."""
    if frame == b"pong" or frame == "pong":
        return _PONG
    try:
        message = orjson.loads(frame)
    except orjson.JSONDecodeError as e:
        raise MalformedMessage("bad_json", str(e)) from None
    if type(message) is not dict:
        raise MalformedMessage("bad_shape", "frame is not a JSON object")
    try:
        arg = message.get("arg")
        if "data" in message:
            if type(arg) is not dict:
                raise MalformedMessage("bad_shape", "data without an 'arg' object")
            channel = arg["channel"]
            handler = _CHANNELS.get(channel)
            if handler is None:
                raise MalformedMessage("unknown_channel", f"channel {channel!r}")
            return handler(message, _text(arg["instId"], "instId"), recv_ts)
        return (_event(message),)
    except KeyError as e:
        raise MalformedMessage("missing_field", f"no {e} in {_head(frame)}") from None
    except (TypeError, AttributeError, ValueError) as e:
        if isinstance(e, MalformedMessage):
            raise
        raise MalformedMessage("bad_shape", f"{e} in {_head(frame)}") from None


def _event(message: dict[str, Any]) -> Reply | ErrorReply | Notice:
    event = message.get("event")
    conn_id = message.get("connId")
    conn = None if conn_id is None else str(conn_id)
    if event == "subscribe" or event == "unsubscribe":
        arg = message["arg"]
        inst = arg.get("instId")
        return Reply(event, _text(arg["channel"], "channel"), _opt_text(inst, "instId"), conn)
    if event == "error":
        return ErrorReply(str(message.get("code", "")), str(message.get("msg", "")), conn)
    if event == "notice":
        return Notice(str(message.get("code", "")), str(message.get("msg", "")), conn)
    if event == "channel-conn-count" or event == "channel-conn-count-error":
        # how many connections hold a channel (told for some channels since 2024)
        detail = f"{message.get('channel')} on {message.get('connCount')} connection(s)"
        return Notice(event, detail, conn)
    raise MalformedMessage("unknown_message", f"no data, event {event!r}")


def _books(message: dict[str, Any], inst_id: str, recv_ts: float) -> list[BookMessage]:
    action = message.get("action")
    if action == "update":
        snapshot = False
    elif action == "snapshot":
        snapshot = True
    else:
        raise MalformedMessage("bad_field", f"{inst_id} books action {action!r}")
    out = []
    for entry in _data(message, inst_id):
        checksum = entry.get("checksum", 0)
        if type(checksum) is not int or not -(1 << 31) <= checksum < 1 << 31:
            raise MalformedMessage("bad_checksum", f"{inst_id} checksum {checksum!r}")
        out.append(
            BookMessage(
                inst_id,
                snapshot,
                levels(entry["bids"], inst_id, "bids"),
                levels(entry["asks"], inst_id, "asks"),
                checksum,
                _seq(entry.get("seqId"), inst_id, "seqId"),
                _seq(entry.get("prevSeqId"), inst_id, "prevSeqId"),
                to_ms(entry["ts"], inst_id),
                recv_ts,
            )
        )
    return out


def levels(raw: Any, inst_id: str, side: str) -> list[Level]:
    """[[px, sz, "0", nOrders], ...] -> Levels, the texts checked canonical (sz "0" deletes)."""
    if type(raw) is not list:
        raise MalformedMessage("bad_field", f"{inst_id} {side} is not a list")
    known = KNOWN_DECIMALS
    out = []
    for entry in raw:
        if type(entry) is not list or len(entry) < 2:
            raise MalformedMessage("bad_level", f"{inst_id} {side} entry {entry!r}")
        price_text, qty_text = entry[0], entry[1]
        try:
            price, qty = known.get(price_text), known.get(qty_text)
        except TypeError:  # unhashable: a list or an object where a string should be
            raise MalformedMessage("bad_type", f"{inst_id} {side}: {entry!r}") from None
        if price is None:
            price = decimal_value(price_text, f"{inst_id} {side}")
        if qty is None:
            qty = decimal_value(qty_text, f"{inst_id} {side}")
        if not price:
            raise MalformedMessage("bad_level", f"{inst_id} {side}: {entry!r} price 0")
        out.append((price, qty, price_text, qty_text))
    return out


def _trades(message: dict[str, Any], inst_id: str, recv_ts: float) -> list[Trades]:
    trades, counts = [], []
    for entry in _data(message, inst_id):
        symbol = _text(entry["instId"], "instId")
        where = f"{symbol} trade"
        price_text, qty_text = entry["px"], entry["sz"]
        price = decimal_value(price_text, f"{where} px")
        qty = decimal_value(qty_text, f"{where} sz")
        if not price or not qty:
            raise MalformedMessage("bad_number", f"{where}: px {price_text!r} sz {qty_text!r}")
        side = entry["side"]
        if side != "buy" and side != "sell":
            raise MalformedMessage("bad_field", f"{where} side {side!r}")
        trade_id = _text(entry["tradeId"], f"{where} tradeId")
        if not trade_id:
            raise MalformedMessage("bad_field", f"{where}: empty tradeId")
        count = entry.get("count", "1")
        if type(count) is not str or not count.isdigit() or not count.isascii() or count == "0":
            raise MalformedMessage("bad_field", f"{where} count {count!r}")
        trades.append(
            Trade(
                exchange=NAME,
                symbol=symbol,
                trade_id=trade_id,
                price=price,
                qty=qty,
                price_text=price_text,
                qty_text=qty_text,
                side=side,
                exchange_ts=to_ms(entry["ts"], symbol),
                recv_ts=recv_ts,
                sequence=_sequence(trade_id),
            )
        )
        counts.append(int(count))
    return [Trades(trades, counts)]


def _sequence(trade_id: str) -> int | None:
    """The id as a counter when it is ASCII digits below MAX_ID (it is, per instrument)."""
    if trade_id.isdigit() and trade_id.isascii() and len(trade_id) < 16:
        value = int(trade_id)
        return value if value < MAX_ID else None
    return None


def _bbo_tbt(message: dict[str, Any], inst_id: str, recv_ts: float) -> list[Bbo]:
    out = []
    for entry in _data(message, inst_id):
        bids = levels(entry["bids"], inst_id, "bids")
        asks = levels(entry["asks"], inst_id, "asks")
        if not bids or not asks:
            raise MalformedMessage("bad_field", f"{inst_id} bbo-tbt without a bid and an ask")
        bid, ask = bids[0], asks[0]
        out.append(
            Bbo(
                inst_id, bid[2], bid[3], ask[2], ask[3], _seq(entry.get("seqId"), inst_id, "seqId"),
                to_ms(entry["ts"], inst_id), recv_ts,
            )
        )  # fmt: skip
    return out


def _tickers(message: dict[str, Any], inst_id: str, recv_ts: float) -> list[Bbo]:
    out = []
    for entry in _data(message, inst_id):
        bid, bid_qty, ask, ask_qty = (_ticker_text(entry, key, inst_id) for key in _TICKER_KEYS)
        out.append(
            Bbo(inst_id, bid, bid_qty, ask, ask_qty, None, to_ms(entry["ts"], inst_id), recv_ts)
        )
    return out


_TICKER_KEYS = ("bidPx", "bidSz", "askPx", "askSz")


def _ticker_text(entry: dict[str, Any], key: str, inst_id: str) -> str:
    text = entry[key]
    decimal_value(text, f"{inst_id} ticker {key}")
    return _text(text, key)


def parse_rest_book(body: bytes, inst_id: str, recv_ts: float) -> RestBook:
    """The body of `GET /api/v5/market/books?instId=..&sz=400&source=0`. Raises
    MalformedMessage (an OKX error code in a 200 reply included)."""
    try:
        message = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise MalformedMessage("bad_json", f"{inst_id} books snapshot: {e}") from None
    try:
        code = message["code"]
        if code != "0":
            raise MalformedMessage(
                "rest_error", f"{inst_id} books: code {code} {message.get('msg')}"
            )
        (entry,) = message["data"]
        seq = entry["seqId"]
        seq_id = int(seq) if type(seq) is str and seq.isdigit() else seq
        return RestBook(
            inst_id,
            levels(entry["bids"], inst_id, "bids"),
            levels(entry["asks"], inst_id, "asks"),
            _required_seq(seq_id, inst_id),
            to_ms(entry["ts"], inst_id),
            recv_ts,
        )
    except KeyError as e:
        raise MalformedMessage("missing_field", f"{inst_id} books snapshot has no {e}") from None
    except (TypeError, ValueError, AttributeError) as e:
        if isinstance(e, MalformedMessage):
            raise
        raise MalformedMessage("bad_shape", f"{inst_id} books snapshot: {e}") from None


def _required_seq(value: Any, inst_id: str) -> int:
    seq = _seq(value, inst_id, "seqId")
    if seq is None:
        raise MalformedMessage("missing_field", f"{inst_id} books snapshot has no seqId")
    return seq


def _seq(value: Any, inst_id: str, key: str) -> int | None:
    """A seqId/prevSeqId: an integer, -1 allowed (a snapshot's prevSeqId), None if absent."""
    if value is None:
        return None
    if type(value) is not int or not -1 <= value < MAX_ID:
        raise MalformedMessage("bad_ids", f"{inst_id} {key} {value!r}")
    return value


def _data(message: dict[str, Any], inst_id: str) -> list[Any]:
    data = message["data"]
    if type(data) is not list:
        raise MalformedMessage("bad_shape", f"{inst_id} 'data' is not a list")
    return data


def to_ms(value: Any, where: str) -> int:
    """OKX times: Unix ms as a string of digits."""
    if type(value) is not str or not value.isdigit() or not value.isascii() or len(value) > 15:
        raise MalformedMessage("bad_field", f"{where} ts {value!r}")
    return int(value)


def _text(value: Any, where: str) -> str:
    if type(value) is not str:
        raise MalformedMessage("bad_type", f"{where} {value!r} is not a string")
    return value


def _opt_text(value: Any, where: str) -> str | None:
    return None if value is None else _text(value, where)


def _head(frame: bytes | str) -> str:
    text = frame.decode(errors="replace") if isinstance(frame, bytes) else frame
    return repr(text[:80])


_Handler = Callable[[dict[str, Any], str, float], Sequence[OkxEvent]]
_CHANNELS: dict[Any, _Handler] = {
    "books": _books,
    "trades": _trades,
    "bbo-tbt": _bbo_tbt,
    "tickers": _tickers,
}
