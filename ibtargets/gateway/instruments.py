"""The simulator's built-in instrument table, contract matching and the contractDetails layouts."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass, replace

from ibtargets.common.wire import encode_fields

#: contractDetails carries no version field and gains minSize/sizeIncrement/suggested from here on.
SIZE_RULES_VERSION = 164

STOCK_ORDER_TYPES = (
    "ACTIVETIM,AD,ADJUST,ALERT,ALGO,ALLOC,AVGCOST,BASKET,BENCHPX,CASHQTY,COND,CONDORDER,DARKONLY,DARKPOLL,"
    "DAY,DEACT,DEACTDIS,DEACTEOD,DIS,DUR,GAT,GTC,GTD,GTT,HID,IBKRATS,ICE,IMB,IOC,LIT,LMT,LOC,MIDPX,MIT,MKT,"
    "MOC,MTL,NGCOMB,NODARK,NONALGO,OCA,OPG,OPGREROUT,PEGBENCH,PEGMID,POSTATS,POSTONLY,PREOPGRTH,PRICECHK,"
    "REL,REL2MID,RELPCTOFS,RPI,RTH,SCALE,SCALEODD,SCALERST,SIZECHK,SNAPMID,SNAPMKT,SNAPREL,STP,STPLMT,SWEEP,"
    "TRAIL,TRAILLIT,TRAILLMT,TRAILMIT,WHATIF")
FX_ORDER_TYPES = ("ACTIVETIM,AD,ADJUST,ALERT,ALGO,ALLOC,AVGCOST,BASKET,CASHQTY,COND,CONDORDER,DAY,DEACT,"
                  "DEACTDIS,DEACTEOD,GAT,GTC,GTD,GTT,HID,IOC,LIT,LMT,MIT,MKT,NONALGO,OCA,REL,RELPCTOFS,"
                  "SCALE,SCALERST,STP,STPLMT,TRAIL,TRAILLIT,TRAILLMT,TRAILMIT,WHATIF")
FUT_ORDER_TYPES = ("ACTIVETIM,AD,ADJUST,ALERT,ALLOC,AVGCOST,BASKET,COND,CONDORDER,DAY,DEACT,DEACTDIS,"
                   "DEACTEOD,GAT,GTC,GTD,GTT,HID,ICE,IOC,LIT,LMT,LTH,MIT,MKT,MTL,NGCOMB,NONALGO,OCA,"
                   "SCALE,SCALERST,SNAPMID,SNAPMKT,SNAPREL,STP,STPLMT,TRAIL,TRAILLIT,TRAILLMT,TRAILMIT,WHATIF")
STOCK_EXCHANGES = ("SMART,AMEX,NYSE,CBOE,PHLX,ISE,CHX,ARCA,ISLAND,DRCTEDGE,BEX,BATS,EDGEA,BYX,IEX,EDGX,"
                   "FOXRIVER,PEARL,NYSENAT,LTSE,MEMX,IBEOS,OVERNIGHT,TPLUS0,PSX")

_WEEKDAYS = range(5)


@dataclass(frozen=True)
class Instrument:
    """One contract the simulator knows, with its details and trading sessions.

    Session bounds are minutes from the trading day's local midnight; a negative open means the session
    starts the evening before (futures, forex).
    """

    conId: int
    symbol: str
    secType: str
    exchange: str
    primaryExchange: str
    currency: str
    localSymbol: str
    marketName: str
    tradingClass: str
    minTick: float
    longName: str
    timeZoneId: str
    rth_min: tuple[int, int]
    eth_min: tuple[int, int]
    base_price: float
    base_volume: int
    head_utc: dt.datetime
    orderTypes: str = STOCK_ORDER_TYPES
    validExchanges: str = STOCK_EXCHANGES
    multiplier: str = ""
    lastTradeDateOrContractMonth: str = ""
    contractMonth: str = ""
    underConId: int = 0
    underSymbol: str = ""
    underSecType: str = ""
    industry: str = ""
    category: str = ""
    subcategory: str = ""
    isin: str = ""
    stockType: str = ""
    aggGroup: int = 1
    marketRule: int = 26
    minSize: str = "0.0001"
    sizeIncrement: str = "0.0001"
    suggestedSizeIncrement: str = "100"

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        """The instrument's exchange time zone."""
        return zoneinfo.ZoneInfo(self.timeZoneId)

    def session_minutes(self, use_rth: bool) -> tuple[int, int]:
        """(open, close) in minutes from the trading day's midnight."""
        return self.rth_min if use_rth else self.eth_min

    def session(self, day: dt.date, use_rth: bool) -> tuple[dt.datetime, dt.datetime] | None:
        """The UTC (open, close) of trading day ``day``, or None on a weekend."""
        if day.weekday() not in _WEEKDAYS:
            return None
        midnight = dt.datetime(day.year, day.month, day.day, tzinfo=self.zone)
        open_min, close_min = self.session_minutes(use_rth)
        return (_local_plus(midnight, open_min).astimezone(dt.UTC),
                _local_plus(midnight, close_min).astimezone(dt.UTC))

    def hours_text(self, use_rth: bool, today: dt.date) -> str:
        """tradingHours / liquidHours for the week from ``today`` (IB's ``YYYYMMDD:HHMM-YYYYMMDD:HHMM``)."""
        parts = []
        for offset in range(7):
            day = today + dt.timedelta(days=offset)
            session = self.session(day, use_rth)
            if session is None:
                parts.append(f"{day:%Y%m%d}:CLOSED")
                continue
            start, end = (t.astimezone(self.zone) for t in session)
            parts.append(f"{start:%Y%m%d:%H%M}-{end:%Y%m%d:%H%M}")
        return ";".join(parts)


def number_text(value: float) -> str:
    """A price as plain decimal text (``0.00005``, never ``5e-05``)."""
    text = f"{value:.10f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def _local_plus(midnight: dt.datetime, minutes: int) -> dt.datetime:
    """Local wall-clock time ``minutes`` after a local midnight (DST-correct)."""
    naive = midnight.replace(tzinfo=None) + dt.timedelta(minutes=minutes)
    return naive.replace(tzinfo=midnight.tzinfo)


def _utc(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y%m%d-%H:%M:%S").replace(tzinfo=dt.UTC)


def _stock(conId: int, symbol: str, primary: str, market: str, name: str, industry: str, category: str,
           sub: str, isin: str, price: float, volume: int, head: str, stock_type: str = "COMMON") -> Instrument:
    return Instrument(conId=conId, symbol=symbol, secType="STK", exchange="SMART", primaryExchange=primary,
                      currency="USD", localSymbol=symbol, marketName=market, tradingClass=market,
                      minTick=0.01, longName=name, timeZoneId="US/Eastern", rth_min=(570, 960),
                      eth_min=(240, 1200), base_price=price, base_volume=volume, head_utc=_utc(head),
                      industry=industry, category=category, subcategory=sub, isin=isin, stockType=stock_type)


def _forex(conId: int, base: str, quote: str, name: str, tick: float, price: float) -> Instrument:
    local = f"{base}.{quote}"
    return Instrument(conId=conId, symbol=base, secType="CASH", exchange="IDEALPRO", primaryExchange="",
                      currency=quote, localSymbol=local, marketName=local, tradingClass=local, minTick=tick,
                      longName=name, timeZoneId="US/Eastern", rth_min=(-405, 1020), eth_min=(-405, 1020),
                      base_price=price, base_volume=0, head_utc=_utc("20050301-00:00:00"),
                      orderTypes=FX_ORDER_TYPES, validExchanges="IDEALPRO", marketRule=239,
                      minSize="0.01", sizeIncrement="0.01", suggestedSizeIncrement="0.01", stockType="")


STATIC_INSTRUMENTS: tuple[Instrument, ...] = (
    _stock(265598, "AAPL", "NASDAQ", "NMS", "APPLE INC", "Technology", "Computers", "Computers",
           "US0378331005", 190.0, 55_000_000, "19801212-14:30:00"),
    _stock(272093, "MSFT", "NASDAQ", "NMS", "MICROSOFT CORP", "Technology", "Software", "Software",
           "US5949181045", 420.0, 22_000_000, "19860313-14:30:00"),
    _stock(8314, "IBM", "NYSE", "IBM", "INTL BUSINESS MACHINES CORP", "Technology", "Computers",
           "Computer Services", "US4592001014", 185.0, 4_000_000, "19800317-14:30:00"),
    _stock(756733, "SPY", "ARCA", "SPY", "SPDR S&P 500 ETF TRUST", "", "", "", "US78462F1030", 550.0,
           60_000_000, "19930129-14:30:00", stock_type="ETF"),
    # More real US stocks, so a suite can rotate symbols (backends pace repeated lookups of one symbol).
    _stock(208813719, "GOOGL", "NASDAQ", "NMS", "ALPHABET INC-CL A", "Communications", "Internet",
           "Web Portals/ISP", "US02079K3059", 170.0, 25_000_000, "20040819-14:30:00"),
    _stock(3691937, "AMZN", "NASDAQ", "NMS", "AMAZON.COM INC", "Communications", "Internet",
           "E-Commerce/Products", "US0231351067", 185.0, 40_000_000, "19970515-14:30:00"),
    _stock(4815747, "NVDA", "NASDAQ", "NMS", "NVIDIA CORP", "Technology", "Semiconductors",
           "Electronic Compo-Semicon", "US67066G1040", 120.0, 300_000_000, "19990122-14:30:00"),
    _stock(76792991, "TSLA", "NASDAQ", "NMS", "TESLA INC", "Consumer, Cyclical", "Auto Manufacturers",
           "Auto-Cars/Light Trucks", "US88160R1014", 250.0, 90_000_000, "20100629-14:30:00"),
    _stock(107113386, "META", "NASDAQ", "NMS", "META PLATFORMS INC-CLASS A", "Communications", "Internet",
           "Internet Content-Entmnt", "US30303M1027", 500.0, 15_000_000, "20120518-14:30:00"),
    _stock(1520593, "JPM", "NYSE", "JPM", "JPMORGAN CHASE & CO", "Financial", "Banks",
           "Money Center Banks", "US46625H1005", 200.0, 9_000_000, "19800317-14:30:00"),
    _stock(13977, "XOM", "NYSE", "XOM", "EXXON MOBIL CORP", "Energy", "Oil&Gas", "Oil Comp-Integrated",
           "US30231G1022", 115.0, 16_000_000, "19800317-14:30:00"),
    _stock(8894, "KO", "NYSE", "KO", "COCA-COLA CO/THE", "Consumer, Non-cyclical", "Beverages",
           "Beverages-Non-alcoholic", "US1912161007", 62.0, 12_000_000, "19800317-14:30:00"),
    _stock(270639, "INTC", "NASDAQ", "NMS", "INTEL CORP", "Technology", "Semiconductors",
           "Electronic Compo-Semicon", "US4581401001", 30.0, 50_000_000, "19800317-14:30:00"),
    _stock(320227571, "QQQ", "NASDAQ", "NMS", "INVESCO QQQ TRUST SERIES 1", "", "", "", "US46090E1038",
           480.0, 40_000_000, "19990310-14:30:00", stock_type="ETF"),
    _forex(12087792, "EUR", "USD", "European Monetary Union Euro", 0.00005, 1.08),
    _forex(15016059, "USD", "JPY", "US Dollar", 0.005, 150.0),
    Instrument(conId=416904, symbol="SPX", secType="IND", exchange="CBOE", primaryExchange="",
               currency="USD", localSymbol="SPX", marketName="SPX", tradingClass="SPX", minTick=0.01,
               longName="S&P 500 Stock Index", timeZoneId="US/Central", rth_min=(510, 900),
               eth_min=(510, 900), base_price=5500.0, base_volume=0, head_utc=_utc("19820420-13:30:00"),
               orderTypes="", validExchanges="CBOE", marketRule=0, minSize="", sizeIncrement="",
               suggestedSizeIncrement="", stockType="", aggGroup=2147483647),
)


def _third_friday(year: int, month: int) -> dt.date:
    first = dt.date(year, month, 1)
    return first + dt.timedelta(days=(4 - first.weekday()) % 7 + 14)


def es_futures(today: dt.date, count: int = 4) -> list[Instrument]:
    """The next ``count`` quarterly E-mini S&P 500 futures not expired on ``today``."""
    codes = {3: "H", 6: "M", 9: "U", 12: "Z"}
    out: list[Instrument] = []
    year, month = today.year, ((today.month - 1) // 3 + 1) * 3
    while len(out) < count:
        expiry = _third_friday(year, month)
        if expiry >= today:
            out.append(Instrument(
                conId=495512000 + (year % 100) * 100 + month, symbol="ES", secType="FUT", exchange="CME",
                primaryExchange="", currency="USD", localSymbol=f"ES{codes[month]}{year % 10}",
                marketName="ES", tradingClass="ES", minTick=0.25, longName="E-mini S&P 500",
                timeZoneId="US/Central", rth_min=(510, 900), eth_min=(-420, 960), base_price=5500.0,
                base_volume=1_500_000, head_utc=dt.datetime(expiry.year - 1, expiry.month, 1, 23,
                                                            tzinfo=dt.UTC),
                orderTypes=FUT_ORDER_TYPES, validExchanges="CME,QBALGO", multiplier="50",
                lastTradeDateOrContractMonth=f"{expiry:%Y%m%d}", contractMonth=f"{expiry:%Y%m}",
                underConId=11004968, underSymbol="ES", underSecType="IND", marketRule=67,
                minSize="1", sizeIncrement="1", suggestedSizeIncrement="1", stockType=""))
        month += 3
        if month > 12:
            year, month = year + 1, 3
    return out


def all_instruments(today: dt.date | None = None) -> list[Instrument]:
    """Every instrument the simulator knows on ``today`` (futures roll with the date)."""
    return list(STATIC_INSTRUMENTS) + es_futures(today or dt.date.today())


@dataclass(frozen=True)
class ContractQuery:
    """The contract block of a request (the 12 fields every client sends in this order)."""

    conId: int = 0
    symbol: str = ""
    secType: str = ""
    lastTradeDateOrContractMonth: str = ""
    strike: str = ""
    right: str = ""
    multiplier: str = ""
    exchange: str = ""
    primaryExchange: str = ""
    currency: str = ""
    localSymbol: str = ""
    tradingClass: str = ""

    @classmethod
    def from_fields(cls, fields: list[str]) -> ContractQuery:
        """Read the 12-field contract block.

        Raises:
            ValueError: too few fields or a non-integer conId.
        """
        if len(fields) < 12:
            raise ValueError(f"contract block needs 12 fields, got {len(fields)}")
        con_id = int(fields[0] or 0)
        return cls(con_id, *fields[1:12])

    def describe(self) -> str:
        """Short text for error messages, e.g. ``AAPL@SMART``."""
        return f"{self.symbol or self.localSymbol or self.conId}@{self.exchange or 'SMART'}"


def match(query: ContractQuery, instruments: list[Instrument]) -> list[Instrument]:
    """The instruments a request's contract block designates (possibly several futures)."""
    if query.conId:
        found = [i for i in instruments if i.conId == query.conId]
        return [_on_exchange(i, query.exchange) for i in found if _exchange_ok(i, query.exchange)]
    out = []
    for inst in instruments:
        if query.symbol and query.symbol.upper() != inst.symbol:
            continue
        if query.localSymbol and query.localSymbol.upper() != inst.localSymbol:
            continue
        if not (query.symbol or query.localSymbol):
            continue
        if query.secType and query.secType.upper() != inst.secType:
            continue
        if query.currency and query.currency.upper() != inst.currency:
            continue
        if query.lastTradeDateOrContractMonth and not inst.lastTradeDateOrContractMonth.startswith(
                query.lastTradeDateOrContractMonth[:8]) and not (
                len(query.lastTradeDateOrContractMonth) == 6
                and inst.contractMonth == query.lastTradeDateOrContractMonth):
            continue
        if query.multiplier and inst.multiplier and float(query.multiplier or 0) != float(inst.multiplier):
            continue
        if query.tradingClass and query.tradingClass.upper() != inst.tradingClass:
            continue
        if not _exchange_ok(inst, query.exchange):
            continue
        out.append(_on_exchange(inst, query.exchange))
    return out


def _exchange_ok(inst: Instrument, exchange: str) -> bool:
    wanted = exchange.upper()
    return not wanted or wanted in (inst.exchange, inst.primaryExchange) or wanted in inst.validExchanges.split(",")


def _on_exchange(inst: Instrument, exchange: str) -> Instrument:
    """The instrument as listed on the requested exchange (SMART when none was named)."""
    if exchange and exchange.upper() != inst.exchange:
        return replace(inst, exchange=exchange.upper())
    return inst


def encode_contract_details(version: int, req_id: int, inst: Instrument, today: dt.date) -> bytes:
    """One contractDetails frame in the layout of ``version`` (157 vs ≥164, see ib-protocol §2.3)."""
    strike = "0"
    market_rules = ",".join([str(inst.marketRule)] * len(inst.validExchanges.split(","))) if inst.marketRule else ""
    head: list[object] = [10]
    if version < SIZE_RULES_VERSION:
        head.append(8)
    head += [req_id, inst.symbol, inst.secType, inst.lastTradeDateOrContractMonth, strike, "", inst.exchange,
             inst.currency, inst.localSymbol, inst.marketName, inst.tradingClass, inst.conId, number_text(inst.minTick)]
    if version < SIZE_RULES_VERSION:
        head.append(1)  # mdSizeMultiplier, integral for ibapi
    sec_ids: list[object] = [1, "ISIN", inst.isin] if inst.isin else [0]
    body: list[object] = [
        inst.multiplier, inst.orderTypes, inst.validExchanges, 1, inst.underConId, inst.longName,
        inst.primaryExchange, inst.contractMonth, inst.industry, inst.category, inst.subcategory,
        inst.timeZoneId, inst.hours_text(False, today), inst.hours_text(True, today), "", "",
        *sec_ids, inst.aggGroup, inst.underSymbol, inst.underSecType, market_rules,
        inst.lastTradeDateOrContractMonth, inst.stockType]
    if version == SIZE_RULES_VERSION - 1:
        body.append(inst.suggestedSizeIncrement)
    elif version >= SIZE_RULES_VERSION:
        body += [inst.minSize, inst.sizeIncrement, inst.suggestedSizeIncrement]
    return encode_fields(*head, *body)
