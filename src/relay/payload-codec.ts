import type { PayloadCodec } from "../envelope/payload-codec.js";

/** Relay payloads are opaque bytes already: they cross processes as they are. */
export const relayPayloadCodec: PayloadCodec = {
  encode(payload: unknown): Uint8Array {
    if (!(payload instanceof Uint8Array)) throw new TypeError("relay payload is not bytes");
    return payload;
  },
  decode(bytes: Uint8Array): unknown {
    // A copy: the bus's read buffer is reused once this message is handled, and a payload may be kept (offline storage).
    return Buffer.from(bytes);
  },
};
