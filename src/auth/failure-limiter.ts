/**
 * Counts failed logins per remote address in fixed windows. Bounded: when full,
 * the oldest addresses are forgotten first (a Map keeps insertion order).
 */
export class FailureLimiter {
  private readonly byIp = new Map<string, { count: number; until: number }>();

  constructor(
    private readonly max: number,
    private readonly windowMs: number,
    private readonly capacity = 65536,
    private readonly now: () => number = Date.now,
  ) {}

  blocked(ip: string): boolean {
    const e = this.byIp.get(ip);
    if (e === undefined) return false;
    if (e.until <= this.now()) {
      this.byIp.delete(ip);
      return false;
    }
    return e.count >= this.max;
  }

  fail(ip: string): void {
    const t = this.now();
    let e = this.byIp.get(ip);
    if (e === undefined || e.until <= t) {
      if (e !== undefined) this.byIp.delete(ip);
      if (this.byIp.size >= this.capacity) this.byIp.delete(this.byIp.keys().next().value!);
      e = { count: 0, until: t + this.windowMs };
      this.byIp.set(ip, e);
    }
    e.count++;
  }
}
