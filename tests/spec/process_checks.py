"""What a stopped run must leave behind (nothing), checked from outside with psutil and a TCP probe."""

from __future__ import annotations

import socket

import psutil


def listening(process: psutil.Process) -> list:
    """The listening sockets of ``process`` (none once it is gone)."""
    try:
        return [c for c in process.net_connections() if c.status == psutil.CONN_LISTEN]
    except psutil.Error:
        return []


def port_free(port: int) -> bool:
    """Nothing accepts connections on loopback ``port``."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def gone(process: psutil.Process) -> bool:
    """The process has ended (a zombie waiting for its parent counts as ended)."""
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
