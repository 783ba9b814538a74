import { Element } from "ltx";
import { NS } from "../ns.js";
import { normalizeAddress, bareOf, resourceOf } from "../../address/address.js";
import type { ArchivePage, ArchiveQuery } from "../../store/archive-store.js";

/** A query as asked, or why it cannot be answered: the condition and a text for the client. */
export type Parsed = { ok: true; query: Omit<ArchiveQuery, "user">; queryid: string } | { ok: false; cond: "bad-request" | "feature-not-implemented"; text: string };

/** XEP-0082 DateTime: date, time, optional fraction, a zone (Z or ±hh:mm). */
const DATETIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
/** An RSM id (ours are short); anything longer is not one of ours. */
const MAX_ID = 256;

/** Milliseconds since the epoch of a XEP-0082 DateTime, or null when it is not one (or not a real date). */
export function parseDateTime(s: string): number | null {
  const m = DATETIME.exec(s);
  if (m === null) return null;
  const [, y, mo, d, h, mi, sec] = m.map(Number);
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return null;
  const t = Date.parse(s);
  if (!Number.isFinite(t)) return null;
  // Date.parse rolls 2026-02-30 over into March: a date that does not exist is refused.
  const day = new Date(Date.UTC(y, mo - 1, d));
  if (day.getUTCMonth() !== mo - 1) return null;
  return t;
}

function bad(text: string): Parsed {
  return { ok: false, cond: "bad-request", text };
}

/** The text of a data form field's first <value/>, or null when it has none. */
function value(field: Element): string | null {
  const v = field.getChild("value");
  return v === undefined ? null : v.getText();
}

/**
 * XEP-0313 §4 (urn:xmpp:mam:2): the <query/> of an iq set, its data form
 * (FORM_TYPE, with, start, end) and its XEP-0059 <set/> (max, after, before;
 * an empty <before/> asks for the last page). Unknown fields and malformed
 * values are refused; a <max/> above `maxPageSize` is cut to it (XEP-0059 §2.1
 * lets the server return fewer).
 */
export function parseQuery(q: Element, maxPageSize: number): Parsed {
  const queryid = q.attrs.queryid ?? "";
  if (queryid.length > MAX_ID) return bad("queryid too long");
  const out: Omit<ArchiveQuery, "user"> = { max: maxPageSize };
  for (const c of q.children) {
    if (typeof c === "string") continue;
    const ns = c.attrs.xmlns;
    if (c.name === "x" && ns === NS.DATA) {
      const err = form(c, out);
      if (err !== null) return err;
    } else if (c.name === "set" && ns === NS.RSM) {
      const err = rsm(c, out, maxPageSize);
      if (err !== null) return err;
    }
  }
  if (out.start !== undefined && out.end !== undefined && out.start > out.end) return bad("start is after end");
  return { ok: true, query: out, queryid };
}

function form(x: Element, out: Omit<ArchiveQuery, "user">): Parsed | null {
  const type = x.attrs.type;
  if (type !== undefined && type !== "submit") return bad("the form must be of type submit");
  for (const f of x.children) {
    if (typeof f === "string" || f.name !== "field") continue;
    const name = f.attrs.var;
    const v = value(f);
    switch (name) {
      case "FORM_TYPE":
        if (v !== NS.MAM) return bad(`FORM_TYPE must be ${NS.MAM}`);
        break;
      case "with": {
        const jid = v === null ? null : normalizeAddress(v.trim());
        if (jid === null) return bad("with is not a JID");
        out.with = bareOf(jid);
        const r = resourceOf(jid);
        if (r !== "") out.withResource = r;
        break;
      }
      case "start":
      case "end": {
        const t = v === null ? null : parseDateTime(v.trim());
        if (t === null) return bad(`${name} is not a XEP-0082 DateTime (e.g. 2026-12-02T01:00:00Z)`);
        out[name] = t;
        break;
      }
      default:
        // XEP-0313 §4.1.3: a field the server does not support is an error, not ignored.
        return { ok: false, cond: "feature-not-implemented", text: `field ${name ?? "(no var)"} is not supported` };
    }
  }
  return null;
}

function rsm(set: Element, out: Omit<ArchiveQuery, "user">, maxPageSize: number): Parsed | null {
  for (const c of set.children) {
    if (typeof c === "string") continue;
    const t = c.getText().trim();
    switch (c.name) {
      case "max": {
        if (!/^\d{1,9}$/.test(t)) return bad("RSM max must be a non-negative integer");
        out.max = Math.min(Number(t), maxPageSize);
        break;
      }
      case "after":
        if (t === "" || t.length > MAX_ID) return bad("RSM after must name a result");
        out.after = t;
        break;
      case "before":
        if (t.length > MAX_ID) return bad("RSM before names no result");
        if (t === "") out.last = true;
        else out.before = t;
        break;
      case "index":
        return { ok: false, cond: "feature-not-implemented", text: "RSM index is not supported: page with after and before" };
      default:
        break;
    }
  }
  return null;
}

/** §4.3: the query's <fin/> with the RSM set of its page (user and room archives alike). */
export function finElement(queryid: string, page: ArchivePage): Element {
  const f = new Element("fin", { xmlns: NS.MAM });
  if (page.complete) f.attrs.complete = "true";
  if (queryid !== "") f.attrs.queryid = queryid;
  const set = f.c("set", { xmlns: NS.RSM });
  if (page.items.length > 0) {
    set.c("first").t(page.items[0].id);
    set.c("last").t(page.items[page.items.length - 1].id);
  }
  if (page.count !== undefined) set.c("count").t(String(page.count));
  return f;
}

/** §4.1.1: the fields a query may carry (user and room archives alike). */
export function queryFormElement(): Element {
  const q = new Element("query", { xmlns: NS.MAM });
  const form = q.c("x", { xmlns: NS.DATA, type: "form" });
  form.c("field", { var: "FORM_TYPE", type: "hidden" }).c("value").t(NS.MAM);
  form.c("field", { var: "with", type: "jid-single" });
  form.c("field", { var: "start", type: "text-single" });
  form.c("field", { var: "end", type: "text-single" });
  return q;
}
