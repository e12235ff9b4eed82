"""Test harness: runs the REAL witness server binary.

The binary is ``$WITNESS_BIN`` (default ``../target/debug/witness``, built by
``cargo build``); the tests fail loudly when it is missing. Each server gets
its own temporary directory with its config and SQLite database.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Callable, Iterator, List, Optional, TypeVar

import pytest

import witness

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BIN = ROOT / "target" / "debug" / "witness"

#: Policies of the shared dev-mode server.
POLICIES = """
[[policies]]
kind = "glob.*"
required_approvals = 2
context_max_age = "30s"
timeout = "2m"

[[policies]]
kind = "expire.*"
timeout = "1s"
"""


def witness_bin() -> Path:
    """The server binary; fails the test run loudly if it is missing."""
    path = Path(os.environ.get("WITNESS_BIN", str(DEFAULT_BIN)))
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"witness server binary not found at {path}: build it with "
            "`cargo build` in the repository root or set WITNESS_BIN",
            pytrace=False,
        )
    return path


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], Optional[T]], timeout: float = 20.0,
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


class WitnessServer:
    """One witness process with its own config and database."""

    def __init__(self, directory: Path, extra_config: str = "", port: int = 0) -> None:
        self.dir = directory
        self.db = directory / "witness.db"
        self.config = directory / "witness.toml"
        self.config.write_text(f'[store]\nurl = "sqlite://{self.db}"\n{extra_config}')
        self.port = port
        self.addr = ""
        self.proc: Optional[subprocess.Popen] = None
        self._starts = 0

    def start(self, timeout: float = 30.0) -> "WitnessServer":
        """Starts the process and waits for its `witness listening on` line."""
        self._starts += 1
        out = self.dir / f"stdout.{self._starts}.log"
        err = self.dir / f"stderr.{self._starts}.log"
        listen = f"127.0.0.1:{self.port}"
        with open(out, "wb") as o, open(err, "wb") as e:
            self.proc = subprocess.Popen(
                [str(witness_bin()), "serve", "--listen", listen, "--config", str(self.config)],
                stdout=o,
                stderr=e,
                stdin=subprocess.DEVNULL,
            )
        prefix = "witness listening on "

        def listening() -> Optional[str]:
            assert self.proc is not None
            for line in out.read_text(errors="replace").splitlines():
                if line.startswith(prefix):
                    return line[len(prefix):].strip()
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"witness exited with {self.proc.returncode}: {err.read_text(errors='replace')}"
                )
            return None

        self.addr = wait_until(listening, timeout, "the server to listen")
        self.port = int(self.addr.rsplit(":", 1)[1])
        return self

    def kill9(self) -> None:
        """SIGKILL: no shutdown, no flush."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None

    def stop(self) -> None:
        """Ends the process (SIGTERM, then SIGKILL)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill9()
        self.proc = None

    def stderr(self) -> str:
        """Everything the server wrote to stderr, across restarts."""
        return "".join(
            p.read_text(errors="replace") for p in sorted(self.dir.glob("stderr.*.log"))
        )

    def client(self, principal: str = "", roles: Optional[List[str]] = None,
               **kw: object) -> witness.Client:
        """A sync client; dev-mode identity from ``principal``/``roles``."""
        return witness.Client(self.addr, principal=principal or None, roles=roles, **kw)  # type: ignore[arg-type]

    def aclient(self, principal: str = "", roles: Optional[List[str]] = None,
                **kw: object) -> witness.AsyncClient:
        """An asyncio client (create it inside the event loop)."""
        return witness.AsyncClient(self.addr, principal=principal or None, roles=roles, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WitnessServer]:
    """A dev-mode server shared by the tests that need no special config."""
    srv = WitnessServer(tmp_path_factory.mktemp("witness-dev"), POLICIES).start()
    yield srv
    srv.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[Callable[..., WitnessServer]]:
    """Factory for a server of a test's own (custom config, restarts)."""
    servers: List[WitnessServer] = []

    def make(extra_config: str = "", port: int = 0) -> WitnessServer:
        directory = tmp_path / f"srv{len(servers)}"
        directory.mkdir()
        srv = WitnessServer(directory, extra_config, port)
        servers.append(srv)
        return srv.start()

    yield make
    for srv in servers:
        srv.stop()


@pytest.fixture
def kind() -> Callable[[str], str]:
    """Unique kinds per test (``kind("deploy")`` -> ``deploy.t<uuid>``), so
    tests sharing a server never see each other's decisions."""
    tag = uuid.uuid4().hex[:10]
    return lambda prefix: f"{prefix}.t{tag}"


def sha256_hex(token: str) -> str:
    """The ``token_sha256`` the server config stores for a bearer token."""
    return hashlib.sha256(token.encode()).hexdigest()
