"""Harness for the console's browser tests: the REAL witness binary on port
0 (its own config and SQLite database per server) and headless Chromium from
Debian driven over WebDriver (chromedriver). Nothing is mocked: the page talks
Connect to the server, the SDK talks gRPC to the same server."""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import http.server
import os
import shutil
import signal
import socketserver
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional, TypeVar

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

import witness

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]


def wait_until(predicate: Callable[[], Optional[T]], timeout: float = 10.0,
               what: str = "condition", interval: float = 0.02) -> T:
    """Polls ``predicate`` until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def sha256_hex(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class WitnessServer:
    """One witness process with its own config and database."""

    def __init__(self, directory: Path, extra_config: str = "") -> None:
        self.dir = directory
        self.config = directory / "witness.toml"
        db = directory / "witness.db"
        self.config.write_text(f'[store]\nurl = "sqlite://{db}"\n{extra_config}')
        self.proc: Optional[subprocess.Popen] = None
        self.addr = ""
        self.port = 0
        self._starts = 0

    def start(self) -> "WitnessServer":
        binary = Path(os.environ.get("WITNESS_BIN", str(ROOT / "target" / "debug" / "witness")))
        if not binary.is_file():
            pytest.fail(f"witness binary not found at {binary}: run `cargo build`", pytrace=False)
        self._starts += 1
        out = self.dir / f"stdout.{self._starts}.log"
        err = self.dir / f"stderr.{self._starts}.log"
        with open(out, "wb") as o, open(err, "wb") as e:
            self.proc = subprocess.Popen(
                [str(binary), "serve", "--listen", f"127.0.0.1:{self.port}", "--config", str(self.config)],
                stdout=o, stderr=e, stdin=subprocess.DEVNULL,
            )
        prefix = "witness listening on "

        def listening() -> Optional[str]:
            for line in out.read_text(errors="replace").splitlines():
                if line.startswith(prefix):
                    return line[len(prefix):].strip()
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"witness exited: {err.read_text(errors='replace')}")
            return None

        self.addr = wait_until(listening, 30, "the server to listen")
        self.port = int(self.addr.rsplit(":", 1)[1])
        return self

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill9()
        self.proc = None

    @property
    def url(self) -> str:
        return f"http://{self.addr}"

    def client(self, principal: str = "", roles: Optional[List[str]] = None, **kw: Any) -> witness.Client:
        return witness.Client(self.addr, principal=principal or None, roles=roles, **kw)


#: Policies of the dev-mode server shared by most tests.
POLICIES = """
[[policies]]
kind = "two.*"
required_approvals = 2
context_max_age = "30s"
"""


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WitnessServer]:
    srv = WitnessServer(tmp_path_factory.mktemp("witness-dev"), POLICIES).start()
    yield srv
    srv.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[Callable[..., WitnessServer]]:
    servers: List[WitnessServer] = []

    def make(extra_config: str = "") -> WitnessServer:
        d = tmp_path / f"srv{len(servers)}"
        d.mkdir()
        srv = WitnessServer(d, extra_config)
        servers.append(srv)
        return srv.start()

    yield make
    for s in servers:
        s.stop()


@pytest.fixture
def kind() -> Callable[[str], str]:
    """Unique kinds per test, so tests sharing a server never see each other's."""
    tag = uuid.uuid4().hex[:10]
    return lambda prefix: f"{prefix}.t{tag}"


@contextlib.contextmanager
def asking(asker: witness.Client, kind: str, *args: Any, **kw: Any) -> Iterator["concurrent.futures.Future[witness.Decision]"]:
    """Runs the SDK's blocking ``ask()`` in a thread; if the test fails before
    it returns, cancels the question so the thread (and the test) ends."""
    pool = concurrent.futures.ThreadPoolExecutor(1)
    future = pool.submit(asker.ask, kind, *args, **kw)
    try:
        yield future
    finally:
        if not future.done():
            for d in asker.list(statuses=["open"], kinds=[kind]):
                asker.cancel(d.id, "test ended")
        pool.shutdown(wait=True)


class Console:
    """One browser tab on the console, with the reads and gestures a person makes."""

    def __init__(self, driver: webdriver.Chrome, base: str) -> None:
        self.d = driver
        self.base = base

    def open(self, query: str = "") -> "Console":
        self.d.get(self.base + "/" + query)
        # A marker that only survives while the page is never reloaded.
        self.d.execute_script("window.__noReload = 1")
        return self

    def js(self, script: str, *args: Any) -> Any:
        return self.d.execute_script(script, *args)

    def conn(self) -> str:
        return self.d.find_element(By.ID, "conn").text

    def wait_live(self, timeout: float = 15) -> None:
        wait_until(lambda: self.js("return document.getElementById('conn').dataset.state") == "live",
                   timeout, "the console's stream to be live")

    def open_kinds(self) -> List[str]:
        return self.js("return [...document.querySelectorAll('#open-list .item .kind')].map(e => e.textContent)")

    def closed_kinds(self) -> List[str]:
        return self.js("return [...document.querySelectorAll('#closed-list .item .kind')].map(e => e.textContent)")

    def item(self, kind: str, view: str = "open"):
        # One script call: list items persist across live updates, their
        # contents are rebuilt, so never hold on to a child element.
        return self.js(
            "return [...document.querySelectorAll(`#${arguments[1]}-list .item`)]"
            ".find(li => li.querySelector('.kind').textContent === arguments[0]) || null",
            kind, view)

    def select(self, kind: str, view: str = "open") -> None:
        wait_until(lambda: self.item(kind, view), 10, f"{kind} in the {view} list").click()
        wait_until(lambda: kind in self.detail(view), 10, f"{kind} in the detail pane")

    def detail(self, view: str = "open") -> str:
        return self.d.find_element(By.ID, f"{view}-detail").text

    def answer(self, verdict: str, rationale: str) -> None:
        pane = self.d.find_element(By.ID, "open-detail")
        pane.find_element(By.ID, "rationale").send_keys(rationale)
        pane.find_element(By.CSS_SELECTOR, f"form.answer button.{verdict}").click()

    def answer_status(self) -> str:
        return self.js("const s = document.querySelector('#open-detail form.answer .status'); return s ? s.textContent : ''")

    def reloaded(self) -> bool:
        return self.js("return window.__noReload !== 1")

    def severe_logs(self) -> List[str]:
        return [e["message"] for e in self.d.get_log("browser") if e.get("level") == "SEVERE"]


def chrome() -> webdriver.Chrome:
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    profile = tempfile.mkdtemp(prefix="witness-chromium-")
    for a in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", "--window-size=1400,900", f"--user-data-dir={profile}"]:
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    driver = webdriver.Chrome(options=opts, service=service)
    driver._witness_profile = profile  # type: ignore[attr-defined]
    return driver


@pytest.fixture
def browser() -> Iterator[Callable[[WitnessServer], Console]]:
    """Factory for console tabs, each in its own fresh Chromium profile."""
    drivers: List[webdriver.Chrome] = []

    def make(srv: WitnessServer) -> Console:
        d = chrome()
        drivers.append(d)
        return Console(d, srv.url)

    yield make
    for d in drivers:
        d.quit()
        shutil.rmtree(d._witness_profile, ignore_errors=True)  # type: ignore[attr-defined]


@pytest.fixture
def evil_site() -> Iterator[dict]:
    """A page on another port (another origin), its HTML set per test."""
    page = {"html": ""}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = page["html"].encode()
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    page["url"] = f"http://127.0.0.1:{srv.server_address[1]}/evil.html"
    yield page
    srv.shutdown()
    srv.server_close()
