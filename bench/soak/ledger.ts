/**
 * What became of every message of the soak, told by the clients as it
 * happens. A message id is `s<from>-<to>-<n>`, n counting per sender and
 * recipient (for the order check). The rules, from issue 13: every message the
 * server accepted ends acknowledged by the recipient's client, stored offline
 * (and delivered from there), or bounced — never lost, never twice.
 *
 * "Accepted" is what the sender's client can know: the server acknowledged it
 * (XEP-0198 <a h/> or <resumed h/>). A message still unacknowledged when the
 * sender's session is not resumed is "unconfirmed": the server may or may not
 * have read it (its <failed/> carries no h), and the client does not send it
 * again. A second copy is "redelivered", not duplicated, only when XEP-0198
 * allows it: it comes from offline storage (<delay/>), and the recipient
 * received the first copy on a session that was not resumed, after the last
 * of its <a/> the server is known to have read. Any other second copy is a
 * duplicate: a server bug.
 */
export interface Counts {
  sent: number;
  accepted: number;
  unconfirmed: number;
  /** Unconfirmed, and some copy arrived: the server had read it. */
  unconfirmedArrived: number;
  /** Messages with at least one copy at their recipient. */
  delivered: number;
  /** Of those, the first copy came from offline storage. */
  deliveredFromOffline: number;
  bounced: number;
  /** Accepted, neither delivered nor bounced, and not in the offline store. */
  lost: number;
  /** Not delivered, and in the offline store at the end although every client is online: it waits for its recipient's next login. */
  stuckOffline: number;
  duplicated: number;
  redelivered: number;
  outOfOrder: number;
  /** Neither acknowledged nor given up by its sender at the end (a client that never came back). */
  pending: number;
}

interface Entry {
  accepted: boolean;
  unconfirmed: boolean;
  copies: number;
  bounced: boolean;
  /** A copy came to a session that had not confirmed reading the server's <a/> for an earlier one (mayRepeat). */
  repeatable: boolean;
}

export class Ledger {
  private readonly msgs = new Map<string, Entry>();
  /** Per recipient and sender: the highest n seen, for the order check. */
  private readonly highest = new Map<string, number>();
  private next = new Map<string, number>();
  sent = 0;
  deliveredFromOffline = 0;
  duplicated = 0;
  redelivered = 0;
  outOfOrder = 0;
  /** The first few duplicates, for the report. */
  readonly duplicateSamples: string[] = [];

  /** A new id for a message from `from` to `to`, counted as sent. */
  send(from: number, to: number): string {
    const pair = `${from}-${to}`;
    const n = (this.next.get(pair) ?? 0) + 1;
    this.next.set(pair, n);
    const id = `s${pair}-${n}`;
    this.msgs.set(id, { accepted: false, unconfirmed: false, copies: 0, bounced: false, repeatable: false });
    this.sent++;
    return id;
  }

  accepted(id: string): void {
    const e = this.msgs.get(id);
    if (e !== undefined) e.accepted = true;
  }

  unconfirmed(id: string): void {
    const e = this.msgs.get(id);
    if (e !== undefined && !e.accepted) e.unconfirmed = true;
  }

  bounced(id: string): void {
    const e = this.msgs.get(id);
    if (e !== undefined) e.bounced = true;
  }

  /**
   * A copy reached recipient `to`. `fromOffline`: it carried <delay/>;
   * `mayRepeat`: the recipient got a copy before on a session that was not
   * resumed, and the server never confirmed reading its <a/> for it.
   */
  received(to: number, id: string, fromOffline: boolean, mayRepeat: boolean): void {
    const e = this.msgs.get(id);
    if (e === undefined) return;
    e.copies++;
    if (mayRepeat) e.repeatable = true;
    if (e.copies > 1) {
      if (fromOffline && mayRepeat) this.redelivered++;
      else {
        this.duplicated++;
        if (this.duplicateSamples.length < 10) this.duplicateSamples.push(`${id} to ${to}${fromOffline ? " (offline copy)" : ""}`);
      }
      return;
    }
    if (fromOffline) this.deliveredFromOffline++;
    const [, from, , n] = /^s(\d+)-(\d+)-(\d+)$/.exec(id)!;
    const key = `${to}<${from}`;
    const high = this.highest.get(key) ?? 0;
    if (Number(n) < high) this.outOfOrder++;
    else this.highest.set(key, Number(n));
  }

  /** `inStore`: the ids in the server's offline store now. */
  counts(inStore: ReadonlySet<string> = new Set()): Counts {
    const c: Counts = { sent: this.sent, accepted: 0, unconfirmed: 0, unconfirmedArrived: 0, delivered: 0, deliveredFromOffline: this.deliveredFromOffline, bounced: 0, lost: 0, stuckOffline: 0, duplicated: this.duplicated, redelivered: this.redelivered, outOfOrder: this.outOfOrder, pending: 0 };
    for (const [id, e] of this.msgs) {
      if (e.accepted) c.accepted++;
      if (e.unconfirmed) c.unconfirmed++;
      if (e.unconfirmed && e.copies > 0) c.unconfirmedArrived++;
      if (e.copies > 0) c.delivered++;
      if (e.bounced) c.bounced++;
      // Delivered and bounced both is two ends of one message, unless XEP-0198 allowed the server not to know
      // that the first copy arrived (as `redelivered`).
      if (e.bounced && e.copies > 0 && !e.repeatable) c.duplicated++;
      if (e.copies === 0 && inStore.has(id)) c.stuckOffline++;
      else if (e.accepted && e.copies === 0 && !e.bounced) c.lost++;
      if (!e.accepted && !e.unconfirmed) c.pending++;
    }
    return c;
  }

  /** Every accepted message has arrived or bounced, and every sender knows what became of what it sent. */
  settled(): boolean {
    for (const e of this.msgs.values()) {
      if (!e.accepted && !e.unconfirmed) return false;
      if (e.accepted && e.copies === 0 && !e.bounced) return false;
    }
    return true;
  }
}
