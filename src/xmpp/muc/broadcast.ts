import type { Element } from "ltx";
import { WireText } from "../../envelope/envelope.js";
import { serialize } from "../stanza.js";

/**
 * The payload of a room's stanza to many occupants: serialized once, here, without from and to. Each
 * occupant's copy is that text with its own from and to put into the start tag (`stampText`, in
 * outbound.ts's toWire), on this worker and, as the same text over the bus, on the others; nothing
 * is serialized per occupant. Whoever needs the element (CSI, offline storage, archives) reads
 * `Envelope.payload` and gets the room's element itself: nothing is parsed.
 */
export function serializedOnce(el: Element): WireText {
  return new WireText(serialize(el), () => el, () => {});
}
