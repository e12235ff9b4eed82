"""A page served from another origin tries every state-changing route of a
dev-mode witness (what `make run` starts), as a cross-site attacker would:
no-cors fetches with CORS-safelisted content types, a text/plain form that
smuggles JSON, and CORS requests that need a preflight. Nothing may be
recorded (issue 28.2)."""

from __future__ import annotations

import json

from conftest import wait_until

EVIL_PAGE = """<!doctype html>
<html><body>
<iframe name="sink" id="sink"></iframe>
<form id="form-answer" method="POST" enctype="text/plain" target="sink"></form>
<form id="form-connect" method="POST" enctype="application/x-www-form-urlencoded" target="sink">
  <input name="decisionId" value="">
</form>
<script>
const W = %(witness)s, ID = %(id)s;
const results = {};
async function attempt(name, url, init) {
  try {
    const r = await fetch(url, init);
    results[name] = "sent:" + r.type + ":" + r.status;
  } catch (e) {
    results[name] = "blocked:" + e.name;
  }
}
const ask = JSON.stringify({kind: "evil.ask", input: {}, responseShape: {}, authorizedRoles: ["sre"],
                            surfaces: ["console"], operator: "mallory"});
const answer = JSON.stringify({operator: "mallory", rationale: "csrf", answer: {approved: true}});
(async () => {
  await attempt("v01 ask no-cors text/plain", W + "/v1/decisions",
    {method: "POST", mode: "no-cors", headers: {"content-type": "text/plain"}, body: ask});
  await attempt("v01 answer no-cors text/plain", W + "/v1/decisions/" + ID + "/answer",
    {method: "POST", mode: "no-cors", headers: {"content-type": "text/plain"}, body: answer});
  await attempt("v01 answer no-cors form", W + "/v1/decisions/" + ID + "/answer",
    {method: "POST", mode: "no-cors", body: new URLSearchParams({operator: "mallory"})});
  await attempt("connect ask no-cors text/plain", W + "/witness.v1.WitnessService/Ask",
    {method: "POST", mode: "no-cors", headers: {"content-type": "text/plain"},
     body: JSON.stringify({kind: "evil.connect", authorizedRoles: ["sre"]})});
  await attempt("connect answer cors json", W + "/witness.v1.WitnessService/Answer",
    {method: "POST", headers: {"content-type": "application/json", "x-witness-principal": "mallory",
     "x-witness-roles": "sre"},
     body: JSON.stringify({decisionId: ID, verdict: "VERDICT_APPROVE", rationale: "csrf"})});
  await attempt("grpc-web ask cors", W + "/witness.v1.WitnessService/Ask",
    {method: "POST", headers: {"content-type": "application/grpc-web+proto", "x-grpc-web": "1"},
     body: new Uint8Array([0, 0, 0, 0, 0])});
  await attempt("v01 ask cors json", W + "/v1/decisions",
    {method: "POST", headers: {"content-type": "application/json"}, body: ask});
  // The classic: a text/plain form whose one field spells JSON.
  const f = document.getElementById("form-answer");
  f.action = W + "/v1/decisions/" + ID + "/answer";
  const input = document.createElement("input");
  input.name = answer.slice(0, -1) + ', "x": "';
  input.value = '"}';
  f.appendChild(input);
  const loaded = () => new Promise(res => document.getElementById("sink").addEventListener("load", res, {once: true}));
  let wait = loaded();
  f.submit();
  await wait;
  results["v01 answer text/plain form"] = "submitted";
  const g = document.getElementById("form-connect");
  g.action = W + "/witness.v1.WitnessService/Answer";
  g.querySelector("input").value = ID;
  wait = loaded();
  g.submit();
  await wait;
  results["connect answer urlencoded form"] = "submitted";
  window.__results = results;
})();
</script>
</body></html>
"""


def test_a_cross_origin_page_can_neither_ask_nor_answer(fresh_server, browser, evil_site, kind):
    srv = fresh_server()
    asker = srv.client("deployer")
    d = asker.ask_nowait(kind("deploy.csrf"), {"service": "api"}, authorized_roles=["sre"])
    evil_site["html"] = EVIL_PAGE % {"witness": json.dumps(srv.url), "id": json.dumps(d.id)}
    tab = browser(srv)
    tab.d.get(evil_site["url"])
    results = wait_until(lambda: tab.js("return window.__results || null"), 20, "the attack to finish")
    assert len(results) == 9, results
    # The CORS attempts never got past their preflight.
    for name in ["connect answer cors json", "grpc-web ask cors", "v01 ask cors json"]:
        assert results[name].startswith("blocked"), (name, results[name])
    # Nothing was recorded: the decision is untouched and nothing else exists.
    reader = srv.client("alice", roles=["sre"])
    after = reader.get(d.id)
    assert after.is_open, after
    assert list(after.answers) == [], after.answers
    everything = list(srv.client("deployer").list()) + list(reader.list())
    assert [x.id for x in everything if x.id != d.id] == [], everything
