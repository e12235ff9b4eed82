"""The web console in headless Chromium against the real server: what an
operator sees and does. The SDK asks over gRPC; the page answers over
Connect; both reach the same service."""

from __future__ import annotations

import json
import time
import urllib.request

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from witness import Status

from conftest import asking, sha256_hex, wait_until


def test_page_is_served_with_a_strict_content_security_policy(server):
    with urllib.request.urlopen(server.url + "/") as res:
        csp = res.headers["content-security-policy"]
        assert res.headers["x-content-type-options"] == "nosniff"
        assert "<script" in res.read().decode()
    for directive in ["default-src 'self'", "script-src 'self'", "style-src 'self'",
                      "frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'"]:
        assert directive in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    with urllib.request.urlopen(server.url + "/console/config.json") as res:
        assert json.loads(res.read())["mode"] == "dev"


def test_asked_decision_appears_live_and_approving_unblocks_ask(server, browser, kind):
    k = kind("deploy")
    page = browser(server).open("?as=alice&roles=sre")
    page.wait_live()
    assert k not in page.open_kinds()
    started = time.monotonic()
    with server.client("deployer") as asker, \
            asking(asker, k, {"service": "api", "version": "1.4.2"},
                   authorized_roles=["sre"], surfaces=["console"]) as pending:
        wait_until(lambda: k in page.open_kinds(), 1.0, f"{k} in the open list within 1 s of ask()")
        print(f"appeared {time.monotonic() - started:.3f}s after ask()")
        assert not page.reloaded(), "the page reloaded to show the decision"
        page.select(k)
        detail = page.detail()
        assert '"version": "1.4.2"' in detail and "deployer" in detail
        # Opening it as someone who can answer acknowledges it for the console surface.
        seen = wait_until(lambda: next((d for d in asker.list(statuses=["open"], kinds=[k]) if d.delivered_via), None),
                          10, "the console's ACK")
        assert seen.delivered_via == "console"
        assert not pending.done()
        page.answer("approve", "canary green, error budget fine")
        decision = pending.result(timeout=30)
    assert decision.status == Status.APPROVED
    [answer] = decision.answers
    assert answer.operator == "alice" and answer.rationale == "canary green, error budget fine"
    wait_until(lambda: k not in page.open_kinds(), 10, "the approved decision to leave the open list")
    assert "closed" in page.answer_status()
    assert not page.reloaded()


def test_principal_without_the_role_never_sees_it(server, browser, kind):
    sre_kind, dba_kind = kind("sre-only"), kind("dba-marker")
    page = browser(server).open("?as=bob&roles=dba")
    page.wait_live()
    with server.client("deployer") as asker, server.client("alice", ["sre"]) as alice:
        hidden = asker.ask_nowait(sre_kind, {"secret": "sre"}, authorized_roles=["sre"])
        asker.ask_nowait(dba_kind, {"q": 1}, authorized_roles=["dba"])
        # Events arrive in order: once the later dba decision is shown, the
        # sre one has been filtered out, not merely not arrived yet.
        wait_until(lambda: dba_kind in page.open_kinds(), 10, "the dba decision")
        assert sre_kind not in page.open_kinds()
        assert '"secret"' not in page.js("return document.body.innerText")
        alice.answer(hidden.id, "approve", "fine")
    # Nor in the closed decisions.
    page.d.find_element("id", "tab-closed").click()
    Select(page.d.find_element("id", "f-status")).select_by_value("all")
    page.d.find_element("id", "f-kind").send_keys("*.t" + sre_kind.rsplit(".t", 1)[1])
    page.d.find_element("css selector", "#closed-filter button").click()
    wait_until(lambda: dba_kind in page.closed_kinds(), 10, "the closed-view search to finish")
    assert sre_kind not in page.closed_kinds()


def test_markup_in_a_decision_is_shown_as_text_and_never_runs(server, browser, kind):
    k = kind("xss")
    img = "<img src=x onerror=\"window.__pwned='img'\">"
    script = "<script>window.__pwned='script'</script>"
    page = browser(server).open("?as=alice&roles=sre")
    page.wait_live()
    with server.client("mallory") as asker:
        asked = asker.ask_nowait(k, {"note": img, "cmd": script, img: script}, authorized_roles=["sre"],
                         response_schema={"type": "object", "properties": {img: {"type": "string", "title": script}}})
        page.select(k)
        detail = page.detail()
        assert img in detail.replace('\\"', '"') and script in detail
        page.answer("approve", "looks odd " + img)
        wait_until(lambda: "closed" in page.answer_status(), 10, "the answer to be recorded")
    # Markup never became elements and nothing ran, in the list, the detail or the form.
    assert page.js("return document.querySelectorAll('img, #open-detail script, #closed-detail script').length") == 0
    assert page.js("return window.__pwned === undefined")
    # The closed view shows the rationale, also as text.
    page.d.find_element("id", "tab-closed").click()
    page.select(k, "closed")
    wait_until(lambda: "looks odd <img" in page.detail("closed"), 10, "the rationale in the closed view")
    # Who decided, and the signed receipt of this very decision.
    closed = wait_until(lambda: "key id" in page.detail("closed") and page.detail("closed"), 10, "the receipt")
    assert "APPROVED — decided by alice" in closed
    assert f'"decision_id":"{asked.id}"' in closed and '"outcome":"APPROVED"' in closed
    assert page.js("return document.querySelectorAll('img').length") == 0
    assert page.js("return window.__pwned === undefined")
    assert not [m for m in page.severe_logs() if "Content Security Policy" in m]


def test_two_person_decision_shows_the_first_vote_and_waits_for_the_second(server, browser, kind):
    k = kind("two")
    page = browser(server).open("?as=alice&roles=sre")
    page.wait_live()
    with server.client("deployer") as asker, server.client("bob", ["sre"]) as bob, \
            asking(asker, k, {"scram": "global-readonly"}, authorized_roles=["sre"],
                   context=lambda: {"replicas": 3}, context_interval=1.0) as pending:
        page.select(k)
        assert "0 of 2" in page.detail()
        page.answer("approve", "first look: ok")
        wait_until(lambda: "Waiting for more approvals" in page.answer_status(), 10, "the first vote to be recorded")
        wait_until(lambda: "APPROVE · alice" in page.detail(), 10, "alice's vote in the detail")
        detail = page.detail()
        assert "first look: ok" in detail and "Waiting for 1 more approval (1 of 2)" in detail
        assert "votes 1/2" in page.item(k).text
        assert not pending.done()
        # The page no longer offers alice a second vote.
        page.js("document.querySelector('#open-detail form.answer') && document.querySelector('#open-detail form.answer').remove()")
        page.select(k)
        wait_until(lambda: "You have voted" in page.detail(), 10, "the already-voted notice")
        decision_id = page.js("return document.getElementById('open-detail').dataset.id")
        bob.answer(decision_id, "approve", "second pair of eyes: ok")
        decision = pending.result(timeout=30)
    assert decision.status == Status.APPROVED
    assert [a.operator for a in decision.answers] == ["alice", "bob"]
    wait_until(lambda: k not in page.open_kinds(), 10, "the closed decision to leave the open list")
    wait_until(lambda: "APPROVED" in page.detail(), 10, "the outcome in the detail pane")


def test_token_mode_refuses_a_wrong_token_and_keeps_the_token_out_of_cookies(fresh_server, browser, kind):
    srv = fresh_server(f"""
[[principals]]
name = "alice"
token_sha256 = "{sha256_hex('alice-token')}"
roles = ["sre"]

[[principals]]
name = "deployer"
token_sha256 = "{sha256_hex('deployer-token')}"
roles = []
""")
    page = browser(srv).open()
    wait_until(lambda: page.d.find_element("id", "id-token").is_displayed(), 10, "the token field")
    assert not page.d.find_element("id", "id-principal").is_displayed()
    page.d.find_element("id", "id-token").send_keys("not-the-token\n")
    banner = wait_until(lambda: page.d.find_element("id", "banner").text, 10, "an error banner")
    assert "token was not accepted" in banner and "unknown bearer token" in banner
    assert page.open_kinds() == []
    assert page.js("return sessionStorage.getItem('witness.token')") is None
    k = kind("deploy")
    with srv.client(token="deployer-token") as asker:
        asker.ask_nowait(k, {"v": 1}, authorized_roles=["sre"])
        page.d.find_element("id", "id-token").send_keys("alice-token\n")
        page.wait_live()
        wait_until(lambda: k in page.open_kinds(), 10, "the decision after signing in")
    assert page.d.find_element("id", "whoami").text.startswith("alice")
    assert page.js("return sessionStorage.getItem('witness.token')") == "alice-token"
    assert page.js("return document.cookie") == ""
    assert not page.d.get_cookies()


def test_the_page_reconnects_after_the_server_restarts(fresh_server, browser, kind):
    srv = fresh_server()
    page = browser(srv).open("?as=alice&roles=sre")
    page.wait_live()
    first, second = kind("before"), kind("after")
    with srv.client("deployer") as asker:
        asker.ask_nowait(first, {"n": 1}, authorized_roles=["sre"])
        wait_until(lambda: first in page.open_kinds(), 10, "the first decision")
    srv.kill9()
    wait_until(lambda: page.js("return document.getElementById('conn').dataset.state") != "live",
               15, "the page to notice the drop")
    srv.start()  # same port, same database
    # Resumed (afterSequence) and live again before anything new happens.
    page.wait_live(30)
    with srv.client("deployer") as asker:
        asker.ask_nowait(second, {"n": 2}, authorized_roles=["sre"])
    wait_until(lambda: second in page.open_kinds(), 20, "the decision asked after the restart")
    assert first in page.open_kinds()
    assert not page.reloaded()


# Counts the page's StreamDecisions attempts and failures (a pass-through
# wrapper of fetch, which connect.js looks up at every call), and records
# every text the open list's placeholder shows, with the badge beside it.
WATCH_CONNECTING = """
window.__streams = { started: 0, failed: 0 };
const realFetch = window.fetch;
window.fetch = (url, init) => {
  if (!String(url).includes('StreamDecisions')) return realFetch(url, init);
  window.__streams.started++;
  return realFetch(url, init).catch((e) => { window.__streams.failed++; throw e; });
};
window.__shown = [];
const empty = document.getElementById('open-empty'), conn = document.getElementById('conn');
const note = () => { if (!empty.hidden) window.__shown.push([empty.textContent, conn.textContent, conn.dataset.state]); };
note();
new MutationObserver(note).observe(empty, { childList: true, characterData: true, subtree: true, attributes: true });
new MutationObserver(note).observe(conn, { childList: true, characterData: true, subtree: true, attributes: true });
"""


def placeholder(page) -> str:
    return page.js("const e = document.getElementById('open-empty'); return e.hidden ? '' : e.textContent")


def test_the_list_says_connecting_until_the_snapshot_ends(fresh_server, browser):
    srv = fresh_server()
    page = browser(srv)
    # The page loads, signs in, but its stream cannot complete: blocked in the browser...
    page.d.execute_cdp_cmd("Network.enable", {})
    page.d.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*/witness.v1.WitnessService/StreamDecisions"]})
    page.open("?as=alice&roles=sre")
    page.js(WATCH_CONNECTING)
    assert placeholder(page) == "connecting…" and page.conn() == "connecting…"
    wait_until(lambda: page.js("return window.__streams.failed") >= 1, 15, "a failed stream attempt")
    assert placeholder(page) == "connecting…"
    assert page.conn() == "connecting…"
    assert page.js("return document.getElementById('conn').dataset.state") == "connecting"
    assert "failed" in page.js("return document.getElementById('conn').title")
    # ... then the server is gone (SIGKILL) and the browser no longer blocks it.
    srv.kill9()
    page.d.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})
    failed = page.js("return window.__streams.failed")
    wait_until(lambda: page.js("return window.__streams.failed") > failed, 20,
               "a stream attempt to fail against the stopped server")
    assert placeholder(page) == "connecting…" and page.conn() == "connecting…"
    # Back on the same port: once the snapshot ends, the empty list says so.
    srv.start()
    page.wait_live(30)
    wait_until(lambda: placeholder(page) == "No open decisions you may see.", 5, "the empty-list text")
    assert page.conn() == "live"
    shown = page.js("return window.__shown")
    nothing = [i for i, (text, _, _) in enumerate(shown) if text == "No open decisions you may see."]
    assert nothing, shown
    # "Nothing for you" appeared only with the badge live, after the snapshot, and never before.
    assert all(state == "live" for _, _, state in shown[nothing[0]:]), shown
    assert {text for text, _, _ in shown[:nothing[0]]} == {"connecting…"}, shown
    assert not page.reloaded()


def expires_row(page, view: str = "open") -> str:
    return page.js(
        "const dt = [...document.querySelectorAll(`#${arguments[0]}-detail dl.facts dt`)]"
        ".find(e => e.textContent === 'expires'); return dt ? dt.nextElementSibling.textContent : null",
        view)


def test_a_decision_without_expiry_reads_no_expiry_open_and_closed(server, browser, kind):
    k = kind("noexpiry")
    page = browser(server).open("?as=alice&roles=sre")
    page.wait_live()
    with server.client("deployer") as asker:
        d = asker.ask_nowait(k, {"n": 1}, authorized_roles=["sre"])  # no timeout, none in the policy
        assert d.expires_at is None
        page.select(k)
        assert expires_row(page) == "no expiry"
        assert page.js("return arguments[0].querySelector('.expiry').textContent", page.item(k)) == "no expiry"
        asker.cancel(d.id, "not needed")
    # The detail stays on the decision that closed under the operator's eyes.
    wait_until(lambda: "CANCELLED" in page.detail(), 10, "the detail to show the cancelled decision")
    assert expires_row(page) == "no expiry"
    assert "never" not in page.detail()
    page.d.find_element("id", "tab-closed").click()
    page.select(k, "closed")
    assert expires_row(page, "closed") == "no expiry"
    assert "never" not in page.detail("closed")


SCHEMA = {
    "type": "object",
    "required": ["rollout_percent"],
    "properties": {
        "rollout_percent": {"type": "integer", "description": "share of traffic"},
        "window": {"enum": ["now", "after-peak"]},
        "notify": {"type": "boolean"},
    },
}


def test_schema_shaped_answer_and_missing_fields_send_nothing(server, browser, kind):
    k = kind("rollout")
    page = browser(server).open("?as=alice&roles=sre")
    page.wait_live()
    with server.client("deployer") as asker, \
            asking(asker, k, {"service": "api"}, authorized_roles=["sre"], response_schema=SCHEMA) as pending:
        page.select(k)
        form = page.d.find_element("css selector", "#open-detail form.answer")
        # No rationale: refused in the page, nothing sent.
        form.find_element("css selector", "button.approve").click()
        wait_until(lambda: "rationale: required" in page.answer_status(), 5, "the rationale error")
        page.d.find_element("id", "rationale").send_keys("25% first")
        # The required schema field still empty: refused, naming the field.
        form.find_element("css selector", "button.approve").click()
        wait_until(lambda: "answer.rollout_percent: required" in page.answer_status(), 5, "the field error")
        [open_now] = asker.list(statuses=["open"], kinds=[k])
        assert not open_now.answers and not pending.done()
        page.d.find_element("id", "ans-rollout_percent").send_keys("25")
        Select(page.d.find_element("id", "ans-window")).select_by_visible_text("after-peak")
        Select(page.d.find_element("id", "ans-notify")).select_by_visible_text("true")
        form.find_element("css selector", "button.approve").click()
        decision = pending.result(timeout=30)
    assert decision.status == Status.APPROVED
    assert decision.answers[0].answer == {"rollout_percent": 25, "window": "after-peak", "notify": True}


def test_a_server_refusal_is_shown_and_records_nothing(server, browser, kind):
    k = kind("tags")
    schema = {"type": "array", "items": {"type": "string"}, "minItems": 1}
    page = browser(server).open("?as=alice&roles=sre")
    page.wait_live()
    with server.client("deployer") as asker:
        d = asker.ask_nowait(k, {"q": "which tags?"}, authorized_roles=["sre"], response_schema=schema)
        page.select(k)
        editor = page.d.find_element("id", "ans-json")  # not a flat object: a JSON editor
        assert editor.get_attribute("value").strip() == "[]"
        page.d.find_element("id", "rationale").send_keys("none needed")
        page.d.find_element("css selector", "#open-detail form.answer button.approve").click()
        status = wait_until(lambda: "Refused" in page.answer_status() and page.answer_status(), 10, "the refusal")
        assert "invalid_argument" in status and "answer" in status
        again = asker.get(d.id)
        assert again.status == Status.OPEN and not again.answers
        editor.clear()
        editor.send_keys('["blue"]')
        page.d.find_element("css selector", "#open-detail form.answer button.approve").click()
        wait_until(lambda: "closed" in page.answer_status(), 10, "the accepted answer")
        assert asker.get(d.id).answers[0].answer == ["blue"]


def test_keyboard_only_approval(server, browser, kind):
    k = kind("keys")
    page = browser(server).open("?as=alice&roles=sre")
    page.wait_live()
    with server.client("deployer") as asker, \
            asking(asker, k, {"q": 1}, authorized_roles=["sre"]) as pending:
        wait_until(lambda: k in page.open_kinds(), 10, "the decision")
        keys = lambda *k: ActionChains(page.d).send_keys(*k).perform()  # to whatever has focus
        # j until our decision is selected (the shared server may list others).
        for _ in range(50):
            if page.js("return document.getElementById('open-detail').dataset.id") and k in page.detail():
                break
            keys("j")
        assert k in page.detail()
        assert page.js("return document.activeElement.classList.contains('item')")
        keys("a")
        assert page.js("return document.activeElement.id") == "rationale"
        keys("ok by keyboard")
        ActionChains(page.d).key_down(Keys.CONTROL).send_keys(Keys.ENTER).key_up(Keys.CONTROL).perform()
        decision = pending.result(timeout=30)
    assert decision.status == Status.APPROVED and decision.answers[0].rationale == "ok by keyboard"
