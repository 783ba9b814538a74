import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Socket } from "node:net";
import { constants } from "node:os";
import { WriterThread } from "./writer-thread.js";
import { socketFd } from "./node-internals.js";

/** What the optional addon's fdpass.c exports (build/Release/sbwriter.node, the writer thread's addon). */
interface FdNative {
  fdListen(path: string, callback: (datas: Buffer[], fds: number[]) => void): object;
  fdUnlisten(handle: object): void;
  fdPoll(handle: object): void;
  fdConnect(path: string): number;
  fdSend(fd: number, data: Buffer, pass: number): number;
  fdClose(fd: number): void;
}

/** A packet from a peer: its bytes, and the descriptor it carried (already a socket) or null. */
export type FdPacket = (data: Buffer, socket: Socket | null) => void;

const errName = (neg: number): string => Object.entries(constants.errno).find(([, v]) => v === -neg)?.[0] ?? `errno ${-neg}`;

/**
 * Packets with descriptors between the processes of one host, each listening
 * on `<dir>/h<index>.sock` (src/transport/native/fdpass.c): what node:cluster's
 * IPC channel does one descriptor per round trip, without the round trip. The
 * directory is the host's, made private by its primary (mode 0700).
 *
 * Sends never wait: a packet is in the peer's socket buffer, or send() says
 * why not (the peer is not listening, its buffer is full) and the caller
 * takes another way. A received descriptor arrives as a net.Socket that is not
 * reading yet (startReading, node-internals.ts); packets without one, null.
 */
export class FdChannel {
  private readonly out = new Map<number, number>();
  private handle: object | null;

  private constructor(
    private readonly native: FdNative,
    private readonly dir: string,
    index: number,
    onPacket: FdPacket,
  ) {
    this.handle = native.fdListen(FdChannel.path(dir, index), (datas, fds) => {
      for (let i = 0; i < datas.length; i++) {
        const socket = fds[i] >= 0 ? this.socketOf(fds[i]) : null;
        if (fds[i] >= 0 && socket === null) continue;
        onPacket(datas[i], socket);
      }
    });
  }

  static path(dir: string, index: number): string {
    return join(dir, `h${index}.sock`);
  }

  /** The addon's functions, or the reason there are none (not built, not Linux, an addon built before fdpass). */
  static native(): FdNative | string {
    if (process.platform !== "linux") return `not Linux: ${process.platform}`;
    const path = WriterThread.addonPath();
    if (!existsSync(path)) return `addon not built: no ${path}`;
    try {
      const n = createRequire(import.meta.url)(path) as Partial<FdNative>;
      if (typeof n.fdListen !== "function" || typeof n.fdSend !== "function" || typeof n.fdPoll !== "function") return `${path} has no fdpass (built before it; npm ci rebuilds it)`;
      return n as FdNative;
    } catch (e) {
      return `${path} failed to load: ${(e as Error).message.split("\n")[0]}`;
    }
  }

  /** This process's end, listening as `index`; a string says why there is none (the caller keeps Node's IPC). */
  static open(dir: string, index: number, onPacket: FdPacket): FdChannel | string {
    const n = FdChannel.native();
    if (typeof n === "string") return n;
    try {
      return new FdChannel(n, dir, index, onPacket);
    } catch (e) {
      return (e as Error).message;
    }
  }

  /**
   * Sends `data` to peer `to`, with `socket`'s descriptor if given (this process's copy stays open: closing it is
   * the caller's choice). 0 once the packet is in the peer's buffer; else a negative errno (ENOENT or ECONNREFUSED:
   * nobody listens as `to`; EAGAIN: its buffer is full; EMSGSIZE: over 64 KiB; EBADF: the socket has no descriptor).
   */
  send(to: number, data: Buffer, socket?: Socket): number {
    if (this.handle === null) return -constants.errno.EBADF;
    const pass = socket === undefined ? -1 : socketFd(socket);
    if (pass < 0 && socket !== undefined) return -constants.errno.EBADF;
    for (let attempt = 0; attempt < 2; attempt++) {
      let fd = this.out.get(to);
      if (fd === undefined) {
        fd = this.native.fdConnect(FdChannel.path(this.dir, to));
        if (fd < 0) return fd;
        this.out.set(to, fd);
      }
      const r = this.native.fdSend(fd, data, pass);
      if (r === 0 || r === -constants.errno.EAGAIN || r === -constants.errno.EMSGSIZE) return r;
      // The peer's end is gone (it died; a restart listens anew at the same path): connect once more.
      this.native.fdClose(fd);
      this.out.delete(to);
      if (attempt === 1) return r;
    }
    return -constants.errno.EPIPE;
  }

  /** Takes what peers have sent now, ahead of the loop's next poll (a deadline that must not pass a packet already here). */
  poll(): void {
    if (this.handle !== null) this.native.fdPoll(this.handle);
  }

  close(): void {
    if (this.handle === null) return;
    this.native.fdUnlisten(this.handle);
    this.handle = null;
    for (const fd of this.out.values()) this.native.fdClose(fd);
    this.out.clear();
  }

  static errorName(r: number): string {
    return errName(r);
  }

  /** A socket for a received descriptor, not reading (the receiver decides when); null, with it closed, if it is not a TCP socket. */
  private socketOf(fd: number): Socket | null {
    try {
      // manualStart: no read until startReading(); a descriptor of another kind throws or gets a Pipe handle.
      const s = new Socket({ fd, readable: true, writable: true, manualStart: true } as ConstructorParameters<typeof Socket>[0]);
      if ((s as unknown as { _handle?: { constructor?: { name?: string } } })._handle?.constructor?.name !== "TCP") {
        s.destroy();
        return null;
      }
      return s;
    } catch {
      this.native.fdClose(fd);
      return null;
    }
  }
}
