/**
 * The stanzas written to a client and not yet acknowledged (XEP-0198), oldest
 * first, as written: their wire text, flat (one string, not the rope the
 * serializer built from the parsed stanza's pieces, which would keep those
 * pieces and the input they were cut from alive for as long as the stanza
 * waits for its ack). A ring that grows by doubling: a push stores a
 * reference, an ack clears the slots it covers; no array is made per ack.
 */
export class UnackedQueue {
  private items: (string | undefined)[] = new Array(8);
  private head = 0;
  private count = 0;

  get length(): number {
    return this.count;
  }

  push(wire: string): void {
    // Flattens a rope in place (a one-character read does; the socket's write would, once joined with other output, not).
    wire.charCodeAt(0);
    if (this.count === this.items.length) this.grow();
    this.items[(this.head + this.count) & (this.items.length - 1)] = wire;
    this.count++;
  }

  private grow(): void {
    const n = this.items.length;
    const items: (string | undefined)[] = new Array(n * 2);
    for (let k = 0; k < n; k++) items[k] = this.items[(this.head + k) & (n - 1)];
    this.items = items;
    this.head = 0;
  }

  /** Drops the `n` oldest (n ≤ length). */
  drop(n: number): void {
    const mask = this.items.length - 1;
    for (let k = 0; k < n; k++) {
      this.items[this.head] = undefined;
      this.head = (this.head + 1) & mask;
    }
    this.count -= n;
    // A queue that held many once (a long silence) does not keep that much room for ever.
    if (this.count === 0 && this.items.length > 64) {
      this.items = new Array(8);
      this.head = 0;
    }
  }

  /** What is still unacknowledged, oldest first. */
  pending(): string[] {
    const out: string[] = new Array(this.count);
    const mask = this.items.length - 1;
    for (let k = 0; k < this.count; k++) out[k] = this.items[(this.head + k) & mask] as string;
    return out;
  }
}
