import { Element } from "ltx";
import { NS } from "../ns.js";
import { Ev, type Hooks } from "../hooks.js";
import { Phase, type ClientSession } from "../client-session.js";
import type { XmppContext } from "../context.js";
import { serverId } from "../stanza.js";
import { capsVer } from "./caps-hash.js";

const NOTIFY = "+notify";
const NONE: ReadonlySet<string> = new Set();

/** What the server knows of one session's capabilities (XEP-0115): the ver it announced and the nodes it wants notifications of. */
interface SessionCaps {
  /** `hash ver` of the last available presence (empty: none announced). */
  key: string;
  /** XEP-0163 §4.2: the nodes named by `<node>+notify` features. */
  notify: ReadonlySet<string>;
}

/** A disco#info the server sent a client about a ver it does not know yet. */
interface Question {
  session: ClientSession;
  hash: string;
  ver: string;
  timer: NodeJS.Timeout;
}

/**
 * XEP-0115 entity capabilities, learned per session: the `<c/>` of a
 * session's available presence names a ver; a ver this worker has verified
 * is known at once, a new one is asked once (disco#info to that full JID,
 * §6.2), the answer checked against the ver (§5.4, sha-1) and kept in a
 * bounded cache by ver (xmpp.pep.capsCacheSize). Other sessions announcing
 * the same ver meanwhile wait for that one answer. The server writes the
 * question on the session's own stream: the client asked is on this worker,
 * so no routing and no pending response on the core is needed; the answer is
 * taken before the iq module would drop it (an answer to the server).
 *
 * Each worker learns the caps of its own sessions, and a session filters the
 * PEP notifications it is delivered by them (pep-events.ts): a contact's
 * resource gets a node's events when its own caps say `<node>+notify`, which
 * is the filter XEP-0163 §4.2 asks the publisher's server to apply, applied
 * where the contact's caps are known without asking across workers.
 */
export class Caps {
  private readonly sessions = new WeakMap<ClientSession, SessionCaps>();
  /** Verified feature sets by `ver`; insertion order is age (the oldest is forgotten first). */
  private readonly cache = new Map<string, ReadonlySet<string>>();
  private readonly questions = new Map<string, Question>();
  /** Sessions resumed from another worker whose caps are being learned again: their last items were sent already. */
  private readonly resumed = new WeakSet<ClientSession>();
  /** Sessions announcing a ver not verified yet, and those already asked about it, by ver. */
  private readonly waiting = new Map<string, { sessions: Set<ClientSession>; asked: WeakSet<ClientSession> }>();

  constructor(
    private readonly x: XmppContext,
    /** Called with the nodes a session newly wants notifications of (XEP-0163 §4.3.4: send it their last items). */
    private readonly interested: (s: ClientSession, nodes: ReadonlySet<string>) => void,
  ) {}

  /** The nodes this session wants notifications of; none while its caps are not known. */
  notifyNodes(s: ClientSession): ReadonlySet<string> {
    return this.sessions.get(s)?.notify ?? NONE;
  }

  /** How many vers are verified and cached (tests, metrics). */
  get cached(): number {
    return this.cache.size;
  }

  /** An available presence from the session: its <c/>, if any, says what it can do. */
  presence(s: ClientSession, stanza: Element): void {
    const c = stanza.getChild("c", NS.CAPS);
    const hash = c?.attrs.hash;
    const ver = c?.attrs.ver;
    const node = c?.attrs.node;
    if (c === undefined || typeof ver !== "string" || ver === "" || typeof node !== "string") return this.apply(s, "", NONE);
    // Legacy caps (no hash, §8.4) cannot be verified: asked for this session, never cached.
    const key = `${typeof hash === "string" ? hash : ""} ${ver}`;
    const now = this.sessions.get(s);
    if (now !== undefined && now.key === key) return;
    const known = hash === "sha-1" ? this.cache.get(ver) : undefined;
    if (known !== undefined) return this.apply(s, key, known);
    // Until the answer, the session keeps what it had (a client changing caps misses nothing it still wants).
    if (hash === "sha-1") {
      const w = this.waiting.get(ver);
      if (w !== undefined) return void w.sessions.add(s);
      this.waiting.set(ver, { sessions: new Set([s]), asked: new WeakSet([s]) });
    }
    this.ask(s, node, typeof hash === "string" ? hash : "", ver);
  }

  /** A session continued here from another worker (XEP-0198): its caps learned again from its last presence, without sending last items again. */
  continued(s: ClientSession): void {
    const p = s.presence;
    if (!s.available || !(p instanceof Element)) return;
    this.resumed.add(s);
    this.presence(s, p);
  }

  /** The session went unavailable or away: it wants nothing until its next available presence, which sends the last items again. */
  forget(s: ClientSession): void {
    this.sessions.delete(s);
    for (const w of this.waiting.values()) w.sessions.delete(s);
  }

  /** An iq result or error to the server: true when it answers one of our questions. */
  answer(s: ClientSession, stanza: Element): boolean {
    const id = stanza.attrs.id;
    const q = typeof id === "string" ? this.questions.get(id) : undefined;
    if (q === undefined || q.session !== s) return false;
    this.questions.delete(id);
    clearTimeout(q.timer);
    const query = stanza.attrs.type === "result" ? stanza.getChild("query", NS.DISCO_INFO) : undefined;
    if (query === undefined) return this.failed(q), true;
    const features = new Set(query.getChildren("feature").map((f) => String(f.attrs.var ?? "")));
    const key = `${q.hash} ${q.ver}`;
    if (q.hash === "sha-1" && capsVer(query) === q.ver) {
      this.remember(q.ver, features);
      const w = this.waiting.get(q.ver);
      this.waiting.delete(q.ver);
      for (const other of w?.sessions ?? [s]) if (other.phase === Phase.Bound) this.applyIfStill(other, key, features);
      this.applyIfStill(s, key, features);
    } else {
      // §5.4: not verified (another hash, legacy caps, or a mismatch): never cached; this session's own answer is still about itself.
      if (q.hash === "sha-1") this.x.log.debug("xmpp: caps ver does not match its disco#info", { address: s.address, ver: q.ver });
      this.apply(s, key, features);
      this.failed(q, false);
    }
    return true;
  }

  private ask(s: ClientSession, node: string, hash: string, ver: string): void {
    const id = serverId("caps");
    const iq = new Element("iq", { type: "get", id, from: s.domain, to: s.address });
    iq.c("query", { xmlns: NS.DISCO_INFO, node: `${node}#${ver}` });
    const timer = setTimeout(() => {
      if (this.questions.delete(id)) this.failed(q);
    }, this.x.config.xmpp.pep.capsTimeoutMs);
    timer.unref();
    const q: Question = { session: s, hash, ver, timer };
    this.questions.set(id, q);
    s.send(iq);
  }

  /**
   * No usable answer: the next session announcing this ver that was not asked
   * yet is asked instead; when none is left, they all stay without caps until
   * their next presence (the ver is asked again then).
   */
  private failed(q: Question, retry = true): void {
    if (q.hash !== "sha-1") return;
    const w = this.waiting.get(q.ver);
    if (w === undefined) return;
    const next = retry ? [...w.sessions].find((o) => o.phase === Phase.Bound && !w.asked.has(o)) : undefined;
    if (next === undefined) return void this.waiting.delete(q.ver);
    w.asked.add(next);
    const c = (next.presence as Element | null)?.getChild?.("c", NS.CAPS);
    this.ask(next, String(c?.attrs.node ?? ""), q.hash, q.ver);
  }

  private remember(ver: string, features: ReadonlySet<string>): void {
    this.cache.delete(ver);
    this.cache.set(ver, features);
    if (this.cache.size > this.x.config.xmpp.pep.capsCacheSize) this.cache.delete(this.cache.keys().next().value!);
  }

  /** Applies an answer to a session that still announces that ver (it may have sent another presence meanwhile). */
  private applyIfStill(s: ClientSession, key: string, features: ReadonlySet<string>): void {
    const c = (s.presence as Element | null)?.getChild?.("c", NS.CAPS);
    if (c !== undefined && `${c.attrs.hash ?? ""} ${c.attrs.ver}` === key) this.apply(s, key, features);
  }

  private apply(s: ClientSession, key: string, features: ReadonlySet<string>): void {
    const before = this.sessions.get(s)?.notify ?? NONE;
    const notify = new Set<string>();
    for (const f of features) if (f.endsWith(NOTIFY) && f.length > NOTIFY.length) notify.add(f.slice(0, -NOTIFY.length));
    this.sessions.set(s, { key, notify });
    const fresh = new Set([...notify].filter((n) => !before.has(n)));
    // The presence module makes the session available right after (this runs first); the last items are read after that.
    if (fresh.size > 0 && !this.resumed.has(s)) this.interested(s, fresh);
    this.resumed.delete(s);
  }
}

/** Hooks the session events caps follow: available presence (ahead of the presence module, which also handles it), unavailability, answers. */
export function capsHooks(hooks: Hooks, caps: Caps): void {
  hooks.on(
    Ev.PresenceBroadcast,
    ({ session: s, stanza }) => {
      const type = stanza.attrs.type;
      if (type === "unavailable") caps.forget(s);
      else if (type === undefined) caps.presence(s, stanza);
      return false;
    },
    10,
  );
  hooks.on(Ev.SessionClosing, ({ session: s }) => caps.forget(s));
  hooks.on(Ev.SessionContinued, ({ session: s }) => caps.continued(s));
  hooks.on(Ev.IqAnswer, ({ session: s, stanza, to }) => (to === s.domain || to === "") && caps.answer(s, stanza), 10);
}
