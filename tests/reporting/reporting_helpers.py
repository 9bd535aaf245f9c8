"""Helpers of the reporting tests: bounded subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest


def run_bounded(command: list[str], timeout_s: float, **kwargs) -> subprocess.CompletedProcess:
    """Run a command in its own process group; on overrun the whole group is killed and the test fails."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True, **kwargs)
    try:
        output, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=20.0)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate(timeout=5.0)
        pytest.fail(f"{' '.join(command[:4])} … took more than {timeout_s:.0f} s:\n{output[-3000:]}")
    return subprocess.CompletedProcess(command, process.returncode, output, "")
