import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { dirname, join, resolve } from "node:path";
import { existsSync } from "node:fs";
import { availableParallelism } from "node:os";

/** What build/Release/sbwriter.node (src/transport/native/writer.c) exports. */
interface Native {
  start(ringBytes: number, slots: number): { ring: ArrayBuffer; ctl: ArrayBuffer; written: ArrayBuffer };
  open(fd: number): number;
  kick(): void;
}

const OP_WRAP = -1;
const OP_SHUT = -2;
const OP_CLOSE = -3;
const TAIL = 0;
const HEAD = 1;
const SLEEPING = 2;
/** Larger outputs go in pieces, so that no record needs much of the ring at once. */
const PIECE = 65536;

interface Held {
  slot: number;
  op: number;
  data: Buffer | null;
}

/**
 * The event loop's side of the writer thread (src/transport/native/writer.c):
 * output encoded into a ring the thread reads, published once per turn.
 * When the ring is full, records wait here in order until the thread has made room.
 */
export class WriterThread {
  private readonly ring: Buffer;
  private readonly ctl: Int32Array;
  private readonly written: Uint32Array;
  /** Bytes handed over per slot (mod 2^32); minus `written` is the slot's backlog. */
  private readonly handed: Uint32Array;
  private readonly size: number;
  private tail = 0;
  private dirty = false;
  private held: Held[] = [];
  private retry: NodeJS.Timeout | null = null;
  /** Slots handed out so far: connections that went to the thread (tests check that a load took this path). */
  opened = 0;

  private constructor(
    private readonly native: Native,
    ringBytes: number,
    slots: number,
  ) {
    const m = native.start(ringBytes, slots);
    this.ring = Buffer.from(m.ring);
    this.ctl = new Int32Array(m.ctl);
    this.written = new Uint32Array(m.written);
    this.handed = new Uint32Array(slots);
    this.size = ringBytes;
  }

  private static instance: WriterThread | null = null;
  private static loadError: string | null = null;

  /**
   * The addon: build/Release/sbwriter.node as `npm ci` builds it, or the file
   * named by SWITCHBOARD_WRITER_ADDON (CI's sanitizer build, .ci/sanitize).
   */
  static addonPath(): string {
    const env = process.env.SWITCHBOARD_WRITER_ADDON;
    if (env) return resolve(env);
    return join(dirname(fileURLToPath(import.meta.url)), "../../..", "build/Release/sbwriter.node");
  }

  /**
   * The process's writer thread, started on first use; null with the reason
   * in `unavailable()` when the addon is not built, does not load, or this is not Linux.
   */
  static get(ringBytes = 4 << 20, slots = 1 << 17): WriterThread | null {
    if (WriterThread.instance !== null || WriterThread.loadError !== null) return WriterThread.instance;
    const path = WriterThread.addonPath();
    if (process.platform !== "linux") WriterThread.loadError = `not Linux: ${process.platform}`;
    else if (!existsSync(path)) {
      WriterThread.loadError = process.env.SWITCHBOARD_WRITER_ADDON
        ? `no ${path}, named by SWITCHBOARD_WRITER_ADDON`
        : `not built: no ${path}; npm ci builds it where a C compiler is present, build/sbwriter-build.log says why not`;
    } else {
      try {
        const native = createRequire(import.meta.url)(path) as Native;
        WriterThread.instance = new WriterThread(native, ringBytes, slots);
      } catch (e) {
        WriterThread.loadError = `${path} failed to load or start: ${(e as Error).message.split("\n")[0]}`;
      }
    }
    return WriterThread.instance;
  }

  static unavailable(): string | null {
    return WriterThread.loadError;
  }

  /**
   * The server's write path: the writer thread when enabled, on Linux, with a
   * core to spare for it (two usable cores for each of the host's `workers`
   * worker processes) and the addon loaded; else null and Node's own writes on
   * the event loop. `path` says which, and why, for the start's log line.
   */
  static choose(enabled: boolean | "always", workers = 1): { writer: WriterThread | null; path: string } {
    const loop = (why: string) => ({ writer: null, path: `event loop (${why})` });
    if (!enabled) return loop("io.writerThread is false");
    if (process.platform !== "linux") return loop(`not Linux: ${process.platform}`);
    // On a single core the thread would only take turns with the event loop. With a worker per core each
    // thread's naps (a timer wake-up every 200 µs while traffic flows) cost more than the writes it takes
    // off the loops: two workers on two cores spent 64-70 µs a message with threads, 52-54 without
    // (docs/benchmarks.md, "The writer thread with several workers", session 21).
    const cores = availableParallelism();
    if (enabled !== "always" && cores < 2) return loop("one usable core");
    if (enabled !== "always" && cores < 2 * workers) return loop(`${workers} workers on ${cores} usable cores: none to spare for a writer thread each`);
    const writer = WriterThread.get();
    if (writer === null) return loop(WriterThread.loadError ?? "unavailable");
    return { writer, path: `writer thread (${WriterThread.addonPath()})` };
  }

  /** A slot writing to a duplicate of `fd`, or -1 when none is free. */
  open(fd: number): number {
    const slot = this.native.open(fd);
    if (slot >= 0) {
      this.handed[slot] = 0;
      this.opened++;
    }
    return slot;
  }

  /** Bytes handed over for the slot and not yet taken by the kernel. */
  backlog(slot: number): number {
    return (this.handed[slot] - Atomics.load(this.written, slot)) >>> 0;
  }

  write(slot: number, chunk: string | Buffer): void {
    if (typeof chunk === "string") {
      // Strings up to a piece are encoded straight into the ring.
      if (chunk.length <= PIECE / 3 && this.held.length === 0) {
        const at = this.reserve(8 + chunk.length * 3);
        if (at >= 0) {
          const n = this.ring.write(chunk, at + 8, "utf8");
          this.handed[slot] += n;
          this.record(at, slot, n, n);
          return;
        }
      }
      chunk = Buffer.from(chunk, "utf8");
    }
    for (let off = 0; off < chunk.length; off += PIECE) this.put(slot, chunk.subarray(off, Math.min(chunk.length, off + PIECE)));
  }

  /** Several buffers as one record: one send for all of them. */
  writeAll(slot: number, bufs: Buffer[]): void {
    let n = 0;
    for (let i = 0; i < bufs.length; i++) n += bufs[i].length;
    if (n <= PIECE && this.held.length === 0) {
      const at = this.reserve(8 + n);
      if (at >= 0) {
        let off = at + 8;
        for (let i = 0; i < bufs.length; i++) off += bufs[i].copy(this.ring, off);
        this.handed[slot] += n;
        this.record(at, slot, n, n);
        return;
      }
    }
    for (let i = 0; i < bufs.length; i++) this.write(slot, bufs[i]);
  }

  /** Shuts the write side once everything before it has been sent (a graceful end). */
  shutdown(slot: number): void {
    this.op(slot, OP_SHUT);
    this.publish();
  }

  /** Drops what the slot still holds and closes its descriptor; the slot is free afterwards. */
  close(slot: number): void {
    this.op(slot, OP_CLOSE);
    this.publish();
  }

  /** Hands this turn's records to the thread, waking it if it sleeps. */
  publish(): void {
    if (this.held.length > 0) this.unhold();
    if (!this.dirty) return;
    this.dirty = false;
    Atomics.store(this.ctl, TAIL, this.tail);
    // The thread sets SLEEPING before its last look at TAIL: one of us sees the other.
    if (Atomics.load(this.ctl, SLEEPING) === 1) this.native.kick();
  }

  private put(slot: number, data: Buffer): void {
    this.handed[slot] += data.length;
    if (this.held.length === 0) {
      const at = this.reserve(8 + data.length);
      if (at >= 0) {
        data.copy(this.ring, at + 8);
        this.record(at, slot, data.length, data.length);
        return;
      }
    }
    // Kept as it is: a Buffer handed to write() is not touched again by its caller.
    this.hold(slot, 0, data);
  }

  private op(slot: number, op: number): void {
    if (this.held.length === 0) {
      const at = this.reserve(8);
      if (at >= 0) {
        this.record(at, slot, op, 0);
        return;
      }
    }
    this.hold(slot, op, null);
  }

  /** The header of a record whose `bytes` are already in place; the tail moves past it. */
  private record(at: number, slot: number, lenOrOp: number, bytes: number): void {
    this.ring.writeUInt32LE(slot, at);
    this.ring.writeInt32LE(lenOrOp, at + 4);
    const to = at + 8 + ((bytes + 7) & ~7);
    this.tail = to === this.size ? 0 : to;
    this.dirty = true;
  }

  /** Where a record of up to `n` bytes can go, or -1 when the ring has no room now. */
  private reserve(n: number): number {
    n = (n + 7) & ~7;
    const head = Atomics.load(this.ctl, HEAD);
    const tail = this.tail;
    if (tail >= head) {
      const room = this.size - tail;
      // Filling to the very end with head at 0 would make a full ring look empty.
      if (room > n || (room === n && head !== 0)) return tail;
      if (head <= n) return -1;
      this.ring.writeUInt32LE(0, tail);
      this.ring.writeInt32LE(OP_WRAP, tail + 4);
      this.tail = 0;
      this.dirty = true;
      return 0;
    }
    return head - tail > n ? tail : -1;
  }

  private hold(slot: number, op: number, data: Buffer | null): void {
    this.held.push({ slot, op, data });
    if (this.retry === null) this.retry = setTimeout(() => this.publish(), 1);
  }

  private unhold(): void {
    const held = this.held;
    let i = 0;
    for (; i < held.length; i++) {
      const h = held[i];
      const at = this.reserve(8 + (h.data === null ? 0 : h.data.length));
      if (at < 0) break;
      if (h.data === null) this.record(at, h.slot, h.op, 0);
      else {
        h.data.copy(this.ring, at + 8);
        this.record(at, h.slot, h.data.length, h.data.length);
      }
    }
    this.held = i === held.length ? [] : held.slice(i);
    if (this.retry !== null) {
      clearTimeout(this.retry);
      this.retry = null;
    }
    if (this.held.length > 0) this.retry = setTimeout(() => this.publish(), 1);
  }
}
