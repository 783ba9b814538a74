import { createServer as createHttp, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttps } from "node:https";
import { readFileSync } from "node:fs";
import { open, rename, unlink } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import { finished, pipeline } from "node:stream/promises";
import { Transform, type TransformCallback } from "node:stream";
import type { UploadConfig } from "../config/config.js";
import type { Logger } from "../log/logger.js";
import { UploadFiles } from "./files.js";
import { Sweeper } from "./sweeper.js";
import { isSlotId, isUserKey, slotPath, verifySlot } from "./slot.js";
import { contentDisposition, normalType } from "./names.js";

/** Headers of one request at most, in bytes and in count: a larger request is refused (431) by node:http itself. */
const MAX_HEADER_BYTES = 16384;
const MAX_HEADERS = 64;

/**
 * The HTTP side of XEP-0363 (§6, §8): PUT of a slot's body once, with the
 * slot's signed token, then GET/HEAD by anyone with the URL. One per host
 * (docs/xmpp.md, "HTTP File Upload"): the host's primary runs it, or the only
 * worker. Bodies stream to a .part file and are renamed into place, so no file
 * is held in memory and none is seen half written. A bad or slow request costs
 * its own connection only: header size and count limits, a header deadline,
 * an idle timeout, and a connection cap.
 */
export class UploadHttp {
  readonly files: UploadFiles;
  readonly sweeper: Sweeper;
  /** Slots whose PUT runs now ("user/id"), and the bytes they will add, per user: the quota counts them before they land. */
  private readonly active = new Set<string>();
  private readonly reserved = new Map<string, number>();
  /** The public URL's path: a reverse proxy may pass it on (nginx location /upload/) or strip it; both are served. */
  private readonly prefix: string;

  private constructor(
    private readonly http: Server,
    readonly port: number,
    /** What slot URLs start with: upload.publicUrl, or this listener's own address. */
    readonly baseUrl: string,
    private readonly cfg: UploadConfig,
    private readonly key: Buffer,
    private readonly log: Logger,
  ) {
    this.files = new UploadFiles(cfg.path!);
    this.sweeper = new Sweeper(this.files, cfg.expireAfterMs, (user, id) => this.active.has(`${user}/${id}`), log);
    this.prefix = new URL(baseUrl).pathname.replace(/\/+$/, "");
    const handle = (req: IncomingMessage, res: ServerResponse, expectsContinue: boolean) =>
      void this.handle(req, res, expectsContinue).catch((e: Error) => {
        this.log.error("upload request failed", { method: req.method, error: e.stack });
        if (!res.headersSent) answer(res, 500, "internal error\n", true);
        else res.destroy();
      });
    http.on("request", (req: IncomingMessage, res: ServerResponse) => handle(req, res, false));
    // Expect: 100-continue: the token and sizes are checked before the client sends the body.
    http.on("checkContinue", (req: IncomingMessage, res: ServerResponse) => handle(req, res, true));
  }

  static async start(cfg: UploadConfig, key: Buffer, domain: string, log: Logger): Promise<UploadHttp> {
    const H = cfg.http;
    const opts = {
      maxHeaderSize: MAX_HEADER_BYTES,
      headersTimeout: H.headersTimeoutMs,
      // Uploads may take long: the idle timeout, not a whole-request deadline, cuts a stalled body.
      requestTimeout: 0,
      keepAliveTimeout: 5000,
      connectionsCheckingInterval: Math.min(1000, H.headersTimeoutMs),
    };
    const http = H.tls === null ? createHttp(opts) : createHttps({ ...opts, cert: readFileSync(H.tls.cert), key: readFileSync(H.tls.key) });
    http.maxHeadersCount = MAX_HEADERS;
    http.maxConnections = H.maxConnections;
    http.setTimeout(H.idleTimeoutMs, (socket) => socket.destroy());
    await new Promise<void>((resolve, reject) => {
      http.once("error", reject);
      http.listen(H.port, H.host, () => {
        http.removeListener("error", reject);
        resolve();
      });
    });
    const port = (http.address() as AddressInfo).port;
    const wildcard = H.host === "0.0.0.0" || H.host === "::";
    const host = wildcard ? domain : H.host.includes(":") ? `[${H.host}]` : H.host;
    const baseUrl = cfg.publicUrl ?? `${H.tls === null ? "http" : "https"}://${host}:${port}`;
    const u = new UploadHttp(http, port, baseUrl, cfg, key, log);
    u.sweeper.start();
    log.info("upload listening", { host: H.host, port, url: baseUrl, path: cfg.path });
    return u;
  }

  /** Stops accepting; uploads and downloads under way may finish until `deadline` (performance.now() ms), then are cut. */
  async close(deadline = 0): Promise<void> {
    await this.sweeper.stop();
    await new Promise<void>((resolve) => {
      this.http.close(() => resolve());
      this.http.closeIdleConnections();
      const cut = setTimeout(() => this.http.closeAllConnections(), Math.max(0, deadline - performance.now()));
      cut.unref();
      this.http.once("close", () => clearTimeout(cut));
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse, expectsContinue: boolean): Promise<void> {
    res.setHeader("Access-Control-Allow-Origin", "*");
    const m = this.match(req.url ?? "");
    if (req.method === "OPTIONS") {
      // CORS preflight of a web client's PUT (XEP-0363 §6: it sends the slot's headers).
      res.setHeader("Access-Control-Allow-Methods", "GET, HEAD, PUT, OPTIONS");
      res.setHeader("Access-Control-Allow-Headers", "Authorization, Content-Type");
      res.setHeader("Access-Control-Max-Age", "86400");
      res.writeHead(204, { "Cache-Control": "no-store" });
      return void res.end();
    }
    if (req.method !== "PUT" && req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("Allow", "GET, HEAD, PUT, OPTIONS");
      return answer(res, 405, "method not allowed\n", true);
    }
    if (m === null) return answer(res, 404, "not found\n", req.method === "PUT");
    if (req.method === "PUT") return this.put(req, res, m, expectsContinue);
    return this.get(req, res, m);
  }

  /** The user, slot id and filename of a request path, or null: anything else is not ours (no path is joined from it). */
  private match(url: string): { user: string; id: string; name: string } | null {
    let path = url.split("?", 1)[0];
    if (this.prefix !== "" && path.startsWith(`${this.prefix}/`)) path = path.slice(this.prefix.length);
    const parts = path.split("/");
    if (parts.length !== 4 || parts[0] !== "" || !isUserKey(parts[1]) || !isSlotId(parts[2])) return null;
    let name: string;
    try {
      name = decodeURIComponent(parts[3]);
    } catch {
      return null;
    }
    return { user: parts[1], id: parts[2], name };
  }

  private async put(req: IncomingMessage, res: ServerResponse, m: { user: string; id: string; name: string }, expectsContinue: boolean): Promise<void> {
    // A refused PUT's body is read and dropped (node:http does it for a kept connection) when it is no larger than a
    // file may be, so the client reads the answer rather than a reset; larger, or not yet sent (100-continue): closed.
    const closes = expectsContinue || !(Number(req.headers["content-length"]) <= this.cfg.maxFileBytes);
    const refuse = (status: number, text: string) => answer(res, status, text, closes);
    const auth = req.headers.authorization ?? "";
    if (!auth.startsWith("Bearer ")) {
      res.setHeader("WWW-Authenticate", "Bearer");
      return refuse(401, "the slot's Authorization header is missing\n");
    }
    const slot = verifySlot(this.key, auth.slice(7), Date.now());
    if (slot === "expired") return refuse(403, "the slot has expired\n");
    if (typeof slot === "string") return refuse(403, "not a slot of this service\n");
    if (slot.user !== m.user || slot.id !== m.id || slot.name !== m.name) return refuse(403, "the token is for another URL\n");
    // §6: Content-Length and Content-Type must be what the slot was asked for. No length (chunked): refused.
    const length = req.headers["content-length"];
    if (length === undefined) return refuse(411, "Content-Length is required\n");
    if (Number(length) !== slot.size) return refuse(Number(length) > slot.size ? 413 : 400, `Content-Length must be ${slot.size}, the slot's size\n`);
    // §6: a PUT without Content-Type may be taken as application/octet-stream.
    if (normalType(req.headers["content-type"] ?? "application/octet-stream") !== normalType(slot.type)) return refuse(415, `Content-Type must be ${slot.type}, the slot's type\n`);

    const key = `${slot.user}/${slot.id}`;
    if (this.active.has(key)) return refuse(409, "this slot is being used\n");
    // Reserved before the usage is read, so two PUTs of one user at once both count each other.
    const reserved = (this.reserved.get(slot.user) ?? 0) + slot.size;
    this.reserved.set(slot.user, reserved);
    this.active.add(key);
    try {
      if (this.cfg.quotaBytes > 0) {
        const used = await this.files.usage(slot.user, this.expiredBefore(), false);
        if (used.bytes + reserved > this.cfg.quotaBytes) return refuse(507, "upload quota exceeded\n");
      }
      const p = this.files.paths(slot.user, slot.id);
      // The claim, O_EXCL: a slot's second PUT finds it and is refused, whoever won the race (PUT once).
      if (!(await this.claim(slot.user, p.meta, JSON.stringify({ name: slot.name, type: slot.type, size: slot.size })))) return refuse(409, "this slot has been used\n");
      if (expectsContinue) res.writeContinue();
      let ok = false;
      let failure: NodeJS.ErrnoException | null = null;
      try {
        await this.receive(req, p.part, slot.size);
        ok = true;
      } catch (e) {
        failure = e as NodeJS.ErrnoException;
        this.log.debug("upload body failed", { error: failure.message });
      } finally {
        if (!ok) {
          // A failed upload frees its slot again (until the slot expires): the client may retry it.
          await unlink(p.part).catch(() => {});
          await unlink(p.meta).catch(() => {});
        }
      }
      if (!ok) {
        if (failure?.code === ABORTED || res.headersSent) return;
        // Whatever is still coming is dropped until the answer is written and the connection closed.
        req.unpipe();
        req.resume();
        const code = failure?.code;
        if (code === "ENOSPC" || code === "EDQUOT") return refuse(507, "no space left for uploads\n");
        if (code === BODY_SIZE) return refuse(400, `the body was not ${slot.size} bytes\n`);
        this.log.warn("upload could not be written", { error: failure?.message });
        return refuse(500, "the upload could not be written\n");
      }
      await rename(p.part, p.data);
      this.log.debug("uploaded", { user: slot.user, id: slot.id, size: slot.size });
      res.setHeader("Location", `${this.baseUrl}${slotPath(slot)}`);
      answer(res, 201, "created\n");
    } finally {
      this.active.delete(key);
      const left = (this.reserved.get(slot.user) ?? 0) - slot.size;
      if (left > 0) this.reserved.set(slot.user, left);
      else this.reserved.delete(slot.user);
    }
  }

  /**
   * The body into `file`, streamed (backpressure: the socket is read as fast as the disk takes it). Not
   * pipeline(): it would destroy the request on a disk error, and with it the socket the answer must go out on.
   */
  private async receive(req: IncomingMessage, file: string, size: number): Promise<void> {
    const gone = () => Object.assign(new Error("the client went away"), { code: ABORTED });
    // Cut while the checks ran (the connection closed, or its next bytes were not HTTP): nothing to read.
    if (req.destroyed) throw gone();
    const out = (await open(file, "w", 0o600)).createWriteStream();
    const counter = new Counter(size);
    counter.once("error", (e) => out.destroy(e));
    const cut = () => {
      if (!req.complete) out.destroy(gone());
    };
    req.once("error", cut);
    req.once("close", cut);
    if (req.destroyed) cut();
    req.pipe(counter).pipe(out);
    await finished(out);
  }

  /** Creates the claim file, or false when it exists. The user's directory is made again if a sweep removed it meanwhile. */
  private async claim(user: string, file: string, text: string): Promise<boolean> {
    for (let i = 0; ; i++) {
      try {
        const fh = await open(file, "wx", 0o600);
        try {
          await fh.writeFile(text);
        } finally {
          await fh.close();
        }
        return true;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === "EEXIST") return false;
        if (code !== "ENOENT" || i > 2) throw e;
        await this.files.ensureUserDir(user);
      }
    }
  }

  private expiredBefore(): number {
    return this.cfg.expireAfterMs === 0 ? 0 : Date.now() - this.cfg.expireAfterMs;
  }

  private async get(req: IncomingMessage, res: ServerResponse, m: { user: string; id: string; name: string }): Promise<void> {
    const p = this.files.paths(m.user, m.id);
    // Opened before anything else: a sweep that removes it meanwhile does not cut the response short.
    const fh = await open(p.data, "r").catch(() => null);
    if (fh === null) return answer(res, 404, "not found\n");
    let handed = false;
    try {
      const st = await fh.stat();
      const meta = await this.files.meta(m.user, m.id);
      if (meta === null || meta.name !== m.name || (this.cfg.expireAfterMs > 0 && st.mtimeMs < this.expiredBefore())) return answer(res, 404, "not found\n");
      res.writeHead(200, {
        "Content-Type": meta.type,
        "Content-Length": String(st.size),
        "Content-Disposition": contentDisposition(meta.name, meta.type),
        // The upload is someone else's content on our origin: never sniffed, never run (XEP-0363 §8).
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Last-Modified": st.mtime.toUTCString(),
        "Accept-Ranges": "none",
      });
      if (req.method === "HEAD") return void res.end();
      handed = true;
      await pipeline(fh.createReadStream({ highWaterMark: 64 * 1024 }), res).catch(() => res.destroy());
    } finally {
      if (!handed) await fh.close();
    }
  }
}

const BODY_SIZE = "BODY_SIZE";
const ABORTED = "ABORTED";
const sizeError = (msg: string): Error => Object.assign(new Error(msg), { code: BODY_SIZE });

/** Fails the body when it runs past the announced size (node:http frames by Content-Length; this is the file's own guard). */
class Counter extends Transform {
  private n = 0;
  constructor(private readonly max: number) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.n += chunk.length;
    if (this.n > this.max) return cb(sizeError("body longer than the slot"));
    cb(null, chunk);
  }
  override _flush(cb: TransformCallback): void {
    cb(this.n === this.max ? null : sizeError(`body of ${this.n} bytes, slot of ${this.max}`));
  }
}

/** A short text answer; `close`: the connection ends after it (a refused PUT's body is not read). */
function answer(res: ServerResponse, status: number, body: string, close = false): void {
  if (close) res.shouldKeepAlive = false;
  res.writeHead(status, { "Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store", "Content-Length": String(Buffer.byteLength(body)) });
  res.end(body);
}
