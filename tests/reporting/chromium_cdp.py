"""Headless Chromium driven over the DevTools protocol on a pipe (no port, no extra package), every wait bounded."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
#: The flags the suite always uses: no GPU, no network side-traffic, no first-run work.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio")


class ChromiumError(RuntimeError):
    """Chromium did not start, died, or did not answer a command in time."""


def ensure_chromium(timeout_s: float = 600.0) -> str:
    """Return the Chromium binary, installing Debian's ``chromium`` package first if it is missing.

    Raises:
        ChromiumError: it is missing and could not be installed (the reason is in the message).
    """
    if Path(CHROMIUM).exists():
        return CHROMIUM
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise ChromiumError("chromium is missing and apt-get cannot install it here (not root or no apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise ChromiumError(f"{' '.join(command)} took more than {timeout_s:.0f} s") from None
        if done.returncode != 0:
            raise ChromiumError(f"{' '.join(command)} failed: {(done.stderr or done.stdout).strip()[-500:]}")
    if not Path(CHROMIUM).exists():
        raise ChromiumError("apt-get installed chromium but /usr/bin/chromium is still missing")
    return CHROMIUM


class Browser:
    """One headless Chromium with a fresh profile, one page, commands over ``--remote-debugging-pipe``.

    Args:
        binary: the Chromium executable.
        width, height: the window (and screenshot) size in CSS pixels.
        timeout_s: default bound of one command.
    """

    def __init__(self, binary: str = CHROMIUM, width: int = 1400, height: int = 1000, timeout_s: float = 30.0):
        self.timeout_s = timeout_s
        self._profile = tempfile.mkdtemp(prefix="chromium-profile-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # Chromium reads commands on fd 3 and writes answers to fd 4; bash puts the pipes there.
        command = ["bash", "-c", f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w}', binary, *FLAGS,
                   f"--user-data-dir={self._profile}", f"--window-size={width},{height}",
                   "--remote-debugging-pipe", "about:blank"]
        self._process = subprocess.Popen(command, pass_fds=(to_browser_r, from_browser_w), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                         start_new_session=True)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._next_id = 0
        self._answers: dict[int, dict[str, Any]] = {}
        self._arrived = threading.Condition()
        self._closed = False
        self._reader = threading.Thread(target=self._read, name="cdp-reader", daemon=True)
        self._reader.start()
        try:
            page = next(t for t in self.call("Target.getTargets")["targetInfos"] if t["type"] == "page")
            self._session = self.call("Target.attachToTarget", targetId=page["targetId"], flatten=True)["sessionId"]
            self.call("Page.enable", session=True)
            self.call("Runtime.enable", session=True)
        except Exception:
            self.close()
            raise

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(self._from_browser, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                break
            buffer += chunk
            while b"\0" in buffer:
                raw, buffer = buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "id" in message:
                    with self._arrived:
                        self._answers[message["id"]] = message
                        self._arrived.notify_all()
        with self._arrived:
            self._closed = True
            self._arrived.notify_all()

    def call(self, method: str, session: bool = False, timeout_s: float | None = None, **params: Any) -> dict:
        """Send one DevTools command and wait (bounded) for its answer.

        Raises:
            ChromiumError: no answer in time, the browser went away, or the command failed.
        """
        self._next_id += 1
        ident = self._next_id
        message: dict[str, Any] = {"id": ident, "method": method, "params": params}
        if session:
            message["sessionId"] = self._session
        try:
            os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        except OSError as exc:
            raise ChromiumError(f"{method}: the browser is gone ({exc})") from None
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        with self._arrived:
            while ident not in self._answers:
                remaining = deadline - time.monotonic()
                if self._closed or remaining <= 0:
                    raise ChromiumError(f"{method}: no answer within {timeout_s or self.timeout_s:.0f} s"
                                        + (" (browser exited)" if self._closed else ""))
                self._arrived.wait(remaining)
            answer = self._answers.pop(ident)
        if "error" in answer:
            raise ChromiumError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    def navigate(self, url: str) -> None:
        """Open ``url`` in the page."""
        self.call("Page.navigate", session=True, url=url)

    def evaluate(self, expression: str) -> Any:
        """Evaluate JavaScript in the page (promises awaited) and return its JSON value."""
        result = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise ChromiumError(f"script failed: {result['exceptionDetails'].get('text')}: {expression[:200]}")
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, within_s: float, describe: str, interval_s: float = 0.2) -> Any:
        """Evaluate ``expression`` until it is truthy; return it.

        Raises:
            ChromiumError: it never became truthy within ``within_s``.
        """
        deadline = time.monotonic() + within_s
        last: Any = None
        while True:
            last = self.evaluate(expression)
            if last:
                return last
            if time.monotonic() >= deadline:
                raise ChromiumError(f"{describe}: not true within {within_s:.0f} s (last: {last!r})")
            time.sleep(interval_s)  # pacing the poll of the page, not waiting for a condition

    def screenshot(self, path: Path) -> Path:
        """Save a PNG of the page's viewport to ``path``."""
        data = self.call("Page.captureScreenshot", session=True, format="png")["data"]
        Path(path).write_bytes(base64.b64decode(data))
        return Path(path)

    def close(self) -> None:
        """Stop Chromium (its whole process group, helpers included) and remove the profile."""
        try:
            self.call("Browser.close", timeout_s=5.0)
        except ChromiumError:
            pass  # already gone or not answering: the kill below ends it
        try:
            os.close(self._to_browser)
        except OSError:
            pass
        try:
            self._process.wait(10.0)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self._process.pid, signal.SIGKILL)  # helpers (zygote, renderers) that outlived the browser
        except ProcessLookupError:
            pass
        self._process.wait(5.0)
        self._reader.join(5.0)
        try:
            os.close(self._from_browser)
        except OSError:
            pass
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
