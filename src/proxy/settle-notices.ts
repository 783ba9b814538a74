/**
 * Settle notices for pool owners on other workers (docs/relay-protocol.md,
 * "Pools"), gathered over one turn of the event loop: one bus message per
 * owner worker and turn, whatever the number of requests settled in it.
 */
export class SettleNotices {
  private readonly byOwner = new Map<string, string[]>();
  private queued = false;

  constructor(private readonly send: (ownerWorker: string, refs: string[]) => void) {}

  /** The request `ref`, which `ownerWorker` gave a session here from a pool, is settled. */
  add(ownerWorker: string, ref: string): void {
    let refs = this.byOwner.get(ownerWorker);
    if (refs === undefined) {
      refs = [];
      this.byOwner.set(ownerWorker, refs);
    }
    refs.push(ref);
    if (!this.queued) {
      this.queued = true;
      setImmediate(this.flush);
    }
  }

  readonly flush = (): void => {
    this.queued = false;
    for (const [owner, refs] of this.byOwner) this.send(owner, refs);
    this.byOwner.clear();
  };
}
