import { connect, type Socket } from "node:net";
import { FrameDecoder, encodeHead, type Header } from "../../src/relay/codec.js";
import type { LoadSpec, Loop } from "./loop.js";

/**
 * A lean relay client for the benchmark, on our codec: header strings built
 * by hand, and every frame of one event-loop turn leaves in one write.
 */
class LeanConn {
  private readonly socket: Socket;
  private out: Buffer[] = [];
  private flushing = false;
  onFrame: (h: Header, body: Buffer) => void = () => {};

  constructor(socket: Socket) {
    this.socket = socket;
    socket.setNoDelay(true);
    const dec = new FrameDecoder(0x7fffffff, { frame: (h, b) => this.onFrame(h, b) });
    socket.on("data", (c) => dec.push(c));
    socket.on("error", () => {});
  }

  static open(port: number): Promise<LeanConn> {
    return new Promise((resolve, reject) => {
      const s = connect({ host: "127.0.0.1", port }, () => resolve(new LeanConn(s)));
      s.once("error", reject);
    });
  }

  send(header: string, body: Buffer): void {
    this.out.push(encodeHead(header, body.length));
    if (body.length) this.out.push(body);
    if (!this.flushing) {
      this.flushing = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushing = false;
    const parts = this.out;
    this.out = [];
    this.socket.write(parts.length === 1 ? parts[0] : Buffer.concat(parts));
  }

  /** hello + auth, one control frame each. */
  async login(user: string, password: string, resource: string): Promise<void> {
    const next = () => new Promise<Header>((r) => (this.onFrame = (h) => r(h)));
    let reply = next();
    this.send(JSON.stringify({ t: "hello", v: 1 }), Buffer.alloc(0));
    await reply;
    reply = next();
    this.send(JSON.stringify({ t: "auth", user, password, resource }), Buffer.alloc(0));
    const ok = await reply;
    if (ok.t !== "ok") throw new Error(`relay login of ${user} failed: ${JSON.stringify(ok)}`);
  }

  close(): void {
    this.socket.destroy();
  }
}

export async function relayLoop(spec: LoadSpec, loop: Loop): Promise<() => void> {
  const conns: LeanConn[] = [];
  const body = Buffer.alloc(spec.payload, 0x61);
  for (let j = 0; j < spec.responders; j++) {
    const c = await LeanConn.open(spec.port);
    // A pool is one account logged in under a resource per responder.
    if (spec.to === "pool") await c.login("resp0", "pwd-resp0", `r${j}`);
    else await c.login(`resp${j}`, `pwd-resp${j}`, "r");
    // Echo the body back, as a NATS responder does.
    c.onFrame = (h, b) => {
      if (h.t === "req") c.send(`{"t":"res","re":${JSON.stringify(h.id)}}`, b);
    };
    conns.push(c);
  }
  for (let i = 0; i < spec.requesters; i++) {
    const c = await LeanConn.open(spec.port);
    await c.login(`req${i}`, `pwd-req${i}`, "r");
    const to = spec.to === "pool" ? "resp0@localhost" : spec.to === "bare" ? `resp${i % spec.responders}@localhost` : `resp${i % spec.responders}@localhost/r`;
    const started = new Float64Array(spec.inflight);
    const fire = (slot: number) => {
      started[slot] = performance.now();
      c.send(`{"t":"req","id":"${slot}","to":"${to}"}`, body);
    };
    c.onFrame = (h) => {
      const slot = Number(h.re);
      if (h.t === "res") loop.done(performance.now() - started[slot]);
      else loop.failed(String(h.code));
      if (loop.running) fire(slot);
    };
    loop.onStart(() => {
      for (let s = 0; s < spec.inflight; s++) fire(s);
    });
    conns.push(c);
  }
  return () => conns.forEach((c) => c.close());
}
