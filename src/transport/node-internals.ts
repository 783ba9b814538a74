import net, { Socket, isIPv6 } from "node:net";
import { getSystemErrorName } from "node:util";
import type { ChildProcess } from "node:child_process";

// The only place where Switchboard reaches into Node.js internals. Each use
// has a fallback (the socket keeps Node's own reads, or its own writes), so a
// Node.js release that changes them costs speed, not correctness; and
// test/unit/transport/node-internals.test.ts fails on such a release, so that it is
// noticed rather than silently slow.

interface Handle {
  fd?: unknown;
  useUserBuffer?: (b: Buffer) => void;
}

type ReadCallback = (this: Socket, n: number, buf: Buffer) => void;

/**
 * The two symbol-keyed fields by which a net.Socket built with the `onread`
 * option reads into one caller-owned buffer and hands it to a callback (no
 * Buffer per read, none of the Readable stream's per-chunk work). Found by
 * their description on a probe socket; null when this Node.js has no such fields.
 */
const READ_INTO = (() => {
  // `onread` is in Node's documentation but not in these type definitions.
  const probe = new Socket({ onread: { buffer: Buffer.alloc(1), callback: () => {} } } as ConstructorParameters<typeof Socket>[0]);
  const syms = Object.getOwnPropertySymbols(probe);
  probe.destroy();
  const buffer = syms.find((k) => k.description === "kBuffer");
  const callback = syms.find((k) => k.description === "kBufferCb");
  // The third: a function that gives the buffer for the next read (onread's `buffer` as a function).
  const generate = syms.find((k) => k.description === "kBufferGen");
  return buffer !== undefined && callback !== undefined ? { buffer, callback, generate } : null;
})();

/** Whether readInto() can switch sockets on this Node.js. */
export const canReadInto = READ_INTO !== null;

/**
 * Switches a socket (an accepted one too, which cannot be given `onread`) to
 * reading into `buffer`, calling `callback(n, buffer)` for each read instead of
 * emitting 'data'. With `next`, each read after the first lands in the buffer
 * that `next()` returns, called after the callback (a reader that keeps views of
 * what it read gives a fresh part of its own memory each time). False, with the
 * socket unchanged, when this Node.js lacks the fields or the socket has no
 * stream handle.
 */
export function readInto(s: Socket, buffer: Buffer, callback: ReadCallback, next?: () => Buffer): boolean {
  const handle = (s as unknown as { _handle?: Handle })._handle;
  if (READ_INTO === null || typeof handle?.useUserBuffer !== "function") return false;
  if (next !== undefined && READ_INTO.generate === undefined) return false;
  const t = s as unknown as Record<symbol, unknown>;
  // All at once, with no read between: the callback is only right for reads into `buffer`.
  t[READ_INTO.buffer] = buffer;
  t[READ_INTO.callback] = callback;
  if (next !== undefined) t[READ_INTO.generate!] = next;
  handle.useUserBuffer(buffer);
  return true;
}

/** Whether readInto() takes `next` on this Node.js. */
export const canReadIntoNext = READ_INTO?.generate !== undefined;

/** The socket's file descriptor (libuv's), or -1 when it has none that can be known. */
export function socketFd(s: Socket): number {
  const fd = (s as unknown as { _handle?: Handle })._handle?.fd;
  return typeof fd === "number" && fd >= 0 ? fd : -1;
}

interface ReadingHandle {
  reading?: boolean;
  readStart?: () => number;
  readStop?: () => number;
}

/**
 * Stops libuv reading the socket (what net.Socket's pause() does only for `onread` sockets): no byte
 * leaves the kernel's buffer until startReading(). False, with the socket unchanged, when this
 * Node.js's handle lacks readStop (a connection hand-off then does not happen: src/host/handoff.ts).
 */
export function stopReading(s: Socket): boolean {
  const h = (s as unknown as { _handle?: ReadingHandle })._handle;
  if (typeof h?.readStop !== "function" || typeof h.readStart !== "function") return false;
  if (h.readStop() !== 0) return false;
  // `reading` is Node's own flag. Left true, as if a read were under way, so that Node's stream does not start the
  // handle again by itself: it does when it wants more after delivering a chunk (Readable's maybeReadMore, _read).
  h.reading = true;
  return true;
}

/** Reads again after stopReading(). */
export function startReading(s: Socket): void {
  const h = (s as unknown as { _handle?: ReadingHandle })._handle;
  if (h == null || typeof h.readStart !== "function") return;
  h.reading = true;
  h.readStart();
}

/** Something with a Node.js IPC channel: a worker's `process`, or a child process (a cluster Worker's `process`) in its parent. */
type IpcEnd = NodeJS.Process | ChildProcess;

/** A send Node.js holds back: the entries of the child_process field `_handleQueue`. */
interface Queued {
  message: unknown;
  handle: unknown;
  options: object;
  callback: ((e: Error | null) => void) | undefined;
}

/** Messages sendFirst put first, so that they keep their order among themselves (Node re-queues entries as new objects, with the same message). */
const first = new WeakSet<object>();

/**
 * Sends `message` (with `handle`, a socket, if given) over the IPC channel of `to` ahead of the messages Node.js
 * holds back there. Node passes one descriptor per round trip: after sending one it queues every later message,
 * with a descriptor or without, until the other side acknowledges it (`_handleQueue`), so behind other descriptors
 * (hand-offs, copies of listening sockets: src/host/balancer.ts) a message can wait for many acknowledgements. Put
 * first, it waits for one at most. Without the field (another Node.js), or with nothing held back, it is a plain
 * send. The callback as send's: null once written, or the error.
 */
export function sendFirst(to: IpcEnd, message: object, handle?: unknown, options: { keepOpen?: boolean } = {}, callback?: (e: Error | null) => void): void {
  const q = (to as { _handleQueue?: unknown })._handleQueue;
  if (!Array.isArray(q) || to.connected !== true) {
    (to.send as (m: unknown, h: unknown, o: object, cb?: (e: Error | null) => void) => boolean)(message, handle, options, callback);
    return;
  }
  const queue = q as Queued[];
  let at = 0;
  while (at < queue.length && typeof queue[at].message === "object" && first.has(queue[at].message as object)) at++;
  first.add(message);
  // The entry as send() would have queued it (lib/internal/child_process.js: target.send, then target._send).
  queue.splice(at, 0, { message, handle: handle ?? null, options: { swallowErrors: false, ...options }, callback });
}

/** A TCP socket bound and not yet listening (libuv's TCP handle): what a host's primary shares with its workers. */
export interface BoundHandle {
  getsockname(out: { port?: number }): number;
  close(cb?: () => void): void;
}

/**
 * Binds `host:port` without listening (net._createServerHandle, as node:cluster's primary does for its
 * SCHED_NONE workers): the primary holds the socket and never accepts from it; each worker it sends the
 * handle to listens and accepts (src/host/balancer.ts). The socket, and the kernel's queue of connections
 * not yet accepted, lives while any process holds a copy. null when this Node.js has no such function (the
 * balancer then accepts in the primary and passes each socket over IPC); throws the bind's error, except
 * EADDRINUSE, which libuv keeps for listen(2) (uv__tcp_bind's delayed_error): the caller checks the port first.
 */
export function bindShared(host: string, port: number): BoundHandle | null {
  const create = (net as unknown as { _createServerHandle?: (a: string, p: number, t: number, fd?: number, flags?: number) => BoundHandle | number })._createServerHandle;
  if (typeof create !== "function") return null;
  const h = create(host, port, isIPv6(host) ? 6 : 4);
  if (typeof h === "number") {
    const code = getSystemErrorName(h);
    throw Object.assign(new Error(`listen ${code} ${host}:${port}`), { code });
  }
  return h;
}
