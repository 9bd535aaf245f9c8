"""What the simulated gateway answers to each request type, in the layout of the socket's version."""

from __future__ import annotations

import datetime as dt
import time
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from ibtargets.common.wire import encode_fields
from ibtargets.gateway.instruments import ContractQuery, all_instruments, encode_contract_details, match
from ibtargets.gateway.market import HistoricalError, HistoryQuery, bar_seconds, head_timestamp, historical_bars
from ibtargets.gateway.messages import CANCELLED_TEXT, PACING_TEXT, encode_error, error_text

if TYPE_CHECKING:
    from ibtargets.gateway.session import Session

#: Account values sent for reqAccountUpdates / reqAccountUpdatesMulti / reqAccountSummary. Real TWS sends
#: ~150 keys; these are the ones backends read, kept few because each costs the client time at connect.
ACCOUNT_VALUES: tuple[tuple[str, str, str], ...] = (
    ("AccountType", "INDIVIDUAL", ""),
    ("NetLiquidation", "1000000.00", "USD"),
    ("TotalCashValue", "1000000.00", "USD"),
    ("BuyingPower", "4000000.00", "USD"),
    ("AvailableFunds", "1000000.00", "USD"),
)


class Answer(NamedTuple):
    """Bytes to write for one request; ``error_code`` when the answer is an IB error."""

    data: bytes
    error_code: int | None = None


class Deferred(NamedTuple):
    """An answer too costly to build on the event loop: ``build`` runs in a worker thread.

    ``build`` must only read immutable values. ``ends_query``: the historical query is over once answered.
    """

    build: Callable[[], Answer]
    ends_query: bool = True


@dataclass(frozen=True)
class RequestSpec:
    """How to handle one request type: where its reqId is and what answers it."""

    req_id_index: int | None
    answer: Callable[[Session, list[str], int | None], Answer | Deferred | None]
    keeps_query: bool = False

    def req_id(self, fields: list[str]) -> int | None:
        """The request's reqId (None when the type has none).

        Raises:
            IndexError, ValueError: the field is missing or not an integer.
        """
        return None if self.req_id_index is None else int(fields[self.req_id_index])


def _error(session: Session, req_id: int, code: int, text: str | None = None) -> Answer:
    return Answer(encode_error(session.version, req_id, code, text or error_text(code, req_id)), code)


def _nothing(session: Session, fields: list[str], req_id: int | None) -> None:
    return None


_current_time_cache: list[Any] = [0, Answer(b"")]


def current_time(session: Session, fields: list[str], req_id: int | None) -> Answer:
    """reqCurrentTime → currentTime (epoch seconds; the frame is built once per second)."""
    now_s = int(time.time())
    if now_s != _current_time_cache[0]:
        _current_time_cache[:] = [now_s, Answer(encode_fields(49, 1, now_s))]
    return _current_time_cache[1]


def contract_details(session: Session, fields: list[str], req_id: int | None) -> Answer:
    """reqContractDetails → one contractDetails per match + end; unknown → error 200 and no end."""
    assert req_id is not None
    query = ContractQuery.from_fields(fields[3:15])
    today = dt.datetime.now(zoneinfo.ZoneInfo(session.gateway.config.time_zone)).date()
    found = match(query, all_instruments(today))
    if not found:
        return _error(session, req_id, 200)
    rows = [encode_contract_details(session.version, req_id, inst, today) for inst in found]
    return Answer(b"".join(rows) + encode_fields(52, 1, req_id))


def historical_data(session: Session, fields: list[str], req_id: int | None) -> Answer | Deferred:
    """reqHistoricalData → one historicalData frame (no end message below v196), or 162/200/321.

    Validation and pacing run at once; the bars are built off the event loop (:class:`Deferred`).
    """
    assert req_id is not None
    query_contract = ContractQuery.from_fields(fields[2:14])
    legs = int(fields[21] or 0) * 4 + 1 if query_contract.secType == "BAG" and len(fields) > 21 else 0
    query = HistoryQuery(end_date_time=fields[15], bar_size=fields[16], duration=fields[17],
                         use_rth=fields[18] not in ("", "0"), what_to_show=fields[19].upper(),
                         format_date=int(fields[20] or 1))
    keep_up_to_date = len(fields) > 21 + legs and fields[21 + legs] == "1"
    config = session.gateway.config
    now = dt.datetime.now(dt.UTC)
    found = match(query_contract, all_instruments(now.date()))
    if len(found) != 1:
        session.end_query(req_id)
        return _error(session, req_id, 200, error_text(200) if not found else
                      f"The contract description specified for {query_contract.symbol} is ambiguous.")
    inst = found[0]
    try:
        bar_s = bar_seconds(query.bar_size)
    except HistoricalError as exc:
        session.end_query(req_id)
        return _error(session, req_id, exc.code, exc.text)
    violation = session.gateway.pacer.check(
        config, time.monotonic(), identical_key=(inst.conId, inst.exchange, query),
        contract_key=(inst.conId, inst.exchange, query.what_to_show),
        weight=2 if query.what_to_show == "BID_ASK" else 1, bar_s=bar_s)
    if violation:
        session.end_query(req_id)
        session.gateway.note_pacing(session, req_id, violation)
        return _error(session, req_id, 162, PACING_TEXT)
    version = session.version

    def build() -> Answer:
        try:
            bars, start_text, end_text = historical_bars(inst, query, now, config.time_zone,
                                                         config.max_bars_per_request)
        except HistoricalError as exc:
            return Answer(encode_error(version, req_id, exc.code, exc.text), exc.code)
        flat = [value for bar in bars for value in bar.fields()]
        return Answer(encode_fields(17, req_id, start_text, end_text, len(bars), *flat))

    return Deferred(build, ends_query=not keep_up_to_date)


def cancel_historical_data(session: Session, fields: list[str], req_id: int | None) -> Answer:
    """cancelHistoricalData: an active query → 162 "cancelled"; unknown or finished → 366."""
    assert req_id is not None
    if session.end_query(req_id):
        return _error(session, req_id, 162, CANCELLED_TEXT.format(req_id=req_id))
    return _error(session, req_id, 366)


def head_timestamp_answer(session: Session, fields: list[str], req_id: int | None) -> Answer:
    """reqHeadTimeStamp → headTimestamp; unknown contract → 200."""
    assert req_id is not None
    query = ContractQuery.from_fields(fields[2:14])
    found = match(query, all_instruments())
    if len(found) != 1:
        return _error(session, req_id, 200)
    format_date = int(fields[17] or 1) if len(fields) > 17 else 1
    return Answer(encode_fields(88, req_id, head_timestamp(found[0], format_date)))


def positions(session: Session, fields: list[str], req_id: int | None) -> Answer:
    """reqPositions → positionEnd (the paper account holds nothing)."""
    return Answer(encode_fields(62, 1))


def open_orders(session: Session, fields: list[str], req_id: int | None) -> Answer:
    """reqOpenOrders / reqAllOpenOrders → openOrderEnd."""
    return Answer(encode_fields(53, 1))


def completed_orders(session: Session, fields: list[str], req_id: int | None) -> Answer:
    """reqCompletedOrders → completedOrdersEnd (no version field)."""
    return Answer(encode_fields(102))


def auto_open_orders(session: Session, fields: list[str], req_id: int | None) -> Answer | None:
    """reqAutoOpenOrders: only client ID 0 may bind TWS orders (327 otherwise)."""
    return None if session.client_id == 0 else _error(session, -1, 327)


def account_updates(session: Session, fields: list[str], req_id: int | None) -> Answer | None:
    """reqAccountUpdates(subscribe) → values, account time, accountDownloadEnd."""
    if fields[2] in ("0", ""):
        return None
    account = session.gateway.config.account
    rows = [encode_fields(6, 2, "AccountCode", account, "", account)]
    rows += [encode_fields(6, 2, key, value, currency, account) for key, value, currency in ACCOUNT_VALUES]
    now = dt.datetime.now(zoneinfo.ZoneInfo(session.gateway.config.time_zone))
    rows += [encode_fields(8, 1, f"{now:%H:%M}"), encode_fields(54, 1, account)]
    return Answer(b"".join(rows))


def account_updates_multi(session: Session, fields: list[str], req_id: int | None) -> Answer:
    """reqAccountUpdatesMulti → accountUpdateMulti rows + end."""
    account, model = session.gateway.config.account, fields[4] if len(fields) > 4 else ""
    rows = [encode_fields(73, 1, req_id, account, model, key, value, currency)
            for key, value, currency in ACCOUNT_VALUES]
    return Answer(b"".join(rows) + encode_fields(74, 1, req_id))


def account_summary(session: Session, fields: list[str], req_id: int | None) -> Answer:
    """reqAccountSummary → the requested tags we know + accountSummaryEnd."""
    tags = {tag.strip() for tag in fields[4].split(",")} if len(fields) > 4 else set()
    account = session.gateway.config.account
    rows = [encode_fields(63, 1, req_id, account, key, value, currency)
            for key, value, currency in ACCOUNT_VALUES if not tags or key in tags]
    return Answer(b"".join(rows) + encode_fields(64, 1, req_id))


def executions(session: Session, fields: list[str], req_id: int | None) -> Answer:
    """reqExecutions → execDetailsEnd (no executions on the simulated account)."""
    return Answer(encode_fields(55, 1, req_id))


def next_ids(session: Session, fields: list[str], req_id: int | None) -> Answer:
    """reqIds → nextValidId."""
    return Answer(encode_fields(9, 1, session.next_order_id))


def managed_accounts(session: Session, fields: list[str], req_id: int | None) -> Answer:
    """reqManagedAccts → managedAccounts."""
    return Answer(encode_fields(15, 1, session.gateway.config.account))


def market_data(session: Session, fields: list[str], req_id: int | None) -> Answer:
    """reqMktData / reqRealTimeBars: the paper account has no market-data subscription (354)."""
    assert req_id is not None
    return _error(session, req_id, 354, "Requested market data is not subscribed.")


#: Outgoing message id → how it is handled. Types missing here are recorded as unsupported.
REQUESTS: dict[int, RequestSpec] = {
    49: RequestSpec(None, current_time),
    9: RequestSpec(2, contract_details),
    20: RequestSpec(1, historical_data, keeps_query=True),
    25: RequestSpec(2, cancel_historical_data),
    87: RequestSpec(1, head_timestamp_answer),
    90: RequestSpec(1, _nothing),
    61: RequestSpec(None, positions),
    64: RequestSpec(None, _nothing),
    5: RequestSpec(None, open_orders),
    16: RequestSpec(None, open_orders),
    15: RequestSpec(None, auto_open_orders),
    99: RequestSpec(None, completed_orders),
    6: RequestSpec(None, account_updates),
    76: RequestSpec(2, account_updates_multi),
    77: RequestSpec(2, _nothing),
    62: RequestSpec(2, account_summary),
    63: RequestSpec(2, _nothing),
    7: RequestSpec(2, executions),
    8: RequestSpec(None, next_ids),
    17: RequestSpec(None, managed_accounts),
    59: RequestSpec(None, _nothing),
    14: RequestSpec(None, _nothing),
    1: RequestSpec(2, market_data),
    2: RequestSpec(2, _nothing),
    50: RequestSpec(2, market_data),
    51: RequestSpec(2, _nothing),
}
