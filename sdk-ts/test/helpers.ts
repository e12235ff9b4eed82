// Test harness: runs the real `witness` binary with its own config and
// database in a temp directory, and waits with deadlines (never a bare sleep).
import { spawn, type ChildProcess } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync, openSync, closeSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { WitnessClient, type WitnessClientOptions } from "../dist/index.js";

/** The server binary: `WITNESS_BIN`, else the repository's debug build. */
export const WITNESS_BIN =
  process.env.WITNESS_BIN ||
  join(dirname(fileURLToPath(import.meta.url)), "..", "..", "target", "debug", "witness");

/** Fails loudly when the server binary is missing. */
export function requireBinary(): void {
  try {
    accessSync(WITNESS_BIN, constants.X_OK);
  } catch {
    throw new Error(
      `witness server binary not found or not executable at ${WITNESS_BIN}; ` +
        "build it with `cargo build` in the repository root or set WITNESS_BIN",
    );
  }
}

/** A free TCP port on loopback (listen on 0, read it, close). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Lowercase hex SHA-256 of a token, as the config stores it. */
export function sha256(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

export interface ServerOptions {
  /** TOML appended after the `[store]` section. */
  extraToml?: string;
  /** A fixed port (kept across restarts); default: port 0. */
  port?: number;
}

/** A running witness server. */
export class WitnessServer {
  readonly dir: string;
  readonly config: string;
  port: number;
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  readonly #stderr: string;

  private constructor(dir: string, port: number) {
    this.dir = dir;
    this.port = port;
    this.config = join(dir, "witness.toml");
    this.#stderr = join(dir, "stderr.log");
  }

  static async start(opts: ServerOptions = {}): Promise<WitnessServer> {
    requireBinary();
    const dir = mkdtempSync(join(tmpdir(), "witness-sdk-ts-"));
    const db = join(dir, "witness.db");
    writeFileSync(join(dir, "witness.toml"), `[store]\nurl = "sqlite://${db}"\n${opts.extraToml ?? ""}\n`);
    const s = new WitnessServer(dir, opts.port ?? 0);
    await s.#spawn();
    return s;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** A client for this server. */
  client(opts: Omit<WitnessClientOptions, "baseUrl"> = {}): WitnessClient {
    return new WitnessClient({
      baseUrl: this.url,
      retry: { initialDelayMs: 50, maxDelayMs: 400 },
      ...opts,
    });
  }

  async #spawn(timeoutMs = 20_000): Promise<void> {
    const log = openSync(this.#stderr, "a");
    const child = spawn(
      WITNESS_BIN,
      ["serve", "--listen", `127.0.0.1:${this.port}`, "--config", this.config],
      { stdio: ["ignore", "pipe", log] },
    );
    closeSync(log);
    this.#child = child;
    this.#exited = new Promise((resolve) => child.once("exit", () => resolve()));
    const lines = createInterface({ input: child.stdout! });
    const ready = new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`witness did not start within ${timeoutMs} ms: ${this.stderr()}`)), timeoutMs);
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`witness exited with ${code} before listening: ${this.stderr()}`));
      });
      lines.on("line", (line) => {
        const m = /^witness listening on .*:(\d+)$/.exec(line);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
    });
    this.port = await ready;
  }

  /** The server's log so far. */
  stderr(): string {
    try {
      return readFileSync(this.#stderr, "utf8").slice(-4000);
    } catch {
      return "";
    }
  }

  /** Kills the process with SIGKILL and waits for it to exit. */
  async kill(): Promise<void> {
    const child = this.#child;
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await this.#exited;
    }
    this.#child = undefined;
  }

  /** Starts the server again on the same port, config and database. */
  async restart(): Promise<void> {
    await this.kill();
    await this.#spawn();
  }

  /** Stops the server and removes its directory. */
  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Polls `check` until it returns a value other than undefined, or fails at the deadline. */
export async function eventually<T>(
  what: string,
  check: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Rejects when `p` does not settle within `timeoutMs`. */
export async function within<T>(what: string, p: Promise<T>, timeoutMs = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  try {
    return await Promise.race([p, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** A kind name no other test uses. */
export function uniqueKind(prefix: string): string {
  return `${prefix}.${randomUUID().slice(0, 8)}`;
}
