/**
 * The server's own view of its memory, through the V8 inspector it was
 * started with (`--inspect=127.0.0.1:PORT`; node:cluster gives worker k the
 * port PORT + k): a full GC on demand, process.memoryUsage() after it, and a
 * heap snapshot. No code in the server is there for the benchmark.
 */
import { get } from "node:http";
import { createWriteStream, readFileSync } from "node:fs";
import WebSocket from "ws";
import { sleep } from "../lib/proc.js";

export interface Memory {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
}

function getJson(port: number, path: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = get({ host: "127.0.0.1", port, path, agent: false, timeout: 3000 }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (text += d));
      res.on("end", () => {
        try {
          resolve(JSON.parse(text));
        } catch (e) {
          reject(e);
        }
      });
    });
    req.on("timeout", () => req.destroy(new Error("inspector: no answer")));
    req.on("error", reject);
  });
}

export class Inspector {
  private seq = 0;
  private readonly waiting = new Map<number, { resolve: (r: unknown) => void; reject: (e: Error) => void }>();
  private onEvent: ((method: string, params: Record<string, unknown>) => void) | null = null;

  private constructor(
    private readonly ws: WebSocket,
    readonly port: number,
  ) {
    ws.on("message", (data) => {
      const m = JSON.parse(String(data)) as { id?: number; result?: unknown; error?: { message: string }; method?: string; params?: Record<string, unknown> };
      if (m.id !== undefined) {
        const w = this.waiting.get(m.id);
        this.waiting.delete(m.id);
        if (m.error) w?.reject(new Error(m.error.message));
        else w?.resolve(m.result);
      } else if (m.method !== undefined) this.onEvent?.(m.method, m.params ?? {});
    });
  }

  /** Attaches to the inspector on `port`, waiting up to `timeoutMs` for it to listen. */
  static async attach(port: number, timeoutMs = 30_000): Promise<Inspector> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      try {
        const list = (await getJson(port, "/json/list")) as { webSocketDebuggerUrl: string }[];
        const ws = new WebSocket(list[0].webSocketDebuggerUrl, { perMessageDeflate: false, maxPayload: 1 << 30 });
        await new Promise<void>((resolve, reject) => {
          ws.once("open", () => resolve());
          ws.once("error", reject);
        });
        return new Inspector(ws, port);
      } catch (e) {
        if (Date.now() > until) throw new Error(`no inspector on port ${port}: ${(e as Error).message}`);
        await sleep(200);
      }
    }
  }

  call(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  /**
   * Memory after full collections (twice: the first frees what weak callbacks
   * then let go): RSS from /proc, the rest from process.memoryUsage(), or from
   * the inspector's heap usage where that throws (it opens /proc/self/stat,
   * which fails in a process out of descriptors; external is then NaN).
   */
  async memoryAfterGc(): Promise<Memory> {
    await this.call("HeapProfiler.collectGarbage");
    await sleep(100);
    await this.call("HeapProfiler.collectGarbage");
    const expression = "(() => { let m = null; try { m = process.memoryUsage(); } catch {} return JSON.stringify({ pid: process.pid, m }); })()";
    const r = (await this.call("Runtime.evaluate", { expression, returnByValue: true })) as { result: { value: string } };
    const { pid, m } = JSON.parse(r.result.value) as { pid: number; m: Memory | null };
    const rss = Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? NaN) * 1024;
    if (m !== null) return { ...m, rss };
    const h = (await this.call("Runtime.getHeapUsage")) as { usedSize: number; totalSize: number };
    return { rss, heapUsed: h.usedSize, heapTotal: h.totalSize, external: NaN, arrayBuffers: NaN };
  }

  /** Writes a .heapsnapshot file (Chrome DevTools' format). */
  async snapshot(file: string): Promise<void> {
    const out = createWriteStream(file);
    this.onEvent = (method, params) => {
      if (method === "HeapProfiler.addHeapSnapshotChunk") out.write(params.chunk as string);
    };
    await this.call("HeapProfiler.takeHeapSnapshot", { reportProgress: false, treatGlobalObjectsAsRoots: true });
    this.onEvent = null;
    await new Promise<void>((resolve) => out.end(resolve));
  }

  close(): void {
    this.ws.close();
  }
}
