import { Element, escapeXML } from "ltx";
import { NS } from "../ns.js";
import type { Hooks, IqEvent } from "../hooks.js";
import { bounce, iqResultFor } from "../replies.js";
import { StanzaCondition } from "../errors.js";
import type { ClientSession } from "../client-session.js";
import type { XmppContext } from "../context.js";
import type { ArchiveSink } from "../../session/core.js";
import type { ArchiveWriter } from "../../store/archive-writer.js";
import type { ArchiveMode, ArchivePage, ArchivePrefs, ArchiveStore } from "../../store/archive-store.js";
import { bareOf, normalizeAddress } from "../../address/address.js";
import { finElement, parseQuery, queryFormElement } from "./mam-query.js";
export { archivedText, renderArchived, renderText, renderWire, RENDER_MODULE } from "./mam-render.js";

/** What the archive module is given (front-end.ts, from xmpp.mam). */
export interface Archives {
  store: ArchiveStore;
  writer: ArchiveWriter;
  defaultMode: ArchiveMode;
  maxPageSize: number;
}

/** Core.stale topic: a user's preferences changed; every worker's writer reads them again (ArchivePrefsCache). */
const PREFS_TOPIC = "mam-prefs";

/** JIDs per always/never list at most: a preference set is one row, kept in memory by the user's owner (ArchivePrefsCache). */
const MAX_PREF_JIDS = 1000;

/**
 * The core's archive sink for XMPP: a message marked by StanzaIds is queued
 * for the archive of `bare`, a user of this domain. An object and a push, no
 * more: the text is taken when its batch is written (the one written to the
 * recipient's socket meanwhile, Envelope.written), and read off the event loop
 * where the store can (mam-render.ts).
 */
export function archiveSink(domain: string, writer: ArchiveWriter): ArchiveSink {
  const suffix = `@${domain}`;
  return (env, bare, outgoing) => {
    if (env.protocol !== "xmpp" || !bare.endsWith(suffix)) return;
    // A message that came over the bus unread is archived from its text, never parsed here.
    const text = env.wireText;
    if (text !== null && env.to.indexOf("@") > 0) return void writer.push({ bare, outgoing, ts: Date.now(), payload: text, from: env.from, to: env.to });
    // To a component (XEP-0114) the envelope names its domain, the stanza the address written to (modules/components.ts).
    const to = env.to.indexOf("@") < 0 ? ((env.payload as Element | null)?.attrs?.to ?? env.to) : env.to;
    writer.push({ bare, outgoing, ts: Date.now(), payload: env, from: env.from, to });
  };
}

/**
 * XEP-0313 (urn:xmpp:mam:2) on the user's own archive: queries (iq set, the
 * results as messages, then <fin/>), the query form (iq get), preferences
 * (§6). Queries wait for what this worker and the user's owner queued before
 * (so a message just sent is found), then read one page.
 */
export function mamModule(hooks: Hooks, x: XmppContext, a: Archives): void {
  // The user's owner writes its archive with the preferences it keeps; they may be set on any worker.
  x.core.onStale(PREFS_TOPIC, (user) => a.writer.prefsChanged(user));
  hooks.iq("self", NS.MAM, (e) => {
    const name = e.child.name;
    if (name === "query") return e.type === "get" ? queryForm(e) : void query(x, a, e).catch((err) => failed(x, e, err)), true;
    if (name === "prefs") return void (e.type === "get" ? getPrefs(a, e) : setPrefs(x, a, e)).catch((err) => failed(x, e, err)), true;
    bounce(e.session, e.stanza, StanzaCondition.BadRequest, "expected query or prefs");
    return true;
  });
}

/** A query or preference call that threw (a bug): logged, and the client gets an error rather than silence. */
function failed(x: XmppContext, e: IqEvent, err: unknown): void {
  x.log.error("archive request failed", { user: e.session.user, error: (err as Error).stack });
  bounce(e.session, e.stanza, StanzaCondition.InternalServerError);
}

/** §4.1.1: the fields a query may carry. */
function queryForm(e: IqEvent): void {
  iqResultFor(e.session, e.stanza, queryFormElement());
}

async function query(x: XmppContext, a: Archives, e: IqEvent): Promise<void> {
  const s = e.session;
  const parsed = parseQuery(e.child, a.maxPageSize);
  if (!parsed.ok) {
    const cond = parsed.cond === "bad-request" ? StanzaCondition.BadRequest : StanzaCondition.FeatureNotImplemented;
    return bounce(s, e.stanza, cond, parsed.text);
  }
  let page: ArchivePage | null;
  try {
    // Written first: what this worker queued, and what the user's owner (which writes the archive) queued.
    await Promise.all([a.writer.flushed(), new Promise<void>((r) => x.core.barrier(s.coreSession, r))]);
    page = await a.store.query({ ...parsed.query, user: s.user });
  } catch (err) {
    x.log.warn("archive query failed", { user: s.user, error: (err as Error).message });
    return bounce(s, e.stanza, StanzaCondition.InternalServerError, "the archive could not be read");
  }
  if (page === null) return bounce(s, e.stanza, StanzaCondition.ItemNotFound, "no such result in this archive (RSM after/before)");
  send(s, e.stanza, parsed.queryid, page);
}

/** §4.2: each result as a message, then the iq result with <fin/> and the RSM set (§4.3). */
function send(s: ClientSession, iq: Element, queryid: string, page: ArchivePage): void {
  const qid = queryid === "" ? "" : ` queryid='${escapeXML(queryid)}'`;
  const to = escapeXML(s.address);
  for (const it of page.items) {
    const stamp = new Date(it.ts).toISOString();
    s.send(
      `<message to='${to}' from='${escapeXML(s.bare)}'><result xmlns='${NS.MAM}'${qid} id='${escapeXML(it.id)}'>` +
        `<forwarded xmlns='${NS.FORWARD}'><delay xmlns='${NS.DELAY}' stamp='${stamp}'/>${it.stanza}</forwarded></result></message>`,
    );
  }
  iqResultFor(s, iq, finElement(queryid, page));
}

function prefsElement(p: ArchivePrefs): Element {
  const el = new Element("prefs", { xmlns: NS.MAM, default: p.default });
  const always = el.c("always");
  for (const j of p.always) always.c("jid").t(j);
  const never = el.c("never");
  for (const j of p.never) never.c("jid").t(j);
  return el;
}

async function getPrefs(a: Archives, e: IqEvent): Promise<void> {
  const s = e.session;
  try {
    const p = (await a.store.prefs([s.user])).get(s.user) ?? { default: a.defaultMode, always: [], never: [] };
    iqResultFor(s, e.stanza, prefsElement(p));
  } catch {
    bounce(s, e.stanza, StanzaCondition.InternalServerError, "preferences could not be read");
  }
}

/** §6.1: default is required; each list holds bare JIDs (a JID in both: never wins, as the writer reads them). */
async function setPrefs(x: XmppContext, a: Archives, e: IqEvent): Promise<void> {
  const s = e.session;
  const mode = e.child.attrs.default;
  if (mode !== "always" && mode !== "never" && mode !== "roster") return bounce(s, e.stanza, StanzaCondition.BadRequest, "default must be always, never or roster");
  const list = (name: string): string[] | null => {
    const out: string[] = [];
    for (const j of e.child.getChild(name)?.getChildren("jid") ?? []) {
      const jid = normalizeAddress(j.getText().trim());
      if (jid === null) return null;
      if (!out.includes(bareOf(jid))) out.push(bareOf(jid));
    }
    return out;
  };
  const always = list("always");
  const never = list("never");
  if (always === null || never === null) return bounce(s, e.stanza, StanzaCondition.JidMalformed, "a jid in always or never is malformed");
  if (always.length > MAX_PREF_JIDS || never.length > MAX_PREF_JIDS) return bounce(s, e.stanza, StanzaCondition.NotAcceptable, `at most ${MAX_PREF_JIDS} JIDs per list`);
  const p: ArchivePrefs = { default: mode, always, never };
  try {
    await a.store.setPrefs(s.user, p);
    // Stored first: a writer told reads the new ones. Messages the owner archives after the notice reaches it follow them.
    x.core.stale(PREFS_TOPIC, s.user);
    iqResultFor(s, e.stanza, prefsElement(p));
  } catch {
    bounce(s, e.stanza, StanzaCondition.InternalServerError, "preferences could not be stored");
  }
}
