"""Console sign-in through a real identity provider (issue 29, DESIGN §9):
`oidc-provider` from tests/oidc (its own login page, users in groups) and
the real witness binary with an `[[issuers]]` entry `corp`. A machine asks
with a JWT from the same provider through the Python SDK; a person signs in
with Chromium through the provider's login page and answers; the audit log
records who, and through which issuer."""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import json
import os
import socket
import sqlite3
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest
from selenium.webdriver.common.by import By

import witness
from witness import Status

from conftest import ROOT, Console, WitnessServer, sha256_hex, wait_until

PASSWORD = "test-password"


def free_port() -> int:
    """A loopback port free right now: witness's redirect URL must be known
    before either server starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Provider:
    """tests/oidc/server.mjs: a real OpenID provider on a free loopback port."""

    def __init__(self, directory: Path, redirect_uri: str) -> None:
        if not (ROOT / "tests" / "oidc" / "node_modules").is_dir():
            pytest.fail("tests/oidc/node_modules missing: run `make oidc-deps`", pytrace=False)
        out, err = directory / "oidc.stdout.log", directory / "oidc.stderr.log"
        with open(out, "wb") as o, open(err, "wb") as e:
            self.proc = subprocess.Popen(
                ["node", str(ROOT / "tests" / "oidc" / "server.mjs"), "--redirect-uri", redirect_uri, "--always-login"],
                stdout=o, stderr=e, stdin=subprocess.DEVNULL,
            )

        def ready() -> Optional[Dict[str, str]]:
            text = out.read_text(errors="replace")
            if text.endswith("\n"):
                return json.loads(text.splitlines()[0])
            if self.proc.poll() is not None:
                raise AssertionError(f"the identity provider exited: {err.read_text(errors='replace')}")
            return None

        info = wait_until(ready, 30, "the identity provider to listen")
        self.issuer: str = info["issuer"]

    def machine_token(self, client: str = "ci-bot", secret: str = "ci-bot-secret") -> str:
        """A JWT access token by the client-credentials grant, as a CI job gets one."""
        req = urllib.request.Request(
            self.issuer + "/token",
            data=urllib.parse.urlencode({"grant_type": "client_credentials", "resource": "urn:witness"}).encode(),
            headers={"authorization": "Basic " + base64.b64encode(f"{client}:{secret}".encode()).decode()},
        )
        with urllib.request.urlopen(req, timeout=10) as res:
            return json.loads(res.read())["access_token"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


class Corp:
    """The provider and a witness whose issuer `corp` signs people in."""

    def __init__(self, provider: Provider, server: WitnessServer) -> None:
        self.provider = provider
        self.server = server


BREAK_GLASS = "break-glass-token"


@pytest.fixture
def corp(tmp_path: Path) -> Iterator[Corp]:
    port = free_port()
    callback = f"http://127.0.0.1:{port}/auth/callback"
    provider = Provider(tmp_path, callback)
    srv: Optional[WitnessServer] = None
    try:
        key = base64.b64encode(os.urandom(32)).decode()
        srv = WitnessServer(tmp_path, f"""
[[principals]]
name = "break-glass"
token_sha256 = "{sha256_hex(BREAK_GLASS)}"
roles = ["sre"]

[auth]
session_key = "{key}"

[[issuers]]
name = "corp"
issuer = "{provider.issuer}"
audience = "witness"
principal_claim = "email"
roles_claim = "groups"
role_map = {{ "sre-team" = ["sre"], "deployers" = ["deployer"] }}
client_id = "witness-console"
client_secret = "witness-console-secret"
redirect_url = "{callback}"
scopes = ["openid", "email", "profile", "groups"]
""")
        srv.port = port
        srv.start()
        yield Corp(provider, srv)
    finally:
        if srv is not None:
            srv.stop()
        provider.stop()


@contextlib.contextmanager
def waiting(client: witness.Client, decision_id: str) -> Iterator["concurrent.futures.Future[witness.Decision]"]:
    """The SDK's blocking ``wait()`` in a thread; cancels the decision if the
    test fails first, so the thread ends."""
    pool = concurrent.futures.ThreadPoolExecutor(1)
    future = pool.submit(client.wait, decision_id)
    try:
        yield future
    finally:
        if not future.done():
            with contextlib.suppress(Exception):
                client.cancel(decision_id, "test ended")
        pool.shutdown(wait=True)


def sign_in_button(page: Console) -> Any:
    return page.js("return document.querySelector('#signin:not([hidden]) a.signin-button[data-issuer=corp]')")


def sign_in(page: Console, provider: Provider, login: str) -> None:
    """Clicks "Sign in with corp" and signs in on the provider's own login page."""
    wait_until(lambda: sign_in_button(page), 10, "the sign-in button").click()
    wait_until(lambda: page.d.current_url.startswith(provider.issuer + "/interaction/")
               and page.js("return document.getElementById('login')"), 15, "the provider's login page")
    page.d.find_element(By.ID, "login").send_keys(login)
    page.d.find_element(By.ID, "password").send_keys(PASSWORD)
    page.d.find_element(By.ID, "submit").click()
    wait_until(lambda: page.d.current_url.rstrip("/") == page.base
               and page.js("return document.getElementById('me-principal')"), 20, "the console after sign-in")


def me(page: Console) -> List[str]:
    return page.js("return ['me-principal', 'me-roles', 'me-source']"
                   ".map(id => (document.getElementById(id) || {}).textContent || '')")


def fetch(page: Console, path: str, body: Optional[dict] = None) -> Dict[str, Any]:
    """A same-origin request from the page, with its cookies (its session)."""
    return page.d.execute_async_script("""
const [path, body, done] = arguments;
const init = {credentials: "same-origin", cache: "no-store"};
if (body) Object.assign(init, {method: "POST", body: JSON.stringify(body),
  headers: {"content-type": "application/json", "connect-protocol-version": "1"}});
fetch(path, init).then(async r => done({status: r.status, body: await r.json().catch(() => null)}),
                       e => done({status: 0, body: String(e)}));
""", path, body)


def events(db: Path, decision_id: str) -> List[tuple]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as c:
        return c.execute("SELECT type, body FROM events WHERE decision_id = ? ORDER BY sequence",
                         (decision_id,)).fetchall()


ATTACK_PAGE = """<!doctype html>
<html><body>
<iframe name="sink" id="sink"></iframe>
<form id="form" method="POST" enctype="text/plain" target="sink"></form>
<script>
const W = %(witness)s, ID = %(id)s;
const answer = JSON.stringify({decisionId: ID, verdict: "VERDICT_APPROVE", rationale: "csrf"});
const url = W + "/witness.v1.WitnessService/Answer";
const results = {};
async function attempt(name, init) {
  try {
    const r = await fetch(url, Object.assign({method: "POST", credentials: "include"}, init));
    results[name] = "sent:" + r.type + ":" + r.status;
  } catch (e) {
    results[name] = "blocked:" + e.name;
  }
}
(async () => {
  await attempt("cors json", {headers: {"content-type": "application/json", "connect-protocol-version": "1"}, body: answer});
  await attempt("no-cors text/plain", {mode: "no-cors", headers: {"content-type": "text/plain"}, body: answer});
  await attempt("no-cors default type", {mode: "no-cors", body: answer});
  const f = document.getElementById("form");
  f.action = url;
  const input = document.createElement("input");
  input.name = answer.slice(0, -1) + ', "x": "';
  input.value = '"}';
  f.appendChild(input);
  const loaded = new Promise(res => document.getElementById("sink").addEventListener("load", res, {once: true}));
  f.submit();
  await loaded;
  results["text/plain form"] = "submitted";
  window.__results = results;
})();
</script>
</body></html>
"""


def test_sign_in_with_the_provider_answer_sign_out_and_refusals(corp, browser, evil_site, kind):
    srv, provider = corp.server, corp.provider
    db = srv.dir / "witness.db"
    with urllib.request.urlopen(srv.url + "/console/config.json") as res:
        cfg = json.loads(res.read())
    assert cfg["mode"] == "token"
    assert cfg["issuers"] == [{"name": "corp", "login": "/auth/login?issuer=corp"}]

    # a. A JWT from the same provider authenticates a Python SDK Ask.
    k = kind("deploy.api")
    asker = witness.Client(srv.addr, token=provider.machine_token())
    d = asker.ask_nowait(k, {"service": "api", "version": "2.0.1"}, authorized_roles=["sre"])
    assert d.asked_by == "ci-bot@example.com", d

    page = browser(srv).open()
    # Signed out: the sign-in button comes first; the token form is there for scripts, behind "or use a token".
    button = wait_until(lambda: sign_in_button(page), 10, "the sign-in button")
    assert button.text == "Sign in with corp"
    assert button.get_attribute("href") == srv.url + "/auth/login?issuer=corp"
    assert page.js("return !!(document.getElementById('signin').compareDocumentPosition("
                   "document.getElementById('identity')) & Node.DOCUMENT_POSITION_FOLLOWING)")
    assert not page.d.find_element(By.ID, "id-token").is_displayed()
    page.d.find_element(By.ID, "use-token").click()
    assert page.d.find_element(By.ID, "id-token").is_displayed()
    assert me(page) == ["", "", ""]
    assert page.open_kinds() == []

    # b. Alice signs in on the provider's page and lands back as herself.
    with waiting(asker, d.id) as pending:
        sign_in(page, provider, "alice")
        wait_until(lambda: me(page) == ["alice@example.com", "sre", "issuer corp"], 10,
                   f"alice's identity in the header (got {me(page)})")
        assert page.d.find_element(By.ID, "whoami").text == "alice@example.com · sre · issuer corp"
        assert page.d.find_element(By.ID, "signout").is_displayed()
        assert not page.d.find_element(By.ID, "signin").is_displayed()
        assert not page.d.find_element(By.ID, "id-token").is_displayed()
        # The session is the HttpOnly, Secure, SameSite=Strict __Host- cookie; no token in storage.
        [cookie] = [c for c in page.d.get_cookies() if c["name"] == "__Host-witness"]
        assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
        assert page.js("return document.cookie") == ""
        assert page.js("return sessionStorage.getItem('witness.token')") is None
        whoami = fetch(page, "/console/whoami")
        assert whoami["status"] == 200 and whoami["body"]["session"] is True, whoami
        assert whoami["body"]["principal"] == "alice@example.com" and whoami["body"]["roles"] == ["sre"]
        page.wait_live()
        wait_until(lambda: k in page.open_kinds(), 10, f"{k} in alice's open list")

        # e. A page on another origin cannot use alice's session to answer:
        # 127.0.0.1 on another port is the same site (the cookie goes along
        # with no-cors requests and forms: witness must refuse the Origin);
        # localhost is another site (SameSite=Strict withholds the cookie).
        for host in ["127.0.0.1", "localhost"]:
            evil_site["html"] = ATTACK_PAGE % {"witness": json.dumps(srv.url), "id": json.dumps(d.id)}
            page.d.get(evil_site["url"].replace("127.0.0.1", host))
            results = wait_until(lambda: page.js("return window.__results || null"), 20, f"the attack from {host}")
            assert len(results) == 4, results
            assert results["cors json"].startswith("blocked"), results
            assert not pending.done()
            after = asker.get(d.id)
            assert after.is_open and list(after.answers) == [], (host, results, after)
            assert [t for t, _ in events(db, d.id)] == ["CREATED"], events(db, d.id)
        # The session itself still works: the attack was refused, not unarmed.
        page.open()
        wait_until(lambda: me(page)[0] == "alice@example.com", 10, "alice still signed in")
        page.wait_live()

        page.select(k)
        assert '"version": "2.0.1"' in page.detail() and "ci-bot@example.com" in page.detail()
        page.answer("approve", "release notes read, canary green")
        decision = pending.result(timeout=30)
    assert decision.status == Status.APPROVED
    [answer] = decision.answers
    assert answer.operator == "alice@example.com" and answer.rationale == "release notes read, canary green"
    wait_until(lambda: "closed" in page.answer_status(), 10, "the recorded answer in the page")

    # The audit log (the events table) records the operator and the issuer.
    answered = [json.loads(body) for t, body in events(db, d.id) if t == "ANSWERED"]
    assert len(answered) == 1, events(db, d.id)
    assert answered[0]["operator"] == "alice@example.com", answered[0]
    assert answered[0]["issuer"] == "corp", answered[0]

    # c. Signing out ends the session: whoami refuses, the sign-in button is back.
    page.js("window.__noReload = 1")
    page.d.find_element(By.ID, "signout").click()
    wait_until(page.reloaded, 10, "the page to reload after signing out")
    wait_until(lambda: sign_in_button(page), 10, "the sign-in button after signing out")
    assert me(page) == ["", "", ""]
    assert [c for c in page.d.get_cookies() if c["name"] == "__Host-witness"] == []
    refused = fetch(page, "/console/whoami")
    assert refused["status"] == 401 and refused["body"]["code"] == "unauthenticated", refused
    assert page.open_kinds() == []

    # d. Mallory (no groups, so no roles) signs in: she neither sees nor can answer an sre decision.
    k2 = kind("deploy.db")
    d2 = asker.ask_nowait(k2, {"service": "db"}, authorized_roles=["sre"])
    page.open()
    sign_in(page, provider, "mallory")
    wait_until(lambda: me(page) == ["mallory@example.com", "no roles", "issuer corp"], 10,
               f"mallory's identity in the header (got {me(page)})")
    page.wait_live()
    listed = fetch(page, "/witness.v1.WitnessService/ListDecisions", {"statuses": ["STATUS_OPEN"]})
    assert listed["status"] == 200, listed
    assert d2.id not in [x["id"] for x in listed["body"].get("decisions", [])], listed
    refused = fetch(page, "/witness.v1.WitnessService/Answer",
                    {"decisionId": d2.id, "requestId": "6b0f6c1e-5d0c-4c1e-9a57-1f0e3c2b9a10",
                     "verdict": "VERDICT_APPROVE", "rationale": "let me"})
    assert refused["status"] in (403, 404), refused
    assert refused["body"]["code"] in ("permission_denied", "not_found"), refused
    assert k2 not in page.open_kinds()
    assert '"db"' not in page.js("return document.body.innerText")
    still = asker.get(d2.id)
    assert still.is_open and list(still.answers) == [], still
    assert [t for t, _ in events(db, d2.id)] == ["CREATED"], events(db, d2.id)
    asker.cancel(d2.id, "test done")
    asker.close()


def test_the_token_form_stays_for_break_glass_next_to_sign_in(corp, browser, kind):
    srv, provider = corp.server, corp.provider
    k = kind("deploy.glass")
    with witness.Client(srv.addr, token=provider.machine_token()) as asker:
        d = asker.ask_nowait(k, {"service": "api"}, authorized_roles=["sre"])
        page = browser(srv).open()
        wait_until(lambda: sign_in_button(page), 10, "the sign-in button")
        page.d.find_element(By.ID, "use-token").click()
        page.d.find_element(By.ID, "id-token").send_keys("not-the-token\n")
        banner = wait_until(lambda: page.d.find_element(By.ID, "banner").text, 10, "an error banner")
        assert "token was not accepted" in banner, banner
        assert sign_in_button(page), "the sign-in button stays after a refused token"
        page.d.find_element(By.ID, "id-token").send_keys(BREAK_GLASS + "\n")
        wait_until(lambda: me(page) == ["break-glass", "sre", "token"], 10, f"the token's identity (got {me(page)})")
        assert not page.d.find_element(By.ID, "signin").is_displayed()
        # A token, not a session: no cookie was set, and none is sent.
        assert [c for c in page.d.get_cookies() if c["name"] == "__Host-witness"] == []
        page.wait_live()
        page.select(k)
        page.answer("approve", "provider is down, approving by break-glass")
        wait_until(lambda: "closed" in page.answer_status(), 10, "the recorded answer")
        done = asker.get(d.id)
        assert done.status == Status.APPROVED and done.answers[0].operator == "break-glass"
        answered = [json.loads(b) for t, b in events(srv.dir / "witness.db", d.id) if t == "ANSWERED"]
        assert answered == [{"operator": "break-glass", "rationale": "provider is down, approving by break-glass"}]
        # Signing out of a token forgets it and offers the sign-in again.
        page.d.find_element(By.ID, "signout").click()
        wait_until(lambda: sign_in_button(page), 10, "the sign-in button after signing out")
        assert me(page) == ["", "", ""]
        assert page.js("return sessionStorage.getItem('witness.token')") is None
