/**
 * How a protocol's payloads cross a process boundary. The core carries
 * payloads without looking at them; only a bus between processes needs
 * bytes, and each protocol says how its own are written and read back.
 */
export interface PayloadCodec {
  encode(payload: unknown): Uint8Array;
  decode(bytes: Uint8Array): unknown;
  /**
   * Optional: the payload as text whose UTF-8 bytes are what `encode` returns, for a bus that writes it
   * straight into its batch rather than into a buffer of its own first (src/cluster/wire.ts).
   */
  encodeText?(payload: unknown): string;
  /** With encodeText: the payload from that text. */
  decodeText?(text: string): unknown;
}

export type PayloadCodecs = Readonly<Record<string, PayloadCodec>>;
