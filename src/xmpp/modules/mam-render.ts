import { Element } from "ltx";
import { NS } from "../ns.js";
import { parseOne, serializeFirst, serializeWith, stampText } from "../stanza.js";
import { Envelope } from "../../envelope/envelope.js";
import type { ArchiveEntry, Rendered } from "../../store/archive-writer.js";
import { stanzaIdOf } from "./stanza-id.js";

/**
 * What the archive keeps of a message (XEP-0313): its stanza-id, and the message as delivered, in
 * jabber:client (XEP-0297), without that id (results carry it). In two steps, so that the second can run
 * off the event loop (the archive's thread on SQLite loads this module: ArchiveWriterOptions.renderModule):
 * archivedText, on the event loop, takes the text as it was written (no serialization when the message was
 * written to a socket here or came over the bus unread); renderWire cuts the id out of it.
 */

/** This module, for the archive's thread to load (ArchiveWriterOptions.renderModule): it calls renderWire. */
export const RENDER_MODULE = import.meta.url;

/**
 * The entry's message as it was written, with its stanza-id: the text written to the recipient's socket on
 * this worker (Envelope.written), or that it came over the bus as; else serialized now (a recipient
 * elsewhere or offline). Null: nothing to archive.
 */
export function archivedText(e: ArchiveEntry): string | null {
  const p = e.payload;
  if (typeof p === "string") return p;
  if (p instanceof Envelope) {
    if (p.written !== null) return p.written;
    const text = p.wireText;
    if (text !== null) return text;
    return elementText(p.payload, e);
  }
  return elementText(p, e);
}

function elementText(el: unknown, e: ArchiveEntry): string | null {
  return el instanceof Element ? serializeWith(el, { from: e.from, to: e.to }) : null;
}

/** The archived id and text of an entry, on the event loop (a store that cannot render elsewhere). */
export function renderArchived(e: ArchiveEntry): Rendered | null {
  const text = archivedText(e);
  return text === null ? null : renderWire(text, e.from, e.to);
}

/** The archived id and text from a text archivedText gave; null: not marked by StanzaIds. */
export function renderWire(text: string, from: string, to: string): Rendered | null {
  const r = renderText(text, from, to);
  if (r !== undefined) return r;
  const el = parseOne(text);
  if (!(el instanceof Element)) return null;
  const id = stanzaIdOf(el);
  if (id === null) return null;
  return { id, text: serializeFirst(el, { xmlns: NS.CLIENT, from, to }, el.children.length - 1) };
}

/** StanzaIds.mark's last child as serialize() writes it: its id is what the archive keys the message by. */
const SID_TAIL = /<stanza-id xmlns="urn:xmpp:sid:0" by="[^"&<]*" id="([A-Za-z0-9_.-]+)"\/><\/message>$/;
const CLIENT_XMLNS = ` xmlns="${NS.CLIENT}"`;
const XMLNS = / xmlns="[^"]*"/;

/**
 * renderWire by string operations, for a text serialize() wrote: the stanza-id StanzaIds appended is its
 * last child, right before </message> (serialize escapes '<' everywhere else), and its start tag is
 * restamped (stampText) in jabber:client. Null: not marked; undefined: another shape, which the caller parses.
 */
export function renderText(text: string, from: string, to: string): Rendered | null | undefined {
  if (!text.endsWith("</message>")) return text.startsWith("<message") ? null : undefined;
  const at = text.lastIndexOf("<stanza-id ");
  if (at < 0) return null;
  const m = SID_TAIL.exec(text.slice(at));
  if (m === null) return undefined;
  let out = stampText(`${text.slice(0, at)}</message>`, "message", from, to);
  if (out === null) return undefined;
  const end = out.indexOf(">");
  const head = out.slice(0, end);
  // Archived in jabber:client (XEP-0297), whatever namespace the text was written in.
  if (!head.includes(" xmlns=")) out = `<message${CLIENT_XMLNS}${out.slice(8)}`;
  else if (!head.includes(CLIENT_XMLNS)) out = head.replace(XMLNS, CLIENT_XMLNS) + out.slice(end);
  return { id: m[1], text: out };
}
