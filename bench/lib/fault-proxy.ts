import { EventEmitter } from "node:events";
import { connect, createServer, type AddressInfo, type Server, type Socket } from "node:net";

/**
 * A TCP proxy that breaks connections on purpose, for tests and the soak
 * (bench/soak/). Each accepted connection is forwarded to one target; a test
 * can then, per connection or for all of them:
 *
 * - `cut()`: reset both sides at once (a RST each way), as a crashed NAT or a
 *   phone leaving Wi-Fi does;
 * - `cutClient()`: reset the client's side, black-hole the target's (a phone
 *   that changed networks: it knows, the server does not);
 * - `blackhole()`: keep both sockets open and discard what either side sends,
 *   FIN included — a NAT that forgot the mapping. Neither peer learns anything:
 *   each must notice by its own keepalive. When one side gives up and closes,
 *   the other is not told either;
 * - `heal()`: forward again. What was discarded stays lost, so a healed
 *   connection's byte stream has a hole in it (most protocols then fail it).
 *
 * `refuse()` takes the network down for new connections too: each is reset
 * as soon as it is accepted, until `heal()`. Bytes are counted per connection
 * and in total. Node's sockets are used as they are: no copies, backpressure
 * by pause/resume.
 */
export class FaultProxy extends EventEmitter {
  /** Totals over every connection so far, live or closed. */
  readonly bytes = { up: 0, down: 0, dropped: 0 };
  accepted = 0;
  refused = 0;
  private readonly live = new Set<ProxiedConnection>();
  private refusing = false;
  private serial = 0;

  private constructor(
    private readonly server: Server,
    readonly target: { host: string; port: number },
  ) {
    super();
    server.on("connection", (client) => this.accept(client));
  }

  /** Listens on 127.0.0.1 at an ephemeral port, forwarding to `targetPort` on `targetHost`. */
  static async start(targetPort: number, targetHost = "127.0.0.1"): Promise<FaultProxy> {
    const server = createServer({ allowHalfOpen: true, noDelay: true });
    const proxy = new FaultProxy(server, { host: targetHost, port: targetPort });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    return proxy;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** The live connections, oldest first. */
  connections(): ProxiedConnection[] {
    return [...this.live];
  }

  cut(): void {
    for (const c of this.live) c.cut();
  }

  blackhole(): void {
    for (const c of this.live) c.blackhole();
  }

  /** Forwards again on every live connection, and accepts new ones (after refuse()). */
  heal(): void {
    this.refusing = false;
    for (const c of this.live) c.heal();
  }

  /** The network is down: new connections are reset at once, until heal(). Live ones are left as they are. */
  refuse(): void {
    this.refusing = true;
  }

  get refusingNew(): boolean {
    return this.refusing;
  }

  /** Stops listening and destroys every connection. */
  async close(): Promise<void> {
    this.refusing = true;
    for (const c of this.live) c.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    this.accepted++;
    if (this.refusing) {
      this.refused++;
      client.on("error", () => {});
      reset(client);
      return;
    }
    const target = connect({ host: this.target.host, port: this.target.port, allowHalfOpen: true, noDelay: true });
    const c = new ProxiedConnection(++this.serial, client, target, this);
    this.live.add(c);
    this.emit("connection", c);
  }

  /** Called by a connection once both its sockets are closed. */
  gone(c: ProxiedConnection): void {
    if (this.live.delete(c)) this.emit("closed", c);
  }
}

/** One client connection and its leg to the target. */
export class ProxiedConnection {
  /** Bytes forwarded from the client to the target (up) and back (down), and discarded while black-holed. */
  up = 0;
  down = 0;
  dropped = 0;
  private holed = false;
  private closedSides = 0;

  constructor(
    readonly id: number,
    readonly client: Socket,
    readonly target: Socket,
    private readonly proxy: FaultProxy,
  ) {
    pipe(this, client, target, true);
    pipe(this, target, client, false);
  }

  get blackholed(): boolean {
    return this.holed;
  }

  /** The client's port as the proxy sees it: which client this is. */
  get clientPort(): number | undefined {
    return this.client.remotePort;
  }

  /** Resets both sides: each peer reads ECONNRESET. */
  cut(): void {
    reset(this.client);
    reset(this.target);
  }

  /**
   * Resets the client's side only and black-holes the target's: the client
   * knows at once, the target only by its own keepalive — a phone that moved
   * from Wi-Fi to LTE and reconnects while the server still holds the old connection.
   */
  cutClient(): void {
    this.blackhole();
    reset(this.client);
  }

  /** Discards everything either side sends from now on, and tells neither side anything. */
  blackhole(): void {
    this.holed = true;
    // A side paused for the other's backpressure must go on reading (and discarding).
    this.client.resume();
    this.target.resume();
  }

  heal(): void {
    if (!this.holed) return;
    this.holed = false;
    // A side that closed while the hole hid it: tell the other now.
    if (this.client.destroyed !== this.target.destroyed) this.cut();
  }

  destroy(): void {
    this.client.destroy();
    this.target.destroy();
  }

  /** One of its sockets closed: forwarded as a RST (after an error) or a FIN, unless black-holed. */
  sideClosed(from: Socket, hadError: boolean): void {
    if (++this.closedSides === 2) return this.proxy.gone(this);
    if (this.holed) return;
    const other = from === this.client ? this.target : this.client;
    if (hadError) reset(other);
    else other.end();
  }

  counted(up: boolean, n: number): void {
    const b = this.proxy.bytes;
    if (this.holed) {
      this.dropped += n;
      b.dropped += n;
    } else if (up) {
      this.up += n;
      b.up += n;
    } else {
      this.down += n;
      b.down += n;
    }
  }
}

/** Forwards `from` to `to` with backpressure, unless the connection is black-holed. */
function pipe(c: ProxiedConnection, from: Socket, to: Socket, up: boolean): void {
  from.on("data", (chunk: Buffer) => {
    c.counted(up, chunk.length);
    if (c.blackholed || to.destroyed) return;
    if (!to.write(chunk)) {
      from.pause();
      to.once("drain", () => from.resume());
    }
  });
  from.on("end", () => {
    // Inside a black hole a FIN ends only its own leg: the other peer is not told.
    if (c.blackholed) from.end();
    else if (!to.destroyed) to.end();
  });
  from.on("error", () => {});
  from.on("close", (hadError: boolean) => c.sideClosed(from, hadError));
}

/** A RST where the socket has a TCP handle (a connecting one is reset once connected), else a plain destroy. */
function reset(s: Socket): void {
  if (s.destroyed) return;
  try {
    s.resetAndDestroy();
  } catch {
    s.destroy();
  }
}
