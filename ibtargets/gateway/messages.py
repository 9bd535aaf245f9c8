"""Server → client messages whose layout depends on the negotiated version, and IB's standard texts."""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo

from ibtargets.common.wire import encode_fields

#: From this server version the error message carries a trailing advancedOrderRejectJson field.
ADVANCED_REJECT_VERSION = 166

#: IB's wire texts for the codes the simulator sends (shared/ib-protocol.md §3.3).
ERROR_TEXTS: dict[int, str] = {
    100: "Max rate of messages per second has been exceeded.",
    162: "Historical Market Data Service error message:Historical data request pacing violation",
    200: "No security definition has been found for the request",
    320: "Error reading request.",
    321: "Error validating request.",
    326: "Unable to connect as the client id is already in use. Retry with a unique client id.",
    327: "Only API connections with clientId set to 0 can set the auto bind TWS orders property.",
    366: "No historical data query found for ticker id:{req_id}",
    1100: "Connectivity between IB and Trader Workstation has been lost.",
    1101: "Connectivity between IB and Trader Workstation has been restored - data lost.",
    1102: "Connectivity between IB and Trader Workstation has been restored - data maintained.",
    1300: "TWS socket port has been reset and this connection is being dropped. Please reconnect on the new port",
    2103: "Market data farm connection is broken:usfarm",
    2104: "Market data farm connection is OK:usfarm",
    2105: "HMDS data farm connection is broken:ushmds",
    2106: "HMDS data farm connection is OK:ushmds",
    2107: "HMDS data farm connection is inactive but should be available upon demand.ushmds",
    2108: "Market data farm connection is inactive but should be available upon demand.usfarm",
    2110: "Connectivity between Trader Workstation and server is broken. It will be restored automatically.",
    2157: "Sec-def data farm connection is broken:secdefil",
    2158: "Sec-def data farm connection is OK:secdefil",
}

PACING_TEXT = ERROR_TEXTS[162]
CANCELLED_TEXT = "Historical Market Data Service error message:API historical data query cancelled: {req_id}"
NO_DATA_TEXT = "Historical Market Data Service error message:HMDS query returned no data: {what}"
TOO_LONG_TEXT = "Historical Market Data Service error message:Time length exceed max."

#: Farm notices sent after startApi while IB is reachable, and when connectivity is lost (a typical
#: paper login shows these three; each costs the client measurable time at connect).
FARMS_OK: tuple[tuple[int, str], ...] = (
    (2104, "Market data farm connection is OK:usfarm"),
    (2106, "HMDS data farm connection is OK:ushmds"),
    (2158, "Sec-def data farm connection is OK:secdefil"),
)
FARMS_BROKEN: tuple[tuple[int, str], ...] = (
    (2103, "Market data farm connection is broken:usfarm"),
    (2105, "HMDS data farm connection is broken:ushmds"),
    (2157, "Sec-def data farm connection is broken:secdefil"),
)


def error_text(code: int, req_id: int = -1) -> str:
    """IB's standard text for ``code`` (a generic one for codes the simulator does not know)."""
    return ERROR_TEXTS.get(code, f"Error {code}").format(req_id=req_id)


def encode_error(version: int, req_id: int, code: int, text: str) -> bytes:
    """An error frame in the layout of ``version`` (5 fields below 166, 6 from 166)."""
    if version >= ADVANCED_REJECT_VERSION:
        return encode_fields(4, 2, req_id, code, text, "")
    return encode_fields(4, 2, req_id, code, text)


def encode_handshake(version: int, time_zone: str, now: dt.datetime | None = None) -> bytes:
    """The handshake reply: exactly two fields, the version and the TWS-local connection time."""
    zone = zoneinfo.ZoneInfo(time_zone)
    moment = (now or dt.datetime.now(dt.UTC)).astimezone(zone)
    return encode_fields(version, moment.strftime("%Y%m%d %H:%M:%S ") + (moment.tzname() or "UTC"))


@functools.lru_cache(maxsize=64)
def encode_notices(version: int, notices: tuple[tuple[int, str], ...]) -> bytes:
    """Connection-level notices (reqId -1) as one buffer."""
    return b"".join(encode_error(version, -1, code, text) for code, text in notices)
