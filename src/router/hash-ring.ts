import { hash32 } from "./hash.js";

/**
 * A consistent-hash ring over [0, 2^32) (seed 000, §3). Each member is placed
 * at `vnodes` points hash(member#i); a key belongs to the first point at or
 * clockwise after hash(key). Built only from the member list, so every node
 * that knows the same members builds the same ring.
 */
export class HashRing {
  private positions = new Uint32Array(0);
  private owners: Int32Array = new Int32Array(0);
  private memberList: string[] = [];

  constructor(
    members: Iterable<string> = [],
    readonly vnodes = 2048,
  ) {
    if (!Number.isInteger(vnodes) || vnodes < 1) throw new RangeError("vnodes must be a positive integer");
    this.setMembers(members);
  }

  get members(): readonly string[] {
    return this.memberList;
  }

  get size(): number {
    return this.memberList.length;
  }

  has(member: string): boolean {
    return this.memberList.includes(member);
  }

  add(member: string): void {
    if (!this.has(member)) this.setMembers([...this.memberList, member]);
  }

  remove(member: string): void {
    if (this.has(member)) this.setMembers(this.memberList.filter((m) => m !== member));
  }

  setMembers(members: Iterable<string>): void {
    // Sorted and deduplicated so that the order members were learnt in cannot matter.
    const list = [...new Set(members)].sort();
    const points: { pos: number; owner: number }[] = [];
    for (let m = 0; m < list.length; m++) {
      for (let v = 0; v < this.vnodes; v++) points.push({ pos: hash32(`${list[m]}#${v}`), owner: m });
    }
    // Ties (two members on one point) resolve by member order, again the same everywhere.
    points.sort((a, b) => a.pos - b.pos || a.owner - b.owner);
    this.positions = Uint32Array.from(points, (p) => p.pos);
    this.owners = Int32Array.from(points, (p) => p.owner);
    this.memberList = list;
  }

  /** The member owning a 32-bit ring position. */
  ownerOfHash(h: number): string | undefined {
    const pos = this.positions;
    const n = pos.length;
    if (n === 0) return undefined;
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (pos[mid] < h) lo = mid + 1;
      else hi = mid;
    }
    return this.memberList[this.owners[lo === n ? 0 : lo]];
  }

  /**
   * Each member's fraction of the 2^32 hash space: a point owns the arc from
   * the point before it (exclusive) to itself (inclusive), as ownerOfHash
   * reads the ring; the first point also owns the wrap past the last one.
   * What an operator compares against 1/n (switchboard cluster status).
   */
  shares(): Map<string, number> {
    const out = new Map<string, number>(this.memberList.map((m) => [m, 0]));
    const pos = this.positions;
    const n = pos.length;
    if (n === 0) return out;
    // Integer arc lengths (exact in doubles below 2^53), divided once at the end.
    const arcs = new Float64Array(this.memberList.length);
    arcs[this.owners[0]] += 2 ** 32 - pos[n - 1] + pos[0];
    for (let i = 1; i < n; i++) arcs[this.owners[i]] += pos[i] - pos[i - 1];
    this.memberList.forEach((m, i) => out.set(m, arcs[i] / 2 ** 32));
    return out;
  }

  ownerOf(key: string): string | undefined {
    if (this.memberList.length === 1) return this.memberList[0];
    return this.ownerOfHash(hash32(key));
  }
}
