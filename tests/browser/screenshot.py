"""Takes docs/src/console.png, the console screenshot in the book, from headless
Chromium against a real server (`make screenshot`). Not part of the test run:
pytest collects it only when named on the command line."""

from __future__ import annotations

from datetime import timedelta

from conftest import ROOT, wait_until

POLICIES = """
[[policies]]
kind = "scram.*"
required_approvals = 2
timeout = "15m"
context_max_age = "30s"

[[policies]]
kind = "*"
timeout = "1h"
"""


def test_screenshot(fresh_server, browser):
    srv = fresh_server(POLICIES)
    with srv.client("deploy-bot") as bot, srv.client("ci") as ci, srv.client("bob", ["sre"]) as bob:
        bot.ask_nowait("deploy.api-rollout", {
            "service": "api", "version": "1.4.2", "from": "1.4.1",
            "canary": {"error_rate": 0.0021, "p99_ms": 182, "hosts": 3},
            "change": "https://git.example/api/compare/1.4.1...1.4.2",
        }, authorized_roles=["sre"], surfaces=["console"], timeout=timedelta(minutes=25),
            response_schema={"type": "object", "required": ["rollout_percent"], "properties": {
                "rollout_percent": {"type": "integer", "description": "share of traffic for the new version"},
                "window": {"enum": ["now", "after-peak"]}}})
        scram = bot.ask_nowait("scram.confirm-global-readonly", {
            "reason": "replication lag 94 s on eu-west primary", "regions": ["eu-west", "us-east"],
            "effect": "every write path returns 503 until lifted",
        }, authorized_roles=["sre"], surfaces=["console", "pager"], context={"lag_s": 94, "primary": "db-eu-1"})
        bob.answer(scram.id, "approve", "lag confirmed on the dashboard; readonly is the safe move")
        ci.ask_nowait("db.drop-index", {"table": "orders", "index": "orders_legacy_status_idx", "size": "41 GB"},
                      authorized_roles=["dba", "sre"], timeout=timedelta(minutes=3))
    page = browser(srv).open("?as=alice&roles=sre")
    page.wait_live()
    wait_until(lambda: len(page.open_kinds()) == 3, 10, "three open decisions")
    page.select("scram.confirm-global-readonly")
    page.d.find_element("id", "rationale").send_keys("agree: lag still rising, go readonly")
    (ROOT / "docs" / "src").mkdir(parents=True, exist_ok=True)
    page.d.save_screenshot(str(ROOT / "docs" / "src" / "console.png"))
