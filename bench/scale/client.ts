/**
 * One client process of bench:scale: a slice of the sessions, each a raw TCP
 * socket (no XMPP library) from one 127.0.0.x source address. Each logs in as
 * a phone does, minus TLS: stream, SASL PLAIN (cheap on the client, unlike
 * SCRAM), stream restart, bind, optionally XEP-0198 <enable resume='true'/>,
 * initial presence; then it idles. While idle it answers what the server
 * asks (XEP-0199 pings with a result, XEP-0198 <r/> with <a h/>) and may send
 * a whitespace keepalive every `keepaliveMs`. On the parent's "probe" each
 * session pings the server and waits for the answer: alive end to end.
 * Parent ⇄ child over IPC (ScaleEvent, ScaleCommand).
 */
import { connect, type Socket } from "node:net";

export interface ClientSpec {
  host: string;
  port: number;
  domain: string;
  /** Users user<from> … user<to - 1>; password pw<i>. */
  from: number;
  to: number;
  localAddress: string;
  /** Logins in flight at once (connect to bound). */
  window: number;
  sm: boolean;
  /** A whitespace keepalive from every idle session this often; 0: none. */
  keepaliveMs: number;
  loginTimeoutMs: number;
}

export type ScaleEvent =
  | { ev: "login"; online: number; failed: number; done: boolean; firstError: string }
  | { ev: "probe"; alive: number; dead: number; firstError: string }
  | { ev: "stats"; online: number; dropped: number; pings: number; acks: number; keepalives: number; cpuSeconds: number };

export type ScaleCommand = { cmd: "probe"; timeoutMs: number } | { cmd: "stats" } | { cmd: "stop" };

const NS_SM = "urn:xmpp:sm:3";
const St = { Connecting: 0, Features: 1, Auth: 2, Features2: 3, Bind: 4, Enable: 5, Online: 6, Dead: 7 } as const;

const spec = JSON.parse(process.argv[2]) as ClientSpec;
const header = `<?xml version='1.0'?><stream:stream to='${spec.domain}' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`;

class Client {
  socket: Socket | null = null;
  state: number = St.Connecting;
  buf = "";
  /** XEP-0198 h: stanzas received since <enabled/>. */
  h = 0;
  probing = false;
  constructor(readonly i: number) {}
}

const clients: Client[] = [];
for (let i = spec.from; i < spec.to; i++) clients.push(new Client(i));
let next = 0;
let inFlight = 0;
let online = 0;
let failed = 0;
let dropped = 0;
let pings = 0;
let acks = 0;
let keepalives = 0;
let firstError = "";
let alive = 0;
let probeDone: (() => void) | null = null;
let probeWant = 0;

function send(e: ScaleEvent): void {
  process.send!(e);
}

let reportQueued = false;
function reportLogin(): void {
  if (reportQueued) return;
  reportQueued = true;
  setTimeout(() => {
    reportQueued = false;
    send({ ev: "login", online, failed, done: online + failed + dropped >= clients.length && inFlight === 0, firstError });
  }, 250);
}

function fail(c: Client, why: string): void {
  if (c.state === St.Dead) return;
  if (c.state === St.Online) {
    online--;
    dropped++;
  } else {
    inFlight--;
    failed++;
    startMore();
  }
  c.state = St.Dead;
  c.socket?.destroy();
  firstError ||= `user${c.i}: ${why}`;
  reportLogin();
}

function startMore(): void {
  while (inFlight < spec.window && next < clients.length) start(clients[next++]);
}

function start(c: Client): void {
  inFlight++;
  const s = connect({ host: spec.host, port: spec.port, localAddress: spec.localAddress });
  c.socket = s;
  s.setNoDelay(true);
  s.setEncoding("latin1");
  const timer = setTimeout(() => {
    if (c.state !== St.Online) fail(c, `login timed out in state ${c.state}: ${JSON.stringify(c.buf.slice(0, 200))}`);
  }, spec.loginTimeoutMs);
  s.on("connect", () => {
    c.state = St.Features;
    s.write(header);
  });
  s.on("data", (d: string) => {
    if (c.state === St.Online) return idle(c, d);
    if (login(c, d)) clearTimeout(timer);
  });
  s.on("error", (e: NodeJS.ErrnoException) => fail(c, e.code ?? e.message));
  s.on("close", () => fail(c, "closed by the server"));
}

/** One read during login; true once the session is online. */
function login(c: Client, d: string): boolean {
  const b = (c.buf += d);
  const s = c.socket!;
  if (b.includes("<stream:error") || b.includes("<failure") || b.includes("<failed")) {
    fail(c, b.slice(b.search(/<stream:error|<failure|<failed/), 300));
    return false;
  }
  switch (c.state) {
    case St.Features:
      if (!b.includes("</stream:features>")) return false;
      if (!b.includes(">PLAIN<")) {
        fail(c, "no PLAIN offered (xmpp.allowPlainWithoutTls)");
        return false;
      }
      c.buf = "";
      c.state = St.Auth;
      s.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0user${c.i}\0pw${c.i}`).toString("base64")}</auth>`);
      return false;
    case St.Auth:
      if (!b.includes("<success")) return false;
      c.buf = "";
      c.state = St.Features2;
      s.write(header);
      return false;
    case St.Features2:
      if (!b.includes("</stream:features>")) return false;
      c.buf = "";
      c.state = St.Bind;
      s.write(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>phone</resource></bind></iq>`);
      return false;
    case St.Bind:
      if (!b.includes("</iq>") && !/<iq[^>]*\/>/.test(b)) return false;
      if (!b.includes("type='result'") && !b.includes('type="result"')) {
        fail(c, `bind: ${b.slice(0, 200)}`);
        return false;
      }
      c.buf = "";
      if (spec.sm) {
        c.state = St.Enable;
        s.write(`<enable xmlns='${NS_SM}' resume='true'/>`);
        return false;
      }
      break;
    case St.Enable: {
      const at = b.indexOf("<enabled");
      const gt = at < 0 ? -1 : b.indexOf(">", at);
      if (gt < 0) return false;
      c.buf = "";
      break;
    }
    default:
      return false;
  }
  c.state = St.Online;
  s.write("<presence/>");
  inFlight--;
  online++;
  reportLogin();
  startMore();
  return true;
}

/**
 * Online: a pass over the start tags of what arrived. Each stanza counts
 * towards h; an <iq type='get'> (the server's XEP-0199 ping) gets its result;
 * <r/> is answered after the pass, so h covers the whole read; the answer to
 * our own probe ping marks the session alive.
 */
function idle(c: Client, d: string): void {
  const b = c.buf.length > 0 ? c.buf + d : d;
  let at = 0;
  let out = "";
  let ackDue = false;
  for (;;) {
    const lt = b.indexOf("<", at);
    if (lt < 0) {
      at = b.length;
      break;
    }
    const gt = b.indexOf(">", lt);
    if (gt < 0) {
      at = lt;
      break;
    }
    at = gt + 1;
    const tag = b.slice(lt + 1, gt);
    if (tag.startsWith("/")) continue;
    if (tag.startsWith("iq ") || tag.startsWith("message ") || tag.startsWith("message>") || tag.startsWith("presence")) {
      c.h = (c.h + 1) % 0x1_0000_0000;
      if (!tag.startsWith("iq ")) continue;
      const id = /\sid=['"]([^'"]*)['"]/.exec(tag)?.[1] ?? "";
      if (/\stype=['"]get['"]/.test(tag)) {
        const from = /\sfrom=['"]([^'"]*)['"]/.exec(tag)?.[1];
        out += `<iq type='result' id='${id}'${from ? ` to='${from}'` : ""}/>`;
        pings++;
      } else if (id === "alive" && c.probing) {
        c.probing = false;
        alive++;
        if (alive === probeWant) probeDone?.();
      }
    } else if (tag.startsWith("r ") && tag.includes(NS_SM)) {
      ackDue = true;
    } else if (tag.startsWith("stream:error")) {
      firstError ||= `user${c.i}: ${b.slice(lt, lt + 300)}`;
    }
  }
  c.buf = at >= b.length ? "" : b.slice(at);
  if (ackDue) {
    out += `<a xmlns='${NS_SM}' h='${c.h}'/>`;
    acks++;
  }
  if (out !== "") c.socket!.write(out);
}

function probe(timeoutMs: number): void {
  alive = 0;
  probeWant = 0;
  let dead = 0;
  for (const c of clients) {
    if (c.state !== St.Online) {
      dead++;
      continue;
    }
    c.probing = true;
    probeWant++;
    c.socket!.write(`<iq type='get' id='alive'><ping xmlns='urn:xmpp:ping'/></iq>`);
  }
  const finish = () => {
    clearTimeout(timer);
    probeDone = null;
    const late = clients.filter((c) => c.probing).length;
    send({ ev: "probe", alive, dead: dead + late, firstError });
  };
  const timer = setTimeout(finish, timeoutMs);
  probeDone = finish;
  if (probeWant === 0) finish();
}

function keepalive(): void {
  for (const c of clients) {
    if (c.state !== St.Online) continue;
    c.socket!.write(" ");
    keepalives++;
  }
}

function stop(): void {
  for (const c of clients) {
    if (c.state === St.Dead) continue;
    c.state = St.Dead;
    c.socket?.removeAllListeners("close");
    c.socket?.end("</stream:stream>");
  }
  setTimeout(() => process.exit(0), 500).unref();
}

process.on("message", (m: ScaleCommand) => {
  if (m.cmd === "probe") probe(m.timeoutMs);
  else if (m.cmd === "stop") stop();
  else if (m.cmd === "stats") {
    const u = process.cpuUsage();
    send({ ev: "stats", online, dropped, pings, acks, keepalives, cpuSeconds: (u.user + u.system) / 1e6 });
  }
});
process.on("disconnect", () => process.exit(0));

if (spec.keepaliveMs > 0) setInterval(keepalive, spec.keepaliveMs).unref();
startMore();
reportLogin();
