import { randomBytes } from "node:crypto";
import { Element } from "ltx";
import { NS } from "../ns.js";

/**
 * XEP-0359 stanza ids for archived messages (XEP-0313 §5.4), given where a
 * message enters the server, before it is routed: the id travels with the
 * message, so the owner that archives it (on whichever worker) and the
 * session that delivers it agree without asking each other. One id serves
 * both archives (the sender's and the recipient's); ids are unique per
 * process start (a random prefix) and counter.
 */
export class StanzaIds {
  private n = 0;
  private readonly prefix = `${randomBytes(6).toString("base64url")}-`;
  private readonly suffix: string;

  constructor(domain: string) {
    this.suffix = `@${domain}`;
  }

  /**
   * For a message from `senderBare` to `to` (canonical): removes any
   * <stanza-id/> claiming to be by the sender's or the recipient's account
   * (XEP-0359 §5: only the server says what its archives hold), and when the
   * message is archived (XEP-0313 §7: chat or normal with a body; not a
   * carbon, not XEP-0334 <no-store/>/<no-permanent-store/>) appends
   * `<stanza-id by='recipient' id=…/>` as its last child and returns true.
   */
  mark(el: Element, senderBare: string, to: string): boolean {
    const type = el.attrs.type;
    if (type !== undefined && type !== "chat" && type !== "normal") return false;
    const slash = to.indexOf("/");
    const toBare = slash < 0 ? to : to.slice(0, slash);
    const kids = el.children;
    let body = false;
    let keep = true;
    let forged = false;
    for (let i = 0; i < kids.length; i++) {
      const c = kids[i];
      if (typeof c === "string") continue;
      const ns = c.attrs.xmlns;
      if (c.name === "body") body = true;
      else if (ns === NS.SID) forged ||= c.name === "stanza-id" && (c.attrs.by === senderBare || c.attrs.by === toBare);
      else if (ns === NS.CARBONS) keep = false;
      else if (ns === NS.HINTS && (c.name === "no-store" || c.name === "no-permanent-store")) keep = false;
    }
    if (forged) el.children = kids.filter((c) => typeof c === "string" || c.name !== "stanza-id" || c.attrs.xmlns !== NS.SID || (c.attrs.by !== senderBare && c.attrs.by !== toBare));
    if (!body || !keep) return false;
    const by = toBare.endsWith(this.suffix) ? toBare : senderBare;
    el.children.push(new Element("stanza-id", { xmlns: NS.SID, by, id: this.prefix + (this.n++).toString(36) }));
    return true;
  }
}

/** The id mark() gave `el` (its last child), or null when it has none. */
export function stanzaIdOf(el: Element): string | null {
  const kids = el.children;
  const last = kids[kids.length - 1];
  if (last === undefined || typeof last === "string" || last.name !== "stanza-id" || last.attrs.xmlns !== NS.SID) return null;
  return last.attrs.id ?? null;
}
