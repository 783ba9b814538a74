/**
 * The stanzas written to a client and not yet acknowledged (XEP-0198), oldest
 * first, as written (their wire text, shared, not copied). A push is an array
 * push; dropping from the head moves an index and compacts now and then.
 */
export class UnackedQueue {
  private items: string[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(wire: string): void {
    this.items.push(wire);
  }

  /** Drops the `n` oldest (n ≤ length). */
  drop(n: number): void {
    this.head += n;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }

  /** What is still unacknowledged, oldest first. */
  pending(): string[] {
    return this.items.slice(this.head);
  }
}
