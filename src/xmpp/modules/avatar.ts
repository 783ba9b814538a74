import { createHash } from "node:crypto";
import { Element, parse } from "ltx";
import { NS } from "../ns.js";
import { Ev, type Hooks } from "../hooks.js";
import { Phase, type ClientSession } from "../client-session.js";
import type { XmppContext } from "../context.js";
import type { Disco } from "./disco.js";
import type { NodeConfig } from "../../store/pep-store.js";
import { eventMessage, notify, payloadElement } from "./pep-events.js";

/** Ahead of the presence module, which broadcasts the stanza as it then is. */
const BEFORE_PRESENCE = 20;

/** XEP-0084 nodes the server makes when converting a vCard photo: readable by anyone, like the vCard. */
const AVATAR_NODE: NodeConfig = { accessModel: "open", persistItems: true, maxItems: 1 };

/** The avatar hash each session announces (XEP-0153): a SHA-1 in hex, null for none; absent: not read yet. */
const hashes = new WeakMap<ClientSession, string | null>();

/**
 * XEP-0398 (the vCard avatar and the XEP-0084 PEP avatar kept in step) and
 * XEP-0153 (the avatar hash in presence, added by the server): a PEP avatar
 * publish updates the vCard's PHOTO, a vCard set with a PHOTO publishes the
 * PEP avatar (data and metadata), and every available presence the user sends
 * carries `<x xmlns='vcard-temp:x:update'><photo>hash</photo></x>`. Each of
 * the user's sessions learns a new hash from the metadata event that reaches
 * all of them (PEP notifies the owner's sessions) and sends its presence again.
 */
export function avatarModule(hooks: Hooks, x: XmppContext, disco: Disco): void {
  disco.accountFeature(NS.PEP_VCARD_CONVERSION);
  hooks.on(Ev.SessionBound, ({ session }) => loadHash(x, session));
  // A session continued from another worker (XEP-0198) broadcast its presence already: the hash is for its next one, read without holding its input.
  hooks.on(Ev.SessionContinued, ({ session }) => loadHash(x, session, false));
  hooks.on(
    Ev.PresenceBroadcast,
    ({ session: s, stanza }) => {
      if (stanza.attrs.type === undefined) stamp(s, stanza);
      return false;
    },
    BEFORE_PRESENCE,
  );
}

/** §4 of XEP-0398: the hash the server puts in the user's presence, replacing what the client wrote. */
function stamp(s: ClientSession, stanza: Element): void {
  const hash = hashes.get(s);
  if (hash === undefined || hash === null) return;
  stanza.children = stanza.children.filter((c) => typeof c === "string" || !(c.name === "x" && c.attrs.xmlns === NS.VCARD_UPDATE));
  stanza.c("x", { xmlns: NS.VCARD_UPDATE }).c("photo").t(hash);
}

/** At bind, before the initial presence is handled (`hold`: input waits for it): the newest avatar metadata, else the vCard's photo. */
function loadHash(x: XmppContext, s: ClientSession, hold = true): void {
  if (hold) s.hold();
  const work = x.pep.items(s.user, NS.AVATAR_METADATA, { max: 1 }).then(async (items) => {
    if (items !== null) return items.length === 0 ? null : metadataHash(payloadElement(items[0].payload));
    return vcardPhoto(await x.profile.vcard(s.user))?.hash ?? null;
  });
  work.then(
    (h) => {
      if (!hashes.has(s)) hashes.set(s, h);
      if (hold) s.release();
    },
    (e: Error) => {
      x.log.warn("xmpp: avatar hash not read", { user: s.user, error: e.message });
      if (hold) s.release();
    },
  );
}

/** The id of the first <info/> of a <metadata/> (the SHA-1 of the image, XEP-0084 §4.2); null: no avatar. */
function metadataHash(el: Element | null): string | null {
  const id = el?.getChild("info")?.attrs.id;
  return typeof id === "string" && /^[0-9a-f]{40}$/i.test(id) ? id.toLowerCase() : null;
}

interface Photo {
  hash: string;
  type: string;
  base64: string;
  bytes: number;
}

function vcardPhoto(text: string | Element | null): Photo | null {
  let v: Element | null = null;
  try {
    v = typeof text === "string" ? (parse(text) as Element) : text;
  } catch {
    return null;
  }
  const photo = v?.getChild("PHOTO");
  const b64 = photo?.getChildText("BINVAL")?.replace(/\s+/g, "") ?? "";
  if (photo === undefined || b64 === "") return null;
  const bytes = Buffer.from(b64, "base64");
  if (bytes.length === 0) return null;
  return { hash: createHash("sha1").update(bytes).digest("hex"), type: photo.getChildText("TYPE")?.trim() || "image/png", base64: bytes.toString("base64"), bytes: bytes.length };
}

/**
 * The user's own event (from filterEvent, on every session of the user): a new
 * avatar metadata item changes the hash this session announces; if it did and
 * the session is available, its presence goes out again with the new hash.
 */
export function ownAvatarEvent(x: XmppContext, s: ClientSession, event: Element): void {
  const items = event.getChild("items");
  if (items?.attrs.node !== NS.AVATAR_METADATA) return;
  const item = items.getChild("item");
  if (item === undefined) return;
  const hash = metadataHash(item.getChild("metadata", NS.AVATAR_METADATA) ?? null);
  if (hashes.get(s) === hash) return;
  hashes.set(s, hash);
  const last = s.presence;
  if (!s.available || !(last instanceof Element) || s.phase !== Phase.Bound) return;
  const again = parse(last.toString()) as Element;
  delete again.attrs.to;
  if (hash === null) again.children = again.children.filter((c) => typeof c === "string" || !(c.name === "x" && c.attrs.xmlns === NS.VCARD_UPDATE));
  queueMicrotask(() => s.phase === Phase.Bound && x.hooks.fire(Ev.PresenceBroadcast, { session: s, stanza: again, to: "" }));
}

/** XEP-0398 §3: the user published avatar metadata: the vCard's PHOTO follows (the data item it names, or none). */
export function avatarPublished(x: XmppContext, s: ClientSession, metadata: Element): void {
  const hash = metadataHash(metadata);
  const info = metadata.getChild("info");
  const work = (async () => {
    const vcard = (await x.profile.vcard(s.user)) ?? `<vCard xmlns='${NS.VCARD}'/>`;
    const el = parse(vcard) as Element;
    const had = vcardPhoto(el);
    if ((had?.hash ?? null) === hash) return;
    el.children = el.children.filter((c) => typeof c === "string" || c.name !== "PHOTO");
    if (hash !== null) {
      const data = await x.pep.items(s.user, NS.AVATAR_DATA, { ids: [hash] });
      const b64 = data?.[0] === undefined ? "" : (payloadElement(data[0].payload)?.getText().replace(/\s+/g, "") ?? "");
      // The data is not on this server (an avatar published with a URL only): the vCard keeps no photo.
      if (b64 === "") return;
      const photo = el.c("PHOTO");
      photo.c("TYPE").t(String(info?.attrs.type ?? "image/png"));
      photo.c("BINVAL").t(b64);
    }
    const text = el.toString();
    if (Buffer.byteLength(text) > x.config.xmpp.maxVcardBytes) return;
    await x.profile.setVcard(s.user, el.getChildElements().length === 0 ? null : text);
  })();
  work.catch((e: Error) => x.log.warn("xmpp: vCard not updated from the PEP avatar", { user: s.user, error: e.message }));
}

/** XEP-0398 §2: the user set a vCard: its PHOTO becomes the PEP avatar (data, then metadata), or none. */
export function vcardSet(x: XmppContext, s: ClientSession, vcard: Element): void {
  const photo = vcardPhoto(vcard);
  const max = x.config.xmpp.pep;
  const publish = async (node: string, id: string, payload: Element) => {
    const r = await x.pep.publish(s.user, { node, item: { id, payload: payload.toString() }, create: AVATAR_NODE, require: null, maxNodes: max.maxNodes });
    if (r.outcome !== "published") return;
    const out = new Element("items", { node });
    out.c("item", { id }).cnode(payload);
    if (s.phase === Phase.Bound) notify(x, s, r.config.accessModel, eventMessage(s.bare, out));
  };
  const work = (async () => {
    const current = await x.pep.items(s.user, NS.AVATAR_METADATA, { max: 1 });
    const now = current === null || current.length === 0 ? null : metadataHash(payloadElement(current[0].payload));
    if ((photo?.hash ?? null) === now) return;
    const metadata = new Element("metadata", { xmlns: NS.AVATAR_METADATA });
    if (photo !== null) {
      const data = new Element("data", { xmlns: NS.AVATAR_DATA }).t(photo.base64);
      if (Buffer.byteLength(data.toString()) > max.maxItemBytes) return;
      await publish(NS.AVATAR_DATA, photo.hash, data);
      metadata.c("info", { bytes: String(photo.bytes), id: photo.hash, type: photo.type });
    } else if (current === null) return;
    await publish(NS.AVATAR_METADATA, photo?.hash ?? "none", metadata);
  })();
  work.catch((e: Error) => x.log.warn("xmpp: PEP avatar not updated from the vCard", { user: s.user, error: e.message }));
}
