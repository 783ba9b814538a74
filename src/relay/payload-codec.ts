import type { PayloadCodec } from "../envelope/payload-codec.js";

/** Relay payloads are opaque bytes already: they cross processes as they are. */
export const relayPayloadCodec: PayloadCodec = {
  encode(payload: unknown): Uint8Array {
    if (!(payload instanceof Uint8Array)) throw new TypeError("relay payload is not bytes");
    return payload;
  },
  decode(bytes: Uint8Array): unknown {
    // A copy: a payload may be kept (a backlog, offline storage), and a view would keep the host link's whole
    // 64 KiB read slab alive with it (src/cluster/slab-frames.ts).
    return Buffer.from(bytes);
  },
};
