"""The Toxiproxy-style JSON control API shared by the gateway simulator and the fault proxy.

This module is the protocol both sides share (the token, the write methods, addresses). The server is
:class:`ibtargets.common.control_server.ControlServer`, a tiny asyncio HTTP/1.1 server (one request per
connection, bounded reads) routing to a fault target; the client is
:class:`ibtargets.common.control_client.ControlClient`, a blocking ``requests`` wrapper used by tests and the
suite.

Routes (every body is JSON):

=======  ======================  =================================================
GET      /health                 ``{"status": "ok", "role": ...}``
GET      /faults                 ``{"faults": [fault, ...]}``
POST     /faults                 apply ``fault`` → 201 ``fault`` (replaces same name)
DELETE   /faults/{name}          heal → 204 (also when not active)
POST     /reset                  heal every fault → 204
GET      /connections            ``{"connections": [connection, ...]}``
GET      /history?since=N        ``{"events": [event, ...], "last_seq": N}``
=======  ======================  =================================================

A fault is ``{"name", "kind", "client_id", "attributes"}`` (see :mod:`ibtargets.common.faults`).
Errors are ``{"error": message}`` with 400 (bad input), 401 (token missing or wrong), 403 (a
non-loopback ``Origin``, or a non-loopback ``Host`` on a loopback server), 404, 405 or 415 (a
write without ``Content-Type: application/json``).

Access: the server binds loopback by default. Binding anywhere else needs a token
(:func:`check_control_bind`); with a token every request must carry ``Authorization: Bearer TOKEN``.
Writes must be ``application/json``, which a web page cannot send cross-origin without a CORS
preflight this server never grants, and a request from a non-loopback page (``Origin``) is refused.
"""

from __future__ import annotations

import ipaddress
import os
import re

#: Environment variable holding the control token (servers and :class:`ControlClient` read it).
TOKEN_ENV = "IB_RESILIENCE_CONTROL_TOKEN"
#: Methods that change something: they must send ``Content-Type: application/json``.
WRITE_METHODS = frozenset({"POST", "PUT", "DELETE"})
_TOKEN_RE = re.compile(r"[\x21-\x7e]+")  # visible ASCII: it travels in an HTTP header


def is_loopback_host(host: str | None) -> bool:
    """Whether ``host`` (an IP literal, optionally in brackets, or a name) is this machine's loopback.

    Names other than ``localhost`` (and ``*.localhost``) are not resolved and count as remote.
    """
    if not host:
        return False  # "" binds every interface
    host = host.strip().strip("[]").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def valid_token(token: str) -> bool:
    """Whether ``token`` can be sent as ``Authorization: Bearer TOKEN`` (visible ASCII, no spaces)."""
    return bool(_TOKEN_RE.fullmatch(token))


def token_from_env() -> str | None:
    """The control token of the environment (:data:`TOKEN_ENV`), None when unset or empty."""
    return os.environ.get(TOKEN_ENV) or None


def control_url(host: str, port: int | None) -> str:
    """``http://host:port`` of a control API bound to ``host`` (a wildcard address is reached on loopback)."""
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"
