// witness console. Every piece of decision content reaches the page through
// `text()` / `textContent`, never as HTML; the server's Content-Security-Policy
// forbids inline script and style besides.
import { connectClient, RpcError } from "/console/connect.js";

const $ = (id) => document.getElementById(id);
const store = window.sessionStorage;

const state = {
  mode: "dev",          // "dev" or "token", from /console/config.json
  issuers: [],          // [{ name, login }] console sign-in, from /console/config.json
  session: false,       // signed in by the server's session cookie (not a token)
  me: null,             // { principal, roles, anonymous, source, session } from /console/whoami
  open: new Map(),      // id -> decision (open ones the principal may see)
  gone: new Map(),      // id -> decision that closed while the page watched it
  lastSeq: null,        // resume point: the last event applied (null: take a snapshot)
  listed: false,        // the open list holds a complete snapshot (SNAPSHOT_END seen since sign-in)
  streamAbort: null,
  selected: { open: null, closed: null },
  closed: [], closedToken: "",
  acked: new Set(),     // decisions this page has acknowledged
  view: "open",
  pendingVerdict: null, // "a"/"r" shortcut chosen, submitted with Ctrl+Enter
};

// ---------- identity ----------

// Three ways to be someone: a console sign-in (the HttpOnly session cookie,
// sent to this origin only), a bearer token kept in this tab's
// sessionStorage, or dev mode's principal/roles headers. The cookie is sent
// only while signed in by it, so a token or dev identity is never mixed
// with a session.
function headers() {
  if (state.session) return {};
  if (state.mode === "token") {
    const token = store.getItem("witness.token");
    return token ? { authorization: "Bearer " + token } : {};
  }
  const h = {};
  const p = store.getItem("witness.principal");
  const r = store.getItem("witness.roles");
  if (p) h["x-witness-principal"] = p;
  if (r) h["x-witness-roles"] = r;
  return h;
}
const credentials = () => (state.session ? "same-origin" : "omit");

const rpc = connectClient(headers, credentials);

async function whoami(withCookie = state.session) {
  const res = await fetch("/console/whoami", {
    headers: withCookie ? {} : headers(),
    credentials: withCookie ? "same-origin" : "omit",
    cache: "no-store",
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new RpcError(body.code || "unauthenticated", body.message || `HTTP ${res.status}`);
  return body;
}

/** The header's "who am I": principal · roles · where they came from. */
function showMe(me) {
  const w = $("whoami");
  $("signout").hidden = !me || !(state.session || (state.mode === "token" && store.getItem("witness.token")));
  if (!me) { w.replaceChildren(); w.title = ""; return; }
  const principal = el("span", "me-principal", me.anonymous ? "anonymous (read-only)" : me.principal);
  principal.id = "me-principal";
  const rs = me.roles && me.roles.length ? me.roles.join(", ") : "no roles";
  const roleSpan = el("span", "me-roles", rs);
  roleSpan.id = "me-roles";
  const source = el("span", "me-source", me.source || state.mode);
  source.id = "me-source";
  w.replaceChildren(principal, " · ", roleSpan, " · ", source);
  w.title = me.anonymous ? "" : `Signed in as ${me.principal}, roles ${rs}, from ${source.textContent}`;
}

/** The sign-in buttons (first) and the token form (second) while signed out. */
function showSignIn(signedOut) {
  $("signin").hidden = !signedOut || !state.issuers.length;
  document.body.dataset.signedIn = signedOut ? "" : (state.session ? "session" : "1");
}

function renderIssuers() {
  const box = $("signin-issuers");
  box.replaceChildren();
  for (const i of state.issuers) {
    // A plain navigation (the page's CSP forbids form posts): the server
    // sends the browser on to the provider.
    const a = el("a", "signin-button", `Sign in with ${i.name}`);
    a.href = i.login;
    a.dataset.issuer = i.name;
    box.append(a);
  }
  document.body.dataset.issuers = state.issuers.length ? "1" : "";
}

function signedOutBanner() {
  if (!state.issuers.length) return showBanner("Type your bearer token (top right) to sign in.", "info");
  const names = state.issuers.map((i) => i.name).join(" or ");
  showBanner(`Sign in with ${names} (top right) to see decisions. Scripts and break-glass: use a bearer token.`, "info");
}

function signedOut(status = "not signed in") {
  stopStream();
  resetOpen();
  state.me = null;
  showMe(null);
  showSignIn(true);
  setConn("idle", status);
}

async function signIn(known) {
  hideBanner();
  stopStream();
  setConn("connecting", "connecting…");
  resetOpen();
  try {
    state.me = known || await whoami();
  } catch (e) {
    const wasSession = state.session;
    state.session = false;
    signedOut();
    setConn("error", "not signed in");
    if (wasSession) return showBanner(`Your session has ended (${e.message}): sign in again.`, "info");
    const what = state.mode === "token" ? "The token was not accepted" : "Sign-in failed";
    showBanner(`${what}: ${e.message} (${e.code || "error"}). Nothing is shown until you sign in.`);
    if (state.mode === "token") store.removeItem("witness.token");
    return;
  }
  showMe(state.me);
  showSignIn(false);
  if (state.me.anonymous) showBanner("No principal chosen: you see only decisions asked anonymously and cannot answer. Enter a principal and roles.", "info");
  startStream();
  if (state.view === "closed") searchClosed();
}

/** Signed in by the session cookie from an earlier sign-in? (No token stored.) */
async function trySession() {
  let me = null;
  try { me = await whoami(true); } catch (_) { me = null; }
  if (me && me.session && !me.anonymous) {
    state.session = true;
    return signIn(me);
  }
  signedOut();
  signedOutBanner();
}

async function signOut() {
  if (state.session) {
    // Same-origin POST; the 303 it answers is not followed, the page reloads.
    let res;
    try {
      res = await fetch("/auth/logout", { method: "POST", credentials: "same-origin", redirect: "manual", cache: "no-store" });
    } catch (e) {
      return showBanner(`Signing out failed: ${e.message}`);
    }
    if (res.type !== "opaqueredirect" && !res.ok) return showBanner(`Signing out failed: HTTP ${res.status}`);
    location.reload();
    return;
  }
  store.removeItem("witness.token");
  signedOut("signed out");
}

function setupIdentity() {
  const form = $("identity");
  if (state.mode === "dev") {
    const q = new URLSearchParams(location.search);
    if (q.has("as")) store.setItem("witness.principal", q.get("as"));
    if (q.has("roles")) store.setItem("witness.roles", q.get("roles"));
    $("id-principal").value = store.getItem("witness.principal") || "";
    $("id-roles").value = store.getItem("witness.roles") || "";
    $("id-apply").textContent = "Apply";
  } else if (state.issuers.length) {
    $("id-apply").textContent = "Use token";
  }
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (state.mode === "token") {
      const t = $("id-token").value.trim();
      $("id-token").value = "";
      if (!t) return showBanner("Type a bearer token to sign in.");
      store.setItem("witness.token", t);
      state.session = false;
    } else {
      store.setItem("witness.principal", $("id-principal").value.trim());
      store.setItem("witness.roles", $("id-roles").value.split(",").map((s) => s.trim()).filter(Boolean).join(","));
    }
    signIn();
  });
  $("use-token").addEventListener("click", () => {
    const shown = document.body.dataset.tokenForm === "1";
    document.body.dataset.tokenForm = shown ? "" : "1";
    $("use-token").setAttribute("aria-expanded", String(!shown));
    if (!shown) $("id-token").focus();
  });
  $("signout").addEventListener("click", signOut);
}

// ---------- the live stream of open decisions ----------

function stopStream() {
  if (state.streamAbort) state.streamAbort.abort();
  state.streamAbort = null;
}

function resetOpen() {
  state.open.clear();
  state.gone.clear();
  state.lastSeq = null;
  state.listed = false;
  state.selected.open = null;
  renderOpen();
}

async function startStream() {
  stopStream();
  const abort = new AbortController();
  state.streamAbort = abort;
  let backoff = 500;
  while (!abort.signal.aborted) {
    // afterSequence 0 means "no resume" to the server: from an empty log, take a snapshot again.
    const resume = state.lastSeq !== null && state.lastSeq > 0;
    const request = resume ? { afterSequence: String(state.lastSeq) } : { includeOpen: true };
    const snapshot = new Map();
    setConn(resume ? "reconnecting" : "connecting", resume ? "resuming…" : "connecting…");
    try {
      // A resumed stream is live as soon as the server accepts it (there may
      // be no event for a while); a fresh one once its snapshot is complete.
      const opened = () => { if (resume) { setConn("live", "live"); backoff = 500; } };
      for await (const msg of rpc.stream("StreamDecisions", request, abort.signal, opened)) {
        const ev = msg.event || {};
        const seq = Number(ev.sequence || 0);
        if (ev.type === "EVENT_TYPE_SNAPSHOT_END") {
          state.open = snapshot;
          state.lastSeq = seq;
          state.listed = true;
          setConn("live", "live");
          backoff = 500;
          renderOpen();
        } else if (ev.snapshot) {
          if (ev.decision) snapshot.set(ev.decision.id, ev.decision);
        } else {
          if (ev.decision) apply(ev.decision);
          state.lastSeq = seq;
        }
      }
      // A clean end (server shutting down): resume from where we are.
    } catch (e) {
      if (abort.signal.aborted) return;
      if (e.code === "unauthenticated" && state.session) {
        state.session = false;
        signedOut();
        showBanner(`Your session has ended (${e.message}): sign in again.`, "info");
        return;
      }
      if (e.code === "unauthenticated" || e.code === "permission_denied") {
        setConn("error", e.code);
        showBanner(`The stream was refused: ${e.message} (${e.code}).`);
        return;
      }
      if (e.code === "out_of_range") state.lastSeq = null; // the log moved on: take a new snapshot
      // Until a first snapshot completes there is nothing to re-connect: still connecting.
      if (state.listed) setConn("reconnecting", `reconnecting (${e.code || "error"})`);
      else setConn("connecting", "connecting…", `the last attempt failed (${e.code || "error"}); retrying`);
    }
    await new Promise((r) => setTimeout(r, backoff));
    backoff = Math.min(backoff * 2, 8000);
  }
}

/** Applies a live event's decision state to the open list. */
function apply(d) {
  const prev = state.open.get(d.id);
  if (prev && Number(prev.version || 0) > Number(d.version || 0)) return;
  if (statusOf(d) === "open") {
    state.open.set(d.id, d);
  } else {
    state.open.delete(d.id);
    if (prev || state.selected.open === d.id) state.gone.set(d.id, d);
  }
  renderOpen();
}

// ---------- decisions: small helpers ----------

const STATUS = ["unspecified", "open", "approved", "rejected", "cancelled", "expired", "context_changed"];
function statusOf(d) {
  const s = d.status;
  if (typeof s === "number") return STATUS[s] || "unspecified";
  return String(s || "STATUS_UNSPECIFIED").replace(/^STATUS_/, "").toLowerCase();
}
function verdictOf(a) {
  const v = a.verdict;
  if (v === 1 || v === "VERDICT_APPROVE") return "approve";
  if (v === 2 || v === "VERDICT_REJECT") return "reject";
  return "unspecified";
}
const approvals = (d) => (d.answers || []).filter((a) => verdictOf(a) === "approve").length;
const required = (d) => Number(d.requiredApprovals || 1);
const roles = (d) => d.authorizedRoles || [];

/** Whether the signed-in principal may answer `d` (the server decides; this only shapes the page). */
function canAnswer(d) {
  const me = state.me;
  if (!me || me.anonymous || statusOf(d) !== "open") return false;
  if (!roles(d).some((r) => (me.roles || []).includes(r))) return false;
  if (d.askedBy === me.principal && !(d.policy && d.policy.allowSelfApproval)) return false;
  return !(d.answers || []).some((a) => a.operator === me.principal);
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}
const json = (v) => JSON.stringify(v === undefined ? null : v, null, 2);
// Local time, year first and 24-hour: unambiguous at 3 a.m. in any locale.
function time(t) {
  if (!t) return "—";
  const d = new Date(t);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

function span(ms) {
  const s = Math.max(0, Math.round(Math.abs(ms) / 1000));
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${String(sec).padStart(2, "0")}s`;
  return `${sec}s`;
}
function expiryText(expiresAt) {
  if (!expiresAt) return "no expiry";
  const left = new Date(expiresAt).getTime() - Date.now();
  return left > 0 ? `expires in ${span(left)}` : "expiring now";
}
function ago(t) { return t ? `${span(Date.now() - new Date(t).getTime())} ago` : ""; }

function ackText(d) {
  if (d.deliveredAt) return `acked via ${d.deliveredVia || "?"} ${ago(d.deliveredAt)}`;
  return d.fallbackFired ? "NOT ACKED · fallback paged" : "not acked";
}

function badge(d) {
  const s = statusOf(d);
  return el("span", `badge s-${s}`, s.replace("_", " "));
}

// Expiry countdowns tick in place once a second: a display clock, not polling.
function expiryEl(d) {
  const e = el("span", "expiry", expiryText(d.expiresAt));
  if (d.expiresAt) e.dataset.expires = d.expiresAt;
  return e;
}
function tick() {
  for (const e of document.querySelectorAll("[data-expires]")) {
    e.textContent = expiryText(e.dataset.expires);
    e.classList.toggle("soon", new Date(e.dataset.expires).getTime() - Date.now() < 60000);
  }
}

// ---------- open list ----------

function sortOpen(a, b) {
  // Soonest expiry first (most urgent), then oldest first.
  const ea = a.expiresAt ? Date.parse(a.expiresAt) : Infinity;
  const eb = b.expiresAt ? Date.parse(b.expiresAt) : Infinity;
  if (ea !== eb) return ea - eb;
  return Date.parse(a.createdAt || 0) - Date.parse(b.createdAt || 0) || (a.id < b.id ? -1 : 1);
}

function fillItem(li, d) {
  li.replaceChildren();
  li.append(el("span", "kind", d.kind), badge(d));
  const meta = el("div", "meta");
  const n = approvals(d), need = required(d);
  meta.append(el("span", "asker", `asked by ${d.askedBy || "?"}`));
  meta.append(el("span", "votes", statusOf(d) === "open" ? `votes ${n}/${need}` : decidedBy(d)));
  if (statusOf(d) === "open") {
    meta.append(expiryEl(d));
    meta.append(el("span", d.deliveredAt ? "ack" : "ack unacked", ackText(d)));
  } else {
    meta.append(el("span", "closed-at", `closed ${time(d.closedAt)}`));
  }
  meta.append(el("span", "roles", `roles ${roles(d).join(", ")}`));
  li.append(meta);
  li.setAttribute("aria-label", `${d.kind}, ${statusOf(d)}, asked by ${d.askedBy}`);
}

function renderList(ul, decisions, selectedId, which) {
  const have = new Map([...ul.children].map((li) => [li.dataset.id, li]));
  decisions.forEach((d, i) => {
    let li = have.get(d.id);
    if (!li) {
      li = el("li", "item");
      li.dataset.id = d.id;
      li.tabIndex = 0;
      li.setAttribute("role", "option");
      li.addEventListener("click", () => select(which, d.id, true));
      li.addEventListener("keydown", (ev) => {
        if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); select(which, li.dataset.id, true); focusDetail(which); }
      });
    }
    have.delete(d.id);
    fillItem(li, d);
    li.setAttribute("aria-selected", String(d.id === selectedId));
    if (ul.children[i] !== li) ul.insertBefore(li, ul.children[i] || null);
  });
  for (const li of have.values()) li.remove();
}

function renderOpen() {
  const list = [...state.open.values()].sort(sortOpen);
  renderList($("open-list"), list, state.selected.open, "open");
  $("open-empty").hidden = list.length > 0;
  // "Nothing for you" only once the snapshot says so; until then, the connection's state.
  $("open-empty").textContent = state.listed ? "No open decisions you may see." : $("conn").textContent;
  $("open-count").textContent = String(list.length);
  document.title = list.length ? `(${list.length}) witness console` : "witness console";
  renderDetail("open");
}

// ---------- detail ----------

function decidedBy(d) {
  const ops = (d.answers || []).map((a) => a.operator);
  if (ops.length) return `decided by ${[...new Set(ops)].join(", ")}`;
  if (d.closedBy) return `closed by ${d.closedBy}`;
  return statusOf(d) === "expired" ? "expired (nobody decided)" : "";
}

function facts(pairs) {
  const dl = el("dl", "facts");
  for (const [k, v] of pairs) {
    if (v === null || v === undefined || v === "") continue;
    dl.append(el("dt", null, k));
    const dd = el("dd");
    if (v instanceof Node) dd.append(v); else dd.textContent = String(v);
    dl.append(dd);
  }
  return dl;
}

function section(title, ...children) {
  const s = el("section", "block");
  s.append(el("h3", null, title), ...children);
  return s;
}

function votes(d) {
  const ul = el("ul", "votes");
  for (const a of d.answers || []) {
    const v = verdictOf(a);
    const li = el("li", `vote v-${v}`);
    const who = el("div", "who", `${v === "approve" ? "✔ APPROVE" : v === "reject" ? "✘ REJECT" : v} · ${a.operator}`);
    if (a.submittedBy) who.append(document.createTextNode(` (submitted by ${a.submittedBy})`));
    who.append(document.createTextNode(` · ${time(a.answeredAt)}`));
    li.append(who, el("p", "why", a.rationale || ""));
    if (a.answer !== undefined && a.answer !== null) li.append(el("pre", "json", json(a.answer)));
    ul.append(li);
  }
  const frag = el("div");
  if (!(d.answers || []).length) frag.append(el("p", "novotes", "No votes yet."));
  frag.append(ul);
  if (statusOf(d) === "open") {
    const left = required(d) - approvals(d);
    frag.append(el("p", "waiting", `Waiting for ${left} more approval${left === 1 ? "" : "s"} (${approvals(d)} of ${required(d)}).`));
  }
  return frag;
}

function escalations(d) {
  const list = d.escalations;
  if (!Array.isArray(list) || !list.length) return null;
  const ul = el("ul", "votes");
  for (const e of list) {
    const parts = Object.entries(e || {}).map(([k, v]) => `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`);
    ul.append(el("li", "vote", parts.join(" · ")));
  }
  return section("Escalations", ul);
}

function info(d) {
  const box = el("div", "info");
  const head = el("div", "dhead");
  head.append(el("h2", null, d.kind), badge(d));
  box.append(head);
  const open = statusOf(d) === "open";
  box.append(facts([
    ["asked by", d.askedBy],
    ["asked", `${time(d.createdAt)} (${ago(d.createdAt)})`],
    ["approvals", `${approvals(d)} of ${required(d)} required`],
    ["expires", open ? expiryEl(d) : d.expiresAt ? time(d.expiresAt) : expiryText(null)],
    ["roles", roles(d).join(", ")],
    ["on timeout", d.policy && d.policy.onTimeout],
    ["surfaces", (d.surfaces || []).join(", ") || "—"],
    ["ack", ackText(d)],
    ["policy", d.policy ? d.policy.matchedKind || "default" : ""],
    ["closed", d.closedAt ? time(d.closedAt) : ""],
    ["closed by", d.closedBy],
    ["reason", d.closeReason],
  ]));
  const long = facts([
    ["id", d.id],
    ["context hash", d.contextHash || "none (asked without context)"],
    ["context confirmed", d.contextConfirmedAt ? `${time(d.contextConfirmedAt)} (${ago(d.contextConfirmedAt)})` : d.contextHash ? "not since asked" : ""],
  ]);
  long.classList.add("long");
  box.append(long);
  if (!open) box.append(el("p", "closed-note", `${statusOf(d).replace("_", " ").toUpperCase()}${decidedBy(d) ? " — " + decidedBy(d) : ""}`));
  box.append(section("Input", el("pre", "json", json(d.input))));
  if (d.responseSchema !== undefined && d.responseSchema !== null) box.append(section("Response schema", el("pre", "json", json(d.responseSchema))));
  box.append(section("Votes", votes(d)));
  const esc = escalations(d);
  if (esc) box.append(esc);
  return box;
}

function currentDecision(which) {
  const id = state.selected[which];
  if (!id) return null;
  if (which === "open") return state.open.get(id) || state.gone.get(id) || null;
  return state.closed.find((d) => d.id === id) || null;
}

function renderDetail(which) {
  const pane = $(which === "open" ? "open-detail" : "closed-detail");
  const d = currentDecision(which);
  if (!d) {
    pane.replaceChildren(el("p", "placeholder", which === "open"
      ? "Select a decision (click, or j/k) to see it in full and answer it."
      : "Select a decision to see who decided and its receipt."));
    delete pane.dataset.id;
    return;
  }
  // Keep the answer form (and what the operator typed) across live updates.
  let form = pane.dataset.id === d.id ? pane.querySelector("form.answer") : null;
  const receipt = pane.dataset.id === d.id ? pane.querySelector(".receipt") : null;
  if (which === "open" && canAnswer(d)) {
    if (!form) form = answerForm(d);
  } else if (form && !form.dataset.sent) {
    // An answer in flight or recorded keeps its form, to show its result.
    form = null;
  }
  const nodes = [info(d)];
  if (form) nodes.push(form);
  else if (which === "open" && statusOf(d) === "open") nodes.push(el("p", "cannot", whyNot(d)));
  if (receipt) nodes.push(receipt);
  pane.replaceChildren(...nodes);
  pane.dataset.id = d.id;
  tick();
}

function whyNot(d) {
  const me = state.me;
  if (!me || me.anonymous) return "Sign in as a principal to answer.";
  if ((d.answers || []).some((a) => a.operator === me.principal)) return "You have voted on this decision; it waits for other operators.";
  if (d.askedBy === me.principal) return "You asked this decision; its policy does not let you answer it.";
  return `Answering needs one of the roles: ${roles(d).join(", ")}.`;
}

// ---------- answering ----------

const SIMPLE = new Set(["string", "number", "integer", "boolean"]);

function schemaFields(schema) {
  if (!schema || schema.type !== "object" || !schema.properties) return null;
  const props = Object.entries(schema.properties);
  if (!props.length || !props.every(([, p]) => p && (Array.isArray(p.enum) || SIMPLE.has(p.type)))) return null;
  return props;
}

function skeleton(s) {
  if (!s || typeof s !== "object") return null;
  if ("default" in s) return s.default;
  if (Array.isArray(s.enum)) return s.enum[0];
  switch (s.type) {
    case "object": {
      const o = {};
      for (const [k, p] of Object.entries(s.properties || {})) o[k] = skeleton(p);
      return o;
    }
    case "array": return [];
    case "string": return "";
    case "number": case "integer": return 0;
    case "boolean": return false;
    default: return null;
  }
}

function answerForm(d) {
  const form = el("form", "answer");
  form.noValidate = true;
  form.append(el("h3", null, "Your answer"));
  const schema = d.responseSchema;
  const fields = schema ? schemaFields(schema) : null;
  const requiredProps = new Set((schema && schema.required) || []);
  let collect = () => undefined;
  if (fields) {
    const inputs = [];
    for (const [name, p] of fields) {
      const row = el("div", "field");
      const id = `ans-${name.replace(/[^A-Za-z0-9_-]/g, "_")}`;
      const label = el("label", requiredProps.has(name) ? "req" : null, p.title || name);
      label.htmlFor = id;
      let input;
      if (Array.isArray(p.enum) || p.type === "boolean") {
        input = el("select");
        input.append(el("option", null, "—"));
        input.lastChild.value = "";
        for (const v of Array.isArray(p.enum) ? p.enum : [true, false]) {
          const o = el("option", null, typeof v === "string" ? v : JSON.stringify(v));
          o.value = JSON.stringify(v);
          input.append(o);
        }
      } else {
        input = el("input");
        input.type = p.type === "string" ? "text" : "number";
        if (p.type === "integer") input.step = "1";
        if (p.type === "number") input.step = "any";
      }
      input.id = id;
      input.name = name;
      row.append(label, input);
      if (p.description) row.append(el("span", "hint", p.description));
      form.append(row);
      inputs.push([name, p, input]);
    }
    collect = () => {
      const out = {};
      for (const [name, p, input] of inputs) {
        const raw = input.value;
        if (raw === "") {
          if (requiredProps.has(name)) throw new Error(`answer.${name}: required`);
          continue;
        }
        if (input.tagName === "SELECT") out[name] = JSON.parse(raw);
        else if (p.type === "string") out[name] = raw;
        else {
          const n = Number(raw);
          if (!Number.isFinite(n)) throw new Error(`answer.${name}: not a number`);
          out[name] = n;
        }
      }
      return out;
    };
  } else if (schema !== undefined && schema !== null) {
    const label = el("label", "req", "Answer (JSON, checked against the response schema)");
    label.htmlFor = "ans-json";
    const ta = el("textarea", "jsoned");
    ta.id = "ans-json";
    ta.spellcheck = false;
    ta.value = json(skeleton(schema));
    form.append(label, ta);
    collect = () => {
      try { return JSON.parse(ta.value); } catch (e) { throw new Error(`answer: not valid JSON (${e.message})`); }
    };
  }
  const rl = el("label", "req", "Rationale");
  rl.htmlFor = "rationale";
  const rationale = el("textarea");
  rationale.id = "rationale";
  rationale.name = "rationale";
  rationale.placeholder = "Why? Recorded in the audit log with your name.";
  form.append(rl, rationale);
  const row = el("div", "row");
  const approve = el("button", "approve", "Approve");
  approve.type = "button";
  approve.title = "a, then Ctrl+Enter";
  const reject = el("button", "reject", "Reject");
  reject.type = "button";
  reject.title = "r, then Ctrl+Enter";
  const status = el("span", "status");
  status.setAttribute("role", "status");
  row.append(approve, reject, status);
  form.append(row);

  const submit = async (verdict) => {
    status.className = "status";
    const why = rationale.value.trim();
    let answer;
    try {
      if (!why) throw new Error("rationale: required — say why, it is recorded with your name");
      answer = collect();
    } catch (e) {
      status.className = "status err";
      status.textContent = e.message;
      (why ? form.querySelector("input, select, textarea.jsoned") || rationale : rationale).focus();
      return;
    }
    const req = { decisionId: d.id, requestId: uuid(), verdict: verdict === "approve" ? "VERDICT_APPROVE" : "VERDICT_REJECT", rationale: why };
    if (answer !== undefined) req.answer = answer;
    approve.disabled = reject.disabled = true;
    form.dataset.sent = "1";
    status.textContent = "sending…";
    try {
      const res = await rpc.call("Answer", req);
      const outcome = String(res.outcome || "").replace(/^ANSWER_OUTCOME_/, "").toLowerCase();
      status.className = "status ok";
      status.textContent = outcome === "awaiting_approvals"
        ? `Recorded: ${verdict}d. Waiting for more approvals.`
        : outcome === "context_changed" ? "The context changed: the decision closed without your answer."
          : `Recorded: ${verdict}d. The decision is closed.`;
      for (const e of form.querySelectorAll("input, select, textarea")) e.disabled = true;
      if (res.decision) apply(res.decision);
    } catch (e) {
      status.className = "status err";
      status.textContent = `Refused (${e.code}): ${e.message}`;
      approve.disabled = reject.disabled = false;
      delete form.dataset.sent;
    }
  };
  approve.addEventListener("click", () => submit("approve"));
  reject.addEventListener("click", () => submit("reject"));
  rationale.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
      ev.preventDefault();
      if (state.pendingVerdict) submit(state.pendingVerdict);
      else { status.className = "status err"; status.textContent = "Choose: press a (approve) or r (reject) first, or use the buttons."; }
    }
  });
  return form;
}

function uuid() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// ---------- selection and acknowledgement ----------

function select(which, id, byUser) {
  state.selected[which] = id;
  if (which === "open") for (const k of state.gone.keys()) if (k !== id) state.gone.delete(k);
  state.pendingVerdict = null;
  for (const li of $(`${which}-list`).children) li.setAttribute("aria-selected", String(li.dataset.id === id));
  if (which === "closed") loadClosedDetail(id);
  renderDetail(which);
  if (which === "open" && byUser) maybeAck(state.open.get(id));
}

// A person who could answer has opened the decision in a visible page: that
// is the "a human has seen it" the ACK stands for. Never on page load or for
// a decision merely listed, so an unattended screen does not silence the
// fallback pager.
function maybeAck(d) {
  if (!d || d.deliveredAt || state.acked.has(d.id) || document.visibilityState !== "visible") return;
  const me = state.me;
  if (!me || me.anonymous || !roles(d).some((r) => (me.roles || []).includes(r))) return;
  state.acked.add(d.id);
  rpc.call("AckDelivery", { decisionId: d.id, surface: "console" })
    .then((res) => { if (res.decision && statusOf(res.decision) === "open") apply(res.decision); })
    .catch(() => state.acked.delete(d.id));
}

function focusDetail(which) {
  const pane = $(which === "open" ? "open-detail" : "closed-detail");
  const target = pane.querySelector("#rationale") || pane;
  if (target === pane) pane.tabIndex = -1;
  target.focus();
}

function move(step) {
  const ul = $(`${state.view}-list`);
  const items = [...ul.children];
  if (!items.length) return;
  const cur = items.findIndex((li) => li.dataset.id === state.selected[state.view]);
  const next = items[Math.max(0, Math.min(items.length - 1, cur < 0 ? 0 : cur + step))];
  select(state.view, next.dataset.id, true);
  next.focus();
  next.scrollIntoView({ block: "nearest" });
}

// ---------- closed decisions ----------

const CLOSED = ["STATUS_APPROVED", "STATUS_REJECTED", "STATUS_CANCELLED", "STATUS_EXPIRED", "STATUS_CONTEXT_CHANGED"];

async function searchClosed(more) {
  const f = $("f-status").value;
  const statuses = f === "closed" ? CLOSED : f === "all" ? [] : [f];
  const kinds = $("f-kind").value.split(/[\s,]+/).filter(Boolean);
  if (!more) { state.closed = []; state.closedToken = ""; state.selected.closed = null; }
  try {
    const res = await rpc.call("ListDecisions", { statuses, kinds, pageSize: 100, pageToken: more ? state.closedToken : "" });
    state.closed = state.closed.concat(res.decisions || []);
    state.closedToken = res.nextPageToken || "";
    hideBanner();
  } catch (e) {
    showBanner(`Listing decisions failed: ${e.message} (${e.code}).`);
  }
  renderList($("closed-list"), state.closed, state.selected.closed, "closed");
  $("closed-empty").hidden = state.closed.length > 0;
  $("closed-more").hidden = !state.closedToken;
  renderDetail("closed");
}

async function loadClosedDetail(id) {
  const pane = $("closed-detail");
  try {
    const res = await rpc.call("GetDecision", { decisionId: id });
    if (state.selected.closed !== id) return;
    const i = state.closed.findIndex((d) => d.id === id);
    if (i >= 0 && res.decision) state.closed[i] = res.decision;
    renderDetail("closed");
    pane.querySelector(".receipt")?.remove();
    pane.append(receiptBlock(res.receipt, res.decision));
  } catch (e) {
    if (state.selected.closed === id) pane.append(el("p", "err", `Could not read the decision: ${e.message} (${e.code}).`));
  }
}

function receiptBlock(r, d) {
  const box = el("section", "receipt");
  box.append(el("h3", null, "Receipt"));
  if (!r) {
    box.append(el("p", "placeholder", d && statusOf(d) === "open" ? "No receipt while the decision is open." : "No receipt (receipts are not enabled on this server)."));
    return box;
  }
  const f = facts([["key id", r.keyId], ["signature", `${r.signature || ""} (Ed25519, base64)`]]);
  f.classList.add("long");
  box.append(f);
  box.append(el("p", "placeholder", `Signed body (canonical JSON). To check it offline: witness receipt get ${d ? d.id : "ID"} > receipt.json; witness receipt verify receipt.json --public-key KEYFILE`));
  box.append(el("pre", "json", r.body || ""));
  return box;
}

// ---------- page chrome ----------

function setConn(s, text, why = "") {
  const c = $("conn");
  c.dataset.state = s;
  c.textContent = text;
  c.title = why;
  if (!state.listed) $("open-empty").textContent = text;
}
function showBanner(msg, kind) {
  const b = $("banner");
  b.textContent = msg;
  b.className = kind === "info" ? "banner info" : "banner";
  b.hidden = false;
}
function hideBanner() { $("banner").hidden = true; }

function showView(v) {
  state.view = v;
  $("view-open").hidden = v !== "open";
  $("view-closed").hidden = v !== "closed";
  $("tab-open").setAttribute("aria-pressed", String(v === "open"));
  $("tab-closed").setAttribute("aria-pressed", String(v === "closed"));
  if (v === "closed" && state.me) searchClosed();
}

let gPending = false;
function onKey(ev) {
  const t = ev.target;
  const typing = t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT");
  if (ev.key === "Escape") {
    const li = [...$(`${state.view}-list`).children].find((x) => x.dataset.id === state.selected[state.view]);
    if (li) { li.focus(); ev.preventDefault(); }
    return;
  }
  if (typing || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if (gPending) {
    gPending = false;
    if (ev.key === "o") { showView("open"); ev.preventDefault(); }
    if (ev.key === "c") { showView("closed"); ev.preventDefault(); }
    return;
  }
  switch (ev.key) {
    case "j": move(1); break;
    case "k": move(-1); break;
    case "g": gPending = true; break;
    case "/": showView("closed"); $("f-kind").focus(); break;
    case "a": case "r": {
      const d = state.view === "open" ? currentDecision("open") : null;
      const rationale = $("rationale");
      if (!d || !rationale) return;
      state.pendingVerdict = ev.key === "a" ? "approve" : "reject";
      const s = document.querySelector("form.answer .status");
      if (s) { s.className = "status"; s.textContent = `Ctrl+Enter to ${state.pendingVerdict}`; }
      rationale.focus();
      break;
    }
    default: return;
  }
  ev.preventDefault();
}

async function main() {
  try {
    const cfg = await (await fetch("/console/config.json", { credentials: "omit", cache: "no-store" })).json();
    state.mode = cfg.mode === "token" ? "token" : "dev";
    // Only the server's own sign-in routes become links.
    state.issuers = (Array.isArray(cfg.issuers) ? cfg.issuers : [])
      .filter((i) => i && typeof i.name === "string" && typeof i.login === "string" && i.login.startsWith("/auth/login?"));
  } catch (e) {
    setConn("error", "not connected");
    showBanner(`Cannot reach witness: ${e.message}`);
    return;
  }
  document.body.dataset.mode = state.mode;
  renderIssuers();
  setupIdentity();
  $("tab-open").addEventListener("click", () => showView("open"));
  $("tab-closed").addEventListener("click", () => showView("closed"));
  $("closed-filter").addEventListener("submit", (ev) => { ev.preventDefault(); searchClosed(); });
  $("closed-more").addEventListener("click", () => searchClosed(true));
  document.addEventListener("keydown", onKey);
  setInterval(tick, 1000);
  renderOpen();
  renderDetail("closed");
  if (state.mode === "dev" || store.getItem("witness.token")) signIn();
  else if (state.issuers.length) trySession();
  else { signedOut(); signedOutBanner(); }
}

main();
