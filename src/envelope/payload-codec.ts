/**
 * How a protocol's payloads cross a process boundary. The core carries
 * payloads without looking at them; only a bus between processes needs
 * bytes, and each protocol says how its own are written and read back.
 */
export interface PayloadCodec {
  encode(payload: unknown): Uint8Array;
  decode(bytes: Uint8Array): unknown;
}

export type PayloadCodecs = Readonly<Record<string, PayloadCodec>>;
