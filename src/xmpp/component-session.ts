import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { Element } from "ltx";
import { Session } from "../session/session.js";
import { PeerWatch, type PeerProbe } from "../session/peer-watch.js";
import { Envelope, Flag, Kind } from "../envelope/envelope.js";
import { bareOf, canonicalAddress, parseAddress } from "../address/address.js";
import type { Conn } from "../transport/conn.js";
import { StreamParser, type StreamSink } from "./stream/parser.js";
import { conditionForCode, StanzaCondition, stanzaError, StreamCondition, StreamError } from "./errors.js";
import { NS } from "./ns.js";
import { isStanza } from "./outbound.js";
import { serialize, serializeWith } from "./stanza.js";
import { SessionRecord } from "../metrics/session-record.js";
import { eligible } from "./modules/carbons.js";
import { domainOf, routedEnvelope } from "./modules/components.js";
import type { XmppContext } from "./context.js";
import type { StanzaIds } from "./modules/stanza-id.js";

/** The resource a component's session binds at: its domain is its bare address in the ring (modules/components.ts). */
export const COMPONENT_RESOURCE = "component";
/** Requests the component made and not yet answered, remembered for the address it asked from (a timeout names none). */
const MAX_ASKED = 10000;

/** What a component connection needs beyond what every XMPP connection shares. */
export interface ComponentContext {
  x: XmppContext;
  /** Secrets by domain (xmpp.components). */
  secrets: ReadonlyMap<string, string>;
  /** Every component domain of this server: a component may talk to another. */
  domains: ReadonlySet<string>;
  /** XEP-0359 ids of archived messages (xmpp.mam.enabled); null: archives are off. */
  ids: StanzaIds | null;
}

const enum State {
  Header,
  Handshake,
  Bound,
  Closed,
}

/**
 * One XEP-0114 component connection (`jabber:component:accept`). After the
 * handshake it is a Session bound at `<domain>/component`, available, so the
 * owner of the bare domain gives it whatever is sent to any address in the
 * domain; what it sends goes through the core like a client's. A second
 * connection for the same domain takes the address over (the core's rule for
 * a resource bound twice): the older one gets <conflict/>. Every error costs
 * this connection only.
 */
export class ComponentSession extends Session implements StreamSink, PeerProbe {
  readonly protocol = "xmpp";
  readonly idPassThrough = true;
  private state = State.Header;
  private readonly parser: StreamParser;
  private readonly streamId = randomBytes(12).toString("base64url");
  private domain = "";
  private headerSent = false;
  private authTimer: NodeJS.Timeout | null;
  private watch: PeerWatch | null = null;
  private record: SessionRecord | null = null;
  private pings = 0;
  /** The component's requests by id: the address in its domain that asked (answers come to the session's address). */
  private readonly asked = new Map<string, string>();

  constructor(
    private readonly conn: Conn,
    private readonly c: ComponentContext,
  ) {
    super();
    const x = c.x;
    this.parser = new StreamParser(this, { maxStanzaBytes: x.config.limits.maxStanzaBytes, maxDepth: 48 });
    conn.onData = (chunk) => this.onData(chunk);
    conn.onClose = (reason) => this.cleanup(reason);
    conn.onShutdown = () => this.fail(new StreamError(StreamCondition.SystemShutdown, "server shutdown"));
    this.authTimer = setTimeout(() => this.fail(new StreamError(StreamCondition.ConnectionTimeout, "no handshake in time")), x.config.limits.authTimeoutMs);
    this.authTimer.unref();
    // Wrong secrets count against the address like failed logins (RFC 6120 §6.4.5's spirit).
    if (x.ipFailures.blocked(conn.remoteAddress)) this.fail(new StreamError(StreamCondition.PolicyViolation, "too many failed handshakes"));
  }

  private onData(chunk: Buffer): void {
    if (this.state === State.Closed) return;
    this.watch?.seen();
    try {
      this.parser.push(chunk);
    } catch (e) {
      this.fail(e);
    }
  }

  streamStart(name: string, attrs: Record<string, string>): void {
    if (this.state !== State.Header) throw new StreamError(StreamCondition.BadFormat, "the stream is already open");
    if (name !== "stream:stream" || attrs["xmlns:stream"] !== NS.STREAM) throw new StreamError(StreamCondition.InvalidNamespace, "expected stream:stream in the streams namespace");
    if (attrs.xmlns !== NS.COMPONENT) throw new StreamError(StreamCondition.InvalidNamespace, `the content namespace must be ${NS.COMPONENT}`);
    // XEP-0114 §2: `to` names the component. An unknown one is refused after the handshake, as a wrong secret is: the same answer for both.
    this.domain = (attrs.to ?? "").toLowerCase();
    this.sendHeader();
    this.state = State.Handshake;
  }

  stanza(el: Element): void {
    if (this.state === State.Closed) return;
    if (this.state === State.Handshake) return this.handshake(el);
    this.c.x.metrics.xmpp.in++;
    if (el.attrs.xmlns === NS.COMPONENT) delete el.attrs.xmlns;
    else if (el.attrs.xmlns !== undefined) throw new StreamError(StreamCondition.UnsupportedStanzaType, `<${el.name}> in ${el.attrs.xmlns}`);
    if (el.name !== "message" && el.name !== "presence" && el.name !== "iq") throw new StreamError(StreamCondition.UnsupportedStanzaType, `<${el.name}> is not a stanza`);
    this.fromComponent(el);
  }

  streamEnd(): void {
    this.close("component closed the stream");
  }

  /** XEP-0114 §3: <handshake> holds hex(SHA-1(stream id + secret)). */
  private handshake(el: Element): void {
    if (el.name !== "handshake") throw new StreamError(StreamCondition.NotAuthorized, "handshake first");
    const secret = this.c.secrets.get(this.domain);
    const expected = createHash("sha1").update(this.streamId + (secret ?? randomBytes(16).toString("hex"))).digest();
    const given = Buffer.from(el.getText().trim().toLowerCase(), "hex");
    if (secret === undefined || given.length !== expected.length || !timingSafeEqual(given, expected)) {
      this.c.x.ipFailures.fail(this.conn.remoteAddress);
      throw new StreamError(StreamCondition.NotAuthorized, "unknown component or wrong secret");
    }
    if (this.authTimer !== null) clearTimeout(this.authTimer);
    this.authTimer = null;
    this.bare = this.domain;
    this.resource = COMPONENT_RESOURCE;
    this.address = `${this.domain}/${COMPONENT_RESOURCE}`;
    this.available = true;
    this.state = State.Bound;
    const { pingAfterMs, pingTimeoutMs } = this.c.x.config.xmpp;
    this.watch = new PeerWatch(pingAfterMs, pingTimeoutMs, this);
    this.conn.write("<handshake/>");
    this.c.x.core.attach(this);
    this.record = SessionRecord.start(this.c.x.metrics, this.c.x.log, "component", this.address, this.conn);
  }

  /** A stanza from the component: its `from` must be in its domain (XEP-0114 §3, Prosody's invalid-from), its `to` given. */
  private fromComponent(el: Element): void {
    const fromRaw = el.attrs.from;
    const from = fromRaw === undefined || fromRaw === "" ? this.domain : canonical(fromRaw);
    if (from === null || domainOf(from) !== this.domain) throw new StreamError(StreamCondition.InvalidFrom, `a component sends from its domain ${this.domain}`);
    el.attrs.from = from;
    const toRaw = el.attrs.to;
    if (toRaw === undefined || toRaw === "") return this.bounce(el, StanzaCondition.BadRequest, "a component's stanza needs a 'to'");
    const to = canonical(toRaw);
    if (to === null) return this.bounce(el, StanzaCondition.JidMalformed);
    el.attrs.to = to;
    const server = this.c.x.config.domain;
    const toDomain = domainOf(to);
    if (to === server) return this.toServer(el);
    let routeTo = to;
    let flags: number | undefined;
    if (this.c.domains.has(toDomain)) routeTo = toDomain;
    else if (toDomain !== server) return this.bounce(el, StanzaCondition.RemoteServerNotFound);
    else if (el.name === "message") {
      flags = userMessageFlags(el, to.indexOf("/") > 0);
      // XEP-0313: kept in the user's archive like a message from another user (the recipient's owner archives it).
      if (this.c.ids !== null && this.c.ids.mark(el, bareOf(from), to)) flags |= Flag.Archive;
    }
    // RFC 6121 §8.5.2.1.3: an IQ to a user's bare JID is the server's to answer for the account, and it serves none for components.
    else if (el.name === "iq" && to.indexOf("/") < 0 && (el.attrs.type === "get" || el.attrs.type === "set")) return this.bounce(el, StanzaCondition.ServiceUnavailable);
    const ttl = (ns: string) => this.c.x.config.timeouts.xmpp.byNamespace[ns] ?? 0;
    const env = routedEnvelope(from, routeTo, el, ttl, flags);
    if (env === null) return;
    if (!(env instanceof Envelope)) return this.bounce(el, env);
    if (env.kind === Kind.Request) this.remember(env.id, from);
    this.c.x.core.submit(this, env);
  }

  /** To the server itself: a ping is answered, answers (to our pings) end here, anything else is not served. */
  private toServer(el: Element): void {
    if (el.name !== "iq") return;
    const type = el.attrs.type;
    if (type === "result" || type === "error") return;
    if (type === "get" && el.getChild("ping", NS.PING) !== undefined) return this.send(new Element("iq", { type: "result", id: el.attrs.id, from: this.c.x.config.domain, to: el.attrs.from }).toString());
    this.bounce(el, StanzaCondition.ServiceUnavailable);
  }

  private remember(id: string, from: string): void {
    if (this.asked.size >= MAX_ASKED) this.asked.delete(this.asked.keys().next().value!);
    this.asked.set(id, from);
  }

  private bounce(el: Element, cond: StanzaCondition, text = ""): void {
    if (el.attrs.type === "error") return;
    this.send(stanzaError(el, cond, el.attrs.to || this.c.x.config.domain, el.attrs.from, text).toString());
  }

  // ---- output ----------------------------------------------------------------

  deliver(env: Envelope): boolean {
    if (this.state !== State.Bound) return env.kind !== Kind.Request;
    if (!isStanza(env)) {
      // Another protocol's message: its payload as a body; its requests have no form here.
      if (env.kind !== Kind.Message) return env.kind !== Kind.Request;
      const m = new Element("message", { type: "normal", from: env.from, to: this.domain });
      const p = env.payload;
      m.c("body").t(p == null ? "" : p instanceof Uint8Array ? Buffer.from(p).toString("utf8") : String(p));
      this.send(m.toString());
      return true;
    }
    const el = env.payload as Element | null;
    switch (env.kind) {
      case Kind.Message:
      case Kind.Presence:
      case Kind.Request:
        // Copies (XEP-0280) are for clients. A stanza routed here keeps its real `to`; without one it was sent to the bare domain.
        if (el === null || (env.flags & (Flag.Copy | Flag.SentCopy)) !== 0) return env.kind !== Kind.Request;
        this.send(serializeWith(el, { from: env.from, to: el.attrs.to ?? env.to, xmlns: "" }));
        return true;
      case Kind.Response:
      case Kind.Error: {
        // An answer to the component's request, to the address in its domain that asked.
        const to = this.asked.get(env.responseFor) ?? el?.attrs.to ?? this.domain;
        this.asked.delete(env.responseFor);
        if (el !== null && el.name === "iq") this.send(serializeWith(el, { id: env.responseFor, from: env.from, to, xmlns: "" }));
        else if (el !== null && el.name === "message") this.send(stanzaError(el, conditionForCode(env.code), env.from, to).toString());
        else if (env.kind === Kind.Response) this.send(serialize(new Element("iq", { type: "result", id: env.responseFor, from: env.from, to })));
        else this.send(stanzaError(new Element("iq", { id: env.responseFor }), conditionForCode(env.code), env.from, to).toString());
        return true;
      }
      default:
        return true;
    }
  }

  private send(wire: string): void {
    if (this.state === State.Closed) return;
    this.c.x.metrics.xmpp.out++;
    this.conn.write(wire);
  }

  private sendHeader(): void {
    if (this.headerSent) return;
    this.headerSent = true;
    const from = this.domain === "" ? "" : ` from='${this.domain.replace(/[^a-z0-9.-]/g, "")}'`;
    this.conn.write(`<?xml version='1.0'?><stream:stream xmlns='${NS.COMPONENT}' xmlns:stream='${NS.STREAM}' id='${this.streamId}'${from}>`);
  }

  replaced(): void {
    this.fail(new StreamError(StreamCondition.Conflict, "replaced by a new connection for the same component"));
  }

  pingPeer(): void {
    this.send(`<iq type='get' id='ping-${this.serial}-${++this.pings}' to='${this.domain}' from='${this.c.x.config.domain}'><ping xmlns='${NS.PING}'/></iq>`);
  }

  peerGone(): void {
    this.fail(new StreamError(StreamCondition.ConnectionTimeout, "no answer to ping"));
  }

  // ---- ending ------------------------------------------------------------------

  fail(e: unknown): void {
    if (this.state === State.Closed) return;
    let err: StreamError;
    if (e instanceof StreamError) err = e;
    else {
      this.c.x.log.error("component session failed", { domain: this.domain, error: (e as Error)?.stack ?? String(e) });
      err = new StreamError(StreamCondition.InternalServerError);
    }
    this.c.x.log.info("component stream error", { domain: this.domain, remote: this.conn.remoteAddress, condition: err.condition, text: err.message });
    this.sendHeader();
    this.conn.write(err.toXml());
    this.close(err.condition);
  }

  close(reason: string): void {
    if (this.state === State.Closed) return;
    this.sendHeader();
    this.conn.write("</stream:stream>");
    this.cleanup(reason);
    this.conn.end(reason);
  }

  private cleanup(reason: string): void {
    if (this.state === State.Closed) return;
    const bound = this.state === State.Bound;
    this.state = State.Closed;
    this.record?.end(reason);
    this.watch?.stop();
    if (this.authTimer !== null) clearTimeout(this.authTimer);
    this.authTimer = null;
    // What was asked of it fails at once (the core answers its askers).
    if (bound) this.c.x.core.detach(this);
  }
}

function canonical(raw: string): string | null {
  const a = parseAddress(raw);
  return a === null ? null : canonicalAddress(raw, a);
}

/** RFC 6121 §8.5.2/§8.5.3 for a message to a user, as modules/message.ts asks it; chats may be copied (XEP-0280). */
function userMessageFlags(el: Element, full: boolean): number {
  const type = el.attrs.type;
  const copies = eligible(el) ? Flag.Copies : 0;
  if (type === undefined || type === "normal" || type === "chat") return (full ? Flag.BareFallback : 0) | Flag.Offline | copies;
  if (type === "groupchat") return Flag.Bounce;
  return copies;
}
