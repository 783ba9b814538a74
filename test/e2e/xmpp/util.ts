import { connect as netConnect, type Socket } from "node:net";
import { client } from "@xmpp/client";
import { WebSocket as WsWebSocket } from "ws";

// @xmpp/websocket uses the global WebSocket, which Node 20 has only behind --experimental-websocket; ws has the same API.
(globalThis as any).WebSocket ??= WsWebSocket;

/** An @xmpp/client that is online, with every stanza it receives kept for waitFor(). */
export interface Online {
  c: any;
  /** The full JID the server bound (RFC 6120 bind: the resource asked for; XEP-0386 Bind2: the tag and the server's part). */
  jid: string;
  /** How the client authenticated: XEP-0388 SASL2 (and bound by Bind2) or RFC 6120 SASL (and bound by RFC 6120 bind). */
  auth: "sasl2" | "sasl" | null;
  stanzas: any[];
  waitFor(pred: (el: any) => boolean, ms?: number): Promise<any>;
  stop(): Promise<void>;
}

/** `at`: a TCP port on 127.0.0.1 (xmpps:// with `tls`), or a whole service URL such as ws://127.0.0.1:PORT/xmpp-websocket. */
export async function online(at: number | string, username: string, password: string, opts: { resource?: string; presence?: boolean; tls?: boolean } = {}): Promise<Online> {
  const c = client({
    service: typeof at === "string" ? at : `${opts.tls ? "xmpps" : "xmpp"}://127.0.0.1:${at}`,
    domain: "localhost",
    username,
    password,
    resource: opts.resource,
  });
  c.reconnect.stop();
  c.on("error", () => {});
  let auth: Online["auth"] = null;
  c.on("send", (el: any) => {
    if (auth === null && el.is("authenticate", "urn:xmpp:sasl:2")) auth = "sasl2";
    else if (auth === null && el.is("auth", "urn:ietf:params:xml:ns:xmpp-sasl")) auth = "sasl";
  });
  const stanzas: any[] = [];
  const waiters: { pred: (el: any) => boolean; resolve: (el: any) => void }[] = [];
  c.on("stanza", (el: any) => {
    const i = waiters.findIndex((w) => w.pred(el));
    if (i >= 0) waiters.splice(i, 1)[0].resolve(el);
    else stanzas.push(el);
  });
  const address = await c.start();
  if (opts.presence !== false) await c.send(xmlPresence());
  return {
    c,
    jid: String(address),
    auth,
    stanzas,
    waitFor(pred, ms = 5000) {
      const i = stanzas.findIndex(pred);
      if (i >= 0) return Promise.resolve(stanzas.splice(i, 1)[0]);
      return new Promise((resolve, reject) => {
        const w = { pred, resolve: (el: any) => (clearTimeout(t), resolve(el)) };
        const t = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new Error(`no matching stanza in ${ms} ms; have ${stanzas.map(String).join("\n")}`));
        }, ms);
        waiters.push(w);
      });
    },
    async stop() {
      try {
        await c.stop();
      } catch {
        // Already gone.
      }
    },
  };
}

import { xml } from "@xmpp/client";
function xmlPresence(): any {
  return xml("presence");
}

/** A socket speaking raw XMPP: everything received is kept as text. */
export class Raw {
  text = "";
  closed = false;
  private readonly sock: Socket;
  private notify: (() => void) | null = null;

  constructor(port: number) {
    this.sock = netConnect(port, "127.0.0.1");
    this.sock.setEncoding("utf8");
    this.sock.on("data", (d: string) => {
      this.text += d;
      this.notify?.();
    });
    this.sock.on("close", () => {
      this.closed = true;
      this.notify?.();
    });
    this.sock.on("error", () => {});
  }

  ready(): Promise<void> {
    return new Promise((r) => this.sock.once("connect", () => r()));
  }

  send(s: string | Buffer): void {
    this.sock.write(s);
  }

  /** Waits until the received text matches, or the socket closes, or `ms` pass. */
  async until(re: RegExp, ms = 5000): Promise<string> {
    const deadline = Date.now() + ms;
    while (!re.test(this.text)) {
      if (this.closed) throw new Error(`closed before ${re}; got: ${this.text}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${re}; got: ${this.text}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.notify = () => (clearTimeout(t), r());
      });
    }
    return this.text;
  }

  /** Resolves when the server has closed the connection. */
  async whenClosed(ms = 5000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!this.closed) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`still open; got: ${this.text}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.notify = () => (clearTimeout(t), r());
      });
    }
  }

  /** Stops reading, so what the server sends backs up in its queues (a slow consumer). */
  pause(): void {
    this.sock.pause();
  }

  /** Reads again; a paused socket cannot notice that the server closed it. */
  resume(): void {
    this.sock.resume();
  }

  /** Sends `s`, then FIN: the client is done sending but still reads. */
  end(s: string): void {
    this.sock.end(s);
  }

  destroy(): void {
    this.sock.destroy();
  }
}

export const HEADER = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

/** SASL PLAIN initial response (for raw tests with allowPlainWithoutTls). */
export function plainAuth(user: string, password: string): string {
  return `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\u0000${user}\u0000${password}`).toString("base64")}</auth>`;
}

/** Opens a raw stream and authenticates with PLAIN; returns after the restarted stream's features (where a client binds or resumes). */
export async function rawAuth(port: number, user: string, password: string): Promise<Raw> {
  const r = new Raw(port);
  await r.ready();
  r.send(HEADER);
  await r.until(/<\/stream:features>/);
  r.send(plainAuth(user, password));
  await r.until(/<success/);
  r.text = "";
  r.send(HEADER);
  await r.until(/<\/stream:features>/);
  r.text = "";
  return r;
}

/** Opens a raw stream and logs in with PLAIN up to a bound resource; returns the raw client. */
export async function rawLogin(port: number, user: string, password: string, resource = "raw"): Promise<Raw> {
  const r = await rawAuth(port, user, password);
  r.send(`<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>${resource}</resource></bind></iq>`);
  await r.until(/<\/iq>/);
  r.text = "";
  return r;
}

/** Bound, XEP-0198 enabled with resumption: the raw client and its resumption id. */
export async function rawResumable(port: number, user: string, password: string, resource: string): Promise<{ r: Raw; id: string }> {
  const r = await rawLogin(port, user, password, resource);
  r.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>");
  const id = (await r.until(/<enabled [^>]*\/>/)).match(/ id=["']([^"']+)["']/)![1];
  r.text = "";
  return { r, id };
}

/** A chat message whose body and id carry `i`. */
export const chatTo = (to: string, i: number | string): string => `<message to='${to}' type='chat' id='m${i}'><body>${i}</body></message>`;

/** The message bodies in received text, in order. */
export const bodiesIn = (text: string): string[] => [...text.matchAll(/<body>([^<]*)<\/body>/g)].map((m) => m[1]);

let pings = 0;
/** An XEP-0199 ping to the server, answered: everything the client sent before it has been handled. Returns the result's start tag. */
export async function pingOk(r: Raw): Promise<string> {
  const id = `p${++pings}`;
  r.send(`<iq type='get' id='${id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
  const tag = new RegExp(`<iq[^>]*id=["']${id}["'][^>]*>`);
  return (await r.until(tag)).match(tag)![0];
}
