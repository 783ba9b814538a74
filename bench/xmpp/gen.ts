/**
 * One load-generator process: a slice of the users, each on its own raw TCP
 * socket (no XMPP library), logged in with SCRAM-SHA-1 (or PLAIN when that is
 * all the server offers), bound and present; then, on the parent's signal,
 * each sends its messages at the configured rate to random online users with
 * its send time in the body; receivers compute the latency.
 * With `sm`, each user enables XEP-0198 stream management after bind and
 * acknowledges as a client does (see onlineData; pump.c does the same).
 * Parent ⇄ child over IPC (see GenSpec and the ev/cmd messages).
 */
import { connect, type Socket } from "node:net";
import { readFileSync } from "node:fs";
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { Histogram } from "../lib/stats.js";
import { ScramSha1Client } from "./scram-client.js";

export interface GenSpec {
  host: string;
  port: number;
  /** --hosts: user i connects to hosts[i % length] instead of host:port (bench/xmpp/hosts.ts). */
  hosts?: { host: string; port: number }[];
  domain: string;
  /** File with this slice's accounts: [globalIndex, user, password, saltB64, saltedB64][] */
  accountsFile: string;
  totalUsers: number;
  localAddress: string;
  rampMs: number;
  loginTimeoutMs: number;
  messages: number;
  rate: number;
  deadlineMs: number;
  /** The compiled pump.c, which then runs the messaging phase; null: this process runs it. */
  pump: string | null;
  /** The pump polls without sleeping (see pump.c). */
  spin: boolean;
  /** XEP-0198: enable stream management (resume='true') after bind, answer every <r/>, check the server's <a/>s. */
  sm: boolean;
  /** With sm: an <r/> of the client's own with every smEvery-th message it sends (Conversations: 1); 0: never. */
  smEvery: number;
  /**
   * bench/muc: every user is an occupant of this XEP-0045 room (the "create" and "join" commands); in the
   * messaging phase the users whose index is below `senders` send groupchat messages to it at `rate` each,
   * "send-time seq" in the body, and every occupant counts each room message once (a bitmap of seqs).
   */
  room?: { jid: string; senders: number };
  /** bench:xmpp --warmup (pump only, no room): messages at `share` of the rate for `ms` before t0, not measured (pump.c). */
  warm?: { ms: number; share: number };
  /**
   * bench:xmpp --recipients: every user's group by global index (the worker that owns it), and whether each
   * sender picks its recipients in its own group (local: no message crosses workers) or in the others (cross).
   */
  pick?: { mode: "local" | "cross"; groups: number[] };
}

/** What the clients' stream management saw (all zero without it). */
export interface SmStats {
  /** Users that got <enabled/>. */
  enabled: number;
  /** The server's <r/>s, each answered with <a h/>. */
  serverRequests: number;
  /** The clients' own <r/>s. */
  clientRequests: number;
  /** Server <a/>s whose h was not the count of stanzas sent before the <r/> they answer, or that answered none. */
  badAcks: number;
  /** <failed/> received. */
  failed: number;
}

export type GenEvent =
  | { ev: "login"; online: number; failed: number; done: boolean; firstError: string; offline: number[]; firstByte?: ReturnType<Histogram["toJSON"]> }
  | { ev: "ready" }
  | { ev: "created"; error: string }
  | { ev: "joined"; joined: number; errors: number; firstError: string }
  | { ev: "progress"; sent: number; received: number; doneSending: boolean }
  | { ev: "result"; sent: number; received: number; inDeadline: number; errors: number; hist: ReturnType<Histogram["toJSON"]>; cpuSeconds: number; busySeconds: number; loginCpuSeconds: number; sm: SmStats; duplicates: number; pumpStatus: number | string | null; warm: { sent: number; received: number } };

export type GenCommand = { cmd: "prepare"; offline: number[] } | { cmd: "go"; t0: number } | { cmd: "stop" } | { cmd: "create" } | { cmd: "join"; occupants: number; rampMs: number };

const now = () => performance.timeOrigin + performance.now();
const NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl";
const FEATURES_END = /<\/(?:stream:)?features>/;
const NS_SM = "urn:xmpp:sm:3";

const St = { Connecting: 0, Features: 1, Challenge: 2, Success: 3, Features2: 4, Bind: 5, Session: 6, Enable: 7, Online: 8, Dead: 9, Handed: 10 } as const;

class User {
  socket!: Socket;
  state: number = St.Connecting;
  buf = "";
  scram: ScramSha1Client | null = null;
  needSession = false;
  timer: NodeJS.Timeout | null = null;
  /** Milliseconds after t0 of this user's first message. */
  phase = 0;
  /** XEP-0198 §4, modulo 2^32 from <enabled/> on: stanzas received (h), and sent. */
  h = 0;
  out = 0;
  /** Messages sent since this user's last <r/>, and for each <r/> not yet answered the count sent before it. */
  unasked = 0;
  expect: number[] = [];
  /** bench/muc: presence stanzas received (an occupant of a room of N has seen N once everyone joined); room seqs seen. */
  presences = 0;
  seen: Uint8Array | null = null;
  /** performance.now() at the TCP connect (the kernel's handshake done), until the server's first byte. */
  connectedAt = -1;

  constructor(
    readonly index: number,
    readonly name: string,
    readonly password: string,
    readonly cached: { salt: Buffer; iterations: number; salted: Buffer },
  ) {}
}

const spec = JSON.parse(process.argv[2]) as GenSpec;
const rows = JSON.parse(readFileSync(spec.accountsFile, "utf8")) as [number, string, string, string, string][];
const users = rows.map(([i, u, p, s, k]) => new User(i, u, p, { salt: Buffer.from(s, "base64"), iterations: 4096, salted: Buffer.from(k, "base64") }));
let online = 0;
let failed = 0;
let firstError = "";
const offline: number[] = [];
let measuring = false;
let sent = 0;
let received = 0;
let inDeadline = 0;
let errors = 0;
let duplicates = 0;
const sm: SmStats = { enabled: 0, serverRequests: 0, clientRequests: 0, badAcks: 0, failed: 0 };
const hist = new Histogram();
/** TCP connect → the server's first byte (its stream header): the time a new connection waits before a worker serves it. */
const firstByte = new Histogram();
const cpuStart = process.cpuUsage();
let cpuGo = cpuStart;

const streamHeader = `<?xml version='1.0'?><stream:stream to='${spec.domain}' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`;

function fail(u: User, why: string): void {
  if (u.state === St.Dead) return;
  const wasOnline = u.state === St.Online;
  u.state = St.Dead;
  if (u.timer) clearTimeout(u.timer);
  u.socket?.destroy();
  if (wasOnline) {
    online--;
    errors++;
  }
  failed++;
  offline.push(u.index);
  firstError ||= `${u.name}: ${why}`;
  reportLogin();
}

function startLogin(u: User): void {
  u.timer = setTimeout(() => fail(u, `login timed out in state ${u.state} with ${JSON.stringify(u.buf.slice(0, 300))}`), spec.loginTimeoutMs);
  const at = spec.hosts?.[u.index % spec.hosts.length] ?? spec;
  const s = connect({ host: at.host, port: at.port, localAddress: spec.localAddress });
  u.socket = s;
  s.setNoDelay(true);
  s.setEncoding("utf8");
  s.on("connect", () => {
    u.connectedAt = performance.now();
    u.state = St.Features;
    s.write(streamHeader);
  });
  s.on("data", (d: string) => onData(u, d));
  s.on("error", (e: NodeJS.ErrnoException) => fail(u, e.message || e.code || String(e)));
  s.on("close", () => fail(u, "connection closed"));
}

function onData(u: User, d: string): void {
  if (u.state === St.Online) return onlineData(u, d);
  if (u.connectedAt >= 0) {
    firstByte.record(performance.now() - u.connectedAt);
    u.connectedAt = -1;
  }
  u.buf += d;
  const b = u.buf;
  if (b.includes("<stream:error") || b.includes("<failure")) return fail(u, b.slice(b.search(/<stream:error|<failure/), 300));
  switch (u.state) {
    case St.Features: {
      if (!FEATURES_END.test(b)) return;
      u.buf = "";
      if (b.includes(">SCRAM-SHA-1<")) {
        u.scram = new ScramSha1Client(u.name, u.password, u.cached);
        u.state = St.Challenge;
        u.socket.write(`<auth xmlns='${NS_SASL}' mechanism='SCRAM-SHA-1'>${u.scram.first()}</auth>`);
      } else if (b.includes(">PLAIN<")) {
        u.state = St.Success;
        u.socket.write(`<auth xmlns='${NS_SASL}' mechanism='PLAIN'>${Buffer.from(`\0${u.name}\0${u.password}`).toString("base64")}</auth>`);
      } else fail(u, `no SCRAM-SHA-1 or PLAIN in ${b.slice(0, 400)}`);
      return;
    }
    case St.Challenge: {
      const m = /<challenge[^>]*>([^<]*)<\/challenge>/.exec(b);
      if (m === null) return;
      u.buf = "";
      u.state = St.Success;
      u.socket.write(`<response xmlns='${NS_SASL}'>${u.scram!.final(m[1])}</response>`);
      return;
    }
    case St.Success:
      if (!/<success[^>]*\/>|<\/success>/.test(b)) return;
      u.buf = "";
      u.state = St.Features2;
      u.socket.write(streamHeader);
      return;
    case St.Features2:
      if (!FEATURES_END.test(b)) return;
      u.buf = "";
      // RFC 3921 session: only when advertised without <optional/> (RFC 6121 App. E).
      u.needSession = /<session[^>]*xmpp-session['"]\s*\/>/.test(b);
      u.state = St.Bind;
      u.socket.write(`<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>g</resource></bind></iq>`);
      return;
    case St.Bind:
    case St.Session: {
      const id = u.state === St.Bind ? "b1" : "s1";
      const m = new RegExp(`<iq[^>]*id=['"]${id}['"][^>]*>`).exec(b);
      if (m === null) return;
      if (!/type=['"]result['"]/.test(m[0])) return fail(u, `${id}: ${b.slice(0, 300)}`);
      u.buf = "";
      if (u.state === St.Bind && u.needSession) {
        u.state = St.Session;
        u.socket.write(`<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>`);
        return;
      }
      if (!spec.sm) return goOnline(u);
      u.state = St.Enable;
      u.socket.write(`<enable xmlns='${NS_SM}' resume='true'/>`);
      return;
    }
    case St.Enable: {
      // XEP-0198 §3: counting starts with <enabled/>; whatever followed it in this read is online traffic.
      if (b.includes("<failed")) return fail(u, `stream management: ${b.slice(b.indexOf("<failed"), 300)}`);
      const i = b.indexOf("<enabled");
      const gt = i < 0 ? -1 : b.indexOf(">", i);
      if (gt < 0) return;
      const close = b.charCodeAt(gt - 1) === 47 ? gt + 1 : b.indexOf("</enabled>", gt) + 10;
      if (close < 10) return;
      u.buf = "";
      sm.enabled++;
      goOnline(u);
      if (close < b.length) onlineData(u, b.slice(close));
      return;
    }
  }
}

function goOnline(u: User): void {
  u.state = St.Online;
  if (u.timer) clearTimeout(u.timer);
  u.timer = null;
  u.socket.write("<presence/>");
  if (spec.sm) u.out = 1;
  online++;
  reportLogin();
}

/** Is the start tag whose name begins at b[p] (and which ends at b[gt] = '>') named `name`? */
function tagIs(b: string, p: number, gt: number, name: string): boolean {
  const e = p + name.length;
  if (e > gt || !b.startsWith(name, p)) return false;
  const c = b.charCodeAt(e);
  return e === gt || c === 32 || c === 47 || c === 9 || c === 10 || c === 13;
}

/**
 * One pass over the '<'s of what arrived: each stanza (message, presence, iq)
 * counts towards h and an error stanza is noted; each <body>…</body> gives a
 * latency; with stream management a server <r/> is answered after the pass
 * (h then covers everything read), each <a/> must give exactly the count
 * sent before the <r/> it answers, and <failed/> is counted. An element not
 * complete yet waits for the next read.
 */
function onlineData(u: User, d: string): void {
  const b = u.buf.length ? u.buf + d : d;
  const t = now();
  let at = 0;
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
    const p = lt + 1;
    at = gt + 1;
    if (b.charCodeAt(p) === 47) continue;
    if (tagIs(b, p, gt, "body")) {
      const close = b.indexOf("</body>", gt);
      if (close < 0) {
        at = lt;
        break;
      }
      at = close + 7;
      // A room message's body is "send-time seq" (bench/muc).
      const sp = u.seen === null ? -1 : b.indexOf(" ", gt + 1);
      const sentAt = Number(b.slice(gt + 1, sp > gt && sp < close ? sp : close));
      if (!measuring || !(sentAt > 0)) continue;
      if (u.seen !== null && !firstArrival(u.seen, sp > gt && sp < close ? Number(b.slice(sp + 1, close)) : -1)) continue;
      const ms = t - sentAt;
      received++;
      hist.record(ms);
      if (ms <= spec.deadlineMs) inDeadline++;
    } else if (tagIs(b, p, gt, "message") || tagIs(b, p, gt, "presence") || tagIs(b, p, gt, "iq")) {
      u.h = (u.h + 1) % 0x1_0000_0000;
      if (spec.room !== undefined) roomStanza(u, b, lt, gt);
      if (!measuring) continue;
      const tag = b.slice(lt, gt);
      if (tag.includes("type='error'") || tag.includes('type="error"')) errors++;
    } else if (spec.sm) {
      const tag = b.slice(lt, gt + 1);
      if (!tag.includes(NS_SM)) continue;
      if (tagIs(b, p, gt, "r")) {
        ackDue = true;
        sm.serverRequests++;
      } else if (tagIs(b, p, gt, "a")) {
        const h = / h=['"]([0-9]+)['"]/.exec(tag);
        const want = u.expect.shift();
        if (h === null || want === undefined || Number(h[1]) !== want) sm.badAcks++;
      } else if (tagIs(b, p, gt, "failed")) sm.failed++;
    }
  }
  u.buf = at >= b.length ? "" : b.slice(at);
  if (ackDue) u.socket.write(`<a xmlns='${NS_SM}' h='${u.h}'/>`);
}

/** bench/muc: a room message's seq, seen for the first time by this occupant (else a duplicate, or not a seq of ours: an error). */
function firstArrival(seen: Uint8Array, q: number): boolean {
  if (!(Number.isInteger(q) && q >= 0 && q < spec.room!.senders * spec.messages)) {
    errors++;
    return false;
  }
  const bit = 1 << (q & 7);
  if ((seen[q >> 3] & bit) !== 0) {
    duplicates++;
    return false;
  }
  seen[q >> 3] |= bit;
  return true;
}

// ---- bench/muc: the room, made by user0 (its owner) and joined by everyone --------------------------

const NS_MUC = "http://jabber.org/protocol/muc";
let creating: User | null = null;
let joinErrors = 0;
let joinError = "";
let joinReport: NodeJS.Timeout | null = null;

/** XEP-0045 §7.2: enter the room with the user's name as nick, no history. */
function joinRoom(u: User): void {
  if (u.state === St.Online) u.socket.write(`<presence to='${spec.room!.jid}/${u.name}'><x xmlns='${NS_MUC}'><history maxstanzas='0'/></x></presence>`);
}

/** A stanza's start tag while in a room: the room's presences are counted; the creator's self-presence and the instant room's answer. */
function roomStanza(u: User, b: string, lt: number, gt: number): void {
  const tag = b.slice(lt, gt);
  const error = tag.includes("type='error'") || tag.includes('type="error"');
  if (tagIs(b, lt + 1, gt, "presence")) {
    // The user's own presence comes back from its server too (RFC 6121 §4.2.2): only the room's count.
    if (!tag.includes(spec.room!.jid)) return;
    if (error) {
      joinErrors++;
      joinError ||= `${u.name}: ${b.slice(lt, lt + 400)}`;
      if (creating === u) created(b.slice(lt, lt + 400));
      return;
    }
    // §10.1.1: the creator's self-presence (201, the room locked); §10.1.2: accept the default configuration at once.
    if (++u.presences === 1 && creating === u) u.socket.write(`<iq type='set' id='instant' to='${spec.room!.jid}'><query xmlns='${NS_MUC}#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>`);
  } else if (creating === u && tagIs(b, lt + 1, gt, "iq") && /id=['"]instant['"]/.test(tag)) created(error ? b.slice(lt, lt + 400) : "");
}

/** user0, the room's creator and owner: joins first (§10.1.1), then makes the room instant (roomStanza). */
function create(): void {
  const u = users.find((x) => x.index === 0 && x.state === St.Online);
  if (u === undefined) return send({ ev: "created", error: "user0, the room's creator, is not online here" });
  creating = u;
  joinRoom(u);
}

function created(error: string): void {
  creating = null;
  send({ ev: "created", error });
}

/** Every online user but the room's creator joins, spread over rampMs; "joined" every 500 ms counts those that saw all `occupants`' presence. */
function join(occupants: number, rampMs: number): void {
  const active = users.filter((u) => u.state === St.Online && u.presences === 0);
  active.forEach((u, i) => setTimeout(() => joinRoom(u), (i * rampMs) / Math.max(1, active.length)));
  const report = () => send({ ev: "joined", joined: users.filter((u) => u.state === St.Online && u.presences >= occupants).length, errors: joinErrors, firstError: joinError });
  joinReport = setInterval(report, 500);
  report();
}

let reportQueued = false;
function reportLogin(): void {
  if (reportQueued) return;
  reportQueued = true;
  setTimeout(() => {
    reportQueued = false;
    const done = online + failed >= users.length;
    send({ ev: "login", online, failed, done, firstError, offline: done ? offline : [], ...(done ? { firstByte: firstByte.toJSON() } : {}) });
  }, 200);
}

function send(e: GenEvent): void {
  process.send!(e);
}

/**
 * The messaging phase in pump.c: the online users' sockets become its fds 3, 4, …
 * and this process lets go of them (the connections stay open: the pump holds them).
 */
let pump: ChildProcess | null = null;
let pumpResult: { sent: number; received: number; errors: number; cpu: number; busy: number; lat: string; sm: number[]; duplicates: number; warm: number[] } | null = null;
/** The pump's exit: 0, another status (a sanitizer's report in its sanitized build), or the signal that ended it. */
let pumpStatus: number | string | null = null;
function preparePump(path: string, targets: number[]): void {
  const active = users.filter((u) => u.state === St.Online);
  // The pump's count starts where this process's stops: an element half read here would be missed there.
  const partial = active.filter((u) => u.buf.length > 0).length;
  if (spec.sm && partial > 0) console.error(`gen: ${partial} users handed to the pump in the middle of an element: their h may miss a stanza`);
  const room = spec.room === undefined ? [] : [`room=${spec.room.jid}`, `senders=${spec.room.senders}`];
  if (spec.pick !== undefined) room.push(`pick=${spec.pick.mode}`);
  if (spec.warm !== undefined && spec.warm.ms > 0) room.push(`warm=${spec.warm.ms},${spec.warm.share}`);
  const child = spawn(path, [String(1000 / spec.rate), String(spec.messages), spec.domain, String(active.length), spec.spin ? "1" : "0", ...(spec.sm ? [String(spec.smEvery)] : []), ...room], {
    stdio: ["pipe", "pipe", "inherit", ...active.map((u) => u.socket)],
  });
  pump = child;
  for (const u of active) {
    u.socket.removeAllListeners();
    u.socket.on("error", () => {});
    u.socket.destroy();
    u.state = St.Handed;
  }
  child.stdin!.write(`${active.map((u) => u.index).join(" ")}\n${targets.join(" ")}\n`);
  if (spec.pick !== undefined) child.stdin!.write(`${spec.pick.groups.join(" ")}\n`);
  if (spec.sm) child.stdin!.write(`${active.map((u) => u.h).join(" ")}\n${active.map((u) => u.out).join(" ")}\n`);
  let r: string[] | null = null;
  let smLine: number[] = [0, 0, 0, 0];
  let dups = 0;
  let warm = [0, 0];
  createInterface({ input: child.stdout! }).on("line", (line) => {
    const f = line.split(" ");
    if (f[0] === "READY") send({ ev: "ready" });
    else if (f[0] === "P") send({ ev: "progress", sent: Number(f[1]), received: Number(f[2]), doneSending: f[3] === "1" });
    else if (f[0] === "R") r = f;
    else if (f[0] === "S") smLine = f.slice(1).map(Number);
    else if (f[0] === "U") dups = Number(f[1]);
    else if (f[0] === "W") warm = f.slice(1).map(Number);
    else if (f[0] === "L" && r !== null) pumpResult = { sent: Number(r[1]), received: Number(r[2]), errors: Number(r[3]), cpu: Number(r[4]), busy: Number(r[5]), lat: line, sm: smLine, duplicates: dups, warm };
  });
  child.on("close", (code, signal) => {
    pumpStatus = code ?? signal;
    stop();
  });
}

/**
 * Everything before the schedule's start: the recipients, and with a pump the
 * hand-over. Reports "ready" when done; the parent then picks one t0 for all.
 */
let targets: number[] = [];
function prepare(offline: Set<number>): void {
  if (joinReport !== null) clearInterval(joinReport);
  for (let i = 0; i < spec.totalUsers; i++) if (!offline.has(i)) targets.push(i);
  if (spec.pump) return preparePump(spec.pump, targets);
  send({ ev: "ready" });
}

/** The paper's schedule: every user sends `messages` at `rate`/s, first one at a random phase. */
function go(t0: number): void {
  cpuGo = process.cpuUsage();
  measuring = true;
  if (pump !== null) {
    pump.stdin!.write(`${t0.toFixed(3)}\n`);
    return;
  }
  const period = 1000 / spec.rate;
  const room = spec.room;
  // In a room only its senders send; everyone counts each room message once.
  if (room !== undefined) for (const u of users) u.seen = new Uint8Array(Math.ceil((room.senders * spec.messages) / 8));
  const active = users.filter((u) => u.state === St.Online && (room === undefined || u.index < room.senders));
  for (const u of active) u.phase = Math.random() * period;
  active.sort((a, b) => a.phase - b.phase);
  let round = 0;
  let next = 0;
  const tick = () => {
    const t = now();
    while (round < spec.messages && t0 + round * period + active[next].phase <= t) {
      const u = active[next];
      if (u.state === St.Online && room !== undefined) {
        const seq = round * room.senders + u.index;
        u.socket.write(`<message to='${room.jid}' type='groupchat' id='g${seq}'><body>${now().toFixed(3)} ${seq}</body></message>`);
        sent++;
      } else if (u.state === St.Online) {
        let to = targets[(Math.random() * targets.length) | 0];
        const pick = spec.pick;
        if (pick !== undefined) {
          // Recipients of the sender's own group, or of the others (pump.c does the same).
          const mine = pick.groups[u.index];
          while (to === u.index || (pick.groups[to] === mine) !== (pick.mode === "local")) to = targets[(Math.random() * targets.length) | 0];
        } else if (to === u.index) to = targets[(Math.random() * targets.length) | 0];
        let ask = "";
        if (spec.sm) {
          u.out = (u.out + 1) % 0x1_0000_0000;
          if (spec.smEvery > 0 && ++u.unasked === spec.smEvery) {
            u.unasked = 0;
            u.expect.push(u.out);
            sm.clientRequests++;
            ask = `<r xmlns='${NS_SM}'/>`;
          }
        }
        u.socket.write(`<message to='user${to}@${spec.domain}' type='chat' id='m${round}'><body>${now().toFixed(3)}</body></message>${ask}`);
        sent++;
      }
      if (++next === active.length) {
        next = 0;
        round++;
      }
    }
    if (round < spec.messages && active.length > 0) setTimeout(tick, 2);
    else send({ ev: "progress", sent, received, doneSending: true });
  };
  setTimeout(tick, Math.max(0, t0 - now()));
  const progress = setInterval(() => send({ ev: "progress", sent, received, doneSending: round >= spec.messages }), 1000);
  progress.unref();
}

function stop(): void {
  // With a pump, the first stop closes its stdin; its exit brings the second, with its figures.
  if (pump !== null && pump.exitCode === null && pump.signalCode === null) {
    pump.stdin!.end();
    return;
  }
  if (pumpResult !== null) {
    const lat = pumpResult.lat;
    for (let i = 2, j = 0; i < lat.length; i = j + 1) {
      j = lat.indexOf(" ", i);
      if (j < 0) j = lat.length;
      const ms = Number(lat.slice(i, j));
      hist.record(ms);
      if (ms <= spec.deadlineMs) inDeadline++;
    }
    sent = pumpResult.sent;
    received = pumpResult.received;
    errors = pumpResult.errors;
    duplicates = pumpResult.duplicates;
    const [sr, cr, bad, failed] = pumpResult.sm;
    sm.serverRequests += sr;
    sm.clientRequests += cr;
    sm.badAcks += bad;
    sm.failed += failed;
  }
  measuring = false;
  const cpu = process.cpuUsage(cpuGo);
  const login = process.cpuUsage(cpuStart);
  const own = (cpu.user + cpu.system) / 1e6;
  send({ ev: "result", sent, received, inDeadline, errors, hist: hist.toJSON(), cpuSeconds: own + (pumpResult?.cpu ?? 0), busySeconds: own + (pumpResult?.busy ?? 0), loginCpuSeconds: (login.user + login.system - cpu.user - cpu.system) / 1e6, sm, duplicates, pumpStatus, warm: { sent: pumpResult?.warm[0] ?? 0, received: pumpResult?.warm[1] ?? 0 } });
  for (const u of users) {
    if (u.state === St.Dead || u.state === St.Handed) continue;
    // Log off as a client does: acknowledge what came, then close the stream.
    const ack = spec.sm && u.state === St.Online ? `<a xmlns='${NS_SM}' h='${u.h}'/>` : "";
    u.state = St.Dead;
    u.socket.end(`${ack}</stream:stream>`);
    u.socket.destroy();
  }
  setTimeout(() => process.exit(0), 300);
}

process.on("message", (m: GenCommand) => {
  if (m.cmd === "prepare") prepare(new Set(m.offline));
  else if (m.cmd === "create") create();
  else if (m.cmd === "join") join(m.occupants, m.rampMs);
  else if (m.cmd === "go") go(m.t0);
  else if (m.cmd === "stop") stop();
});
process.on("disconnect", () => process.exit(0));

// Arrival spread: this slice's users start evenly over the ramp.
users.forEach((u, i) => setTimeout(() => startLogin(u), (i * spec.rampMs) / Math.max(1, users.length)));
if (users.length === 0) reportLogin();
