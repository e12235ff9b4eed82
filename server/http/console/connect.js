// A small client for the Connect protocol (JSON) that witness serves on its
// listen port: unary RPCs as `application/json`, server streams as
// `application/connect+json` (each message framed as 1 flag byte + 4-byte
// big-endian length + JSON; the end-of-stream frame has flag 0x02). Identity
// travels in headers chosen by the caller, or, for a console sign-in, in the
// server's own session cookie (same origin only, never to anyone else).

const BASE = "/witness.v1.WitnessService/";
const END_STREAM = 0x02;

/** An RPC that failed, with the Connect/gRPC code name (e.g. "not_found"). */
export class RpcError extends Error {
  constructor(code, message) {
    super(message || code);
    this.code = code;
  }
}

// Connect's mapping of HTTP status to code, for answers without a JSON body.
const HTTP_CODES = {
  400: "invalid_argument", 401: "unauthenticated", 403: "permission_denied",
  404: "unimplemented", 408: "deadline_exceeded", 409: "aborted",
  412: "failed_precondition", 413: "resource_exhausted", 429: "unavailable",
  431: "resource_exhausted", 502: "unavailable", 503: "unavailable", 504: "unavailable",
};

async function errorFrom(res) {
  const text = await res.text().catch(() => "");
  try {
    const body = JSON.parse(text);
    if (body && typeof body.code === "string") return new RpcError(body.code, body.message || "");
  } catch (_) { /* not JSON: fall through */ }
  const code = HTTP_CODES[res.status] || "unknown";
  return new RpcError(code, `HTTP ${res.status}${text ? ": " + text.slice(0, 200) : ""}`);
}

function frame(obj) {
  const body = new TextEncoder().encode(JSON.stringify(obj));
  const out = new Uint8Array(5 + body.length);
  new DataView(out.buffer).setUint32(1, body.length);
  out.set(body, 5);
  return out;
}

/** A client whose requests carry `headers()` (called for every request);
 * `credentials()` is the fetch credentials mode: "omit" unless the page is
 * signed in by the session cookie ("same-origin"). */
export function connectClient(headers, credentials = () => "omit") {
  async function call(method, request, signal) {
    let res;
    try {
      res = await fetch(BASE + method, {
        method: "POST",
        headers: { ...headers(), "content-type": "application/json", "connect-protocol-version": "1" },
        body: JSON.stringify(request),
        credentials: credentials(),
        cache: "no-store",
        signal,
      });
    } catch (e) {
      if (e && e.name === "AbortError") throw e;
      throw new RpcError("unavailable", `cannot reach witness: ${e && e.message ? e.message : e}`);
    }
    if (!res.ok) throw await errorFrom(res);
    return res.json();
  }

  // Yields each message of a server stream; returns at a clean end, throws
  // RpcError for an error end or a connection that drops mid-stream.
  // `onOpen` runs once the server has accepted the stream (HTTP 200).
  async function* stream(method, request, signal, onOpen) {
    let res;
    try {
      res = await fetch(BASE + method, {
        method: "POST",
        headers: { ...headers(), "content-type": "application/connect+json", "connect-protocol-version": "1" },
        body: frame(request),
        credentials: credentials(),
        cache: "no-store",
        signal,
      });
    } catch (e) {
      if (e && e.name === "AbortError") throw e;
      throw new RpcError("unavailable", `cannot reach witness: ${e && e.message ? e.message : e}`);
    }
    if (!res.ok) throw await errorFrom(res);
    if (onOpen) onOpen();
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buf = new Uint8Array(0);
    for (;;) {
      while (buf.length >= 5) {
        const flags = buf[0];
        const len = new DataView(buf.buffer, buf.byteOffset, buf.length).getUint32(1);
        if (buf.length < 5 + len) break;
        const msg = JSON.parse(decoder.decode(buf.subarray(5, 5 + len)));
        buf = buf.slice(5 + len);
        if (flags & END_STREAM) {
          if (msg && msg.error) throw new RpcError(msg.error.code || "unknown", msg.error.message || "");
          return;
        }
        yield msg;
      }
      let chunk;
      try {
        chunk = await reader.read();
      } catch (e) {
        if (e && e.name === "AbortError") throw e;
        throw new RpcError("unavailable", `stream dropped: ${e && e.message ? e.message : e}`);
      }
      if (chunk.done) throw new RpcError("unavailable", "stream ended without an end-of-stream frame");
      const next = new Uint8Array(buf.length + chunk.value.length);
      next.set(buf);
      next.set(chunk.value, buf.length);
      buf = next;
    }
  }

  return { call, stream };
}
