import { Element } from "ltx";
import type { PayloadCodec } from "../envelope/payload-codec.js";
import { serialize } from "./stanza.js";
import { parseStanza } from "./stream/xml.js";

/** XMPP payloads are stanzas: they cross processes as their XML text, from/to unstamped as in the envelope. */
export const xmppPayloadCodec: PayloadCodec = {
  encode(payload: unknown): Uint8Array {
    return Buffer.from(xmppPayloadCodec.encodeText!(payload), "utf8");
  },
  encodeText(payload: unknown): string {
    if (!(payload instanceof Element)) throw new TypeError("xmpp payload is not a stanza");
    return serialize(payload);
  },
  decode(bytes: Uint8Array): unknown {
    return parseStanza(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8"));
  },
  decodeText(text: string): unknown {
    return parseStanza(text);
  },
};
