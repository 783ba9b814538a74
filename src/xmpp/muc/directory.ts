import { randomBytes } from "node:crypto";
import { Element } from "ltx";
import { normalizeAddress } from "../../address/address.js";
import type { Logger } from "../../log/logger.js";
import type { DirectoryItem, MucDirectory } from "../../store/muc-directory.js";
import { NS } from "../ns.js";
import { StanzaCondition } from "../errors.js";
import type { IqReply } from "./room-admin.js";
import type { Room } from "./room.js";

export interface DirectoryOptions {
  /** Rooms in one disco#items page at most (a larger RSM <max/> is cut to it; no <set/>: this many). */
  maxPage: number;
  /** How often this worker renews the lease of its temporary rooms' rows. */
  renewMs: number;
  /** A temporary room's row not renewed for this long is not listed (its worker is gone). */
  leaseMs: number;
}

export const DIRECTORY_DEFAULTS: DirectoryOptions = { maxPage: 100, renewMs: 60_000, leaseMs: 180_000 };

/**
 * XEP-0045 §6.3 on a cluster: the service's disco#items lists the public rooms of every worker of every
 * host, from a directory in the shared store (src/store/muc-directory.ts). Each room's owner writes its
 * row when the room's configuration changes (listed while public and unlocked, under its name) and
 * removes it when the room ends; the writes for one room go one after another, off the forwarding path.
 * Any worker reads a page, in address order, with XEP-0059 paging. A temporary room's row holds this
 * worker's token and a lease renewed every `renewMs`: a worker that dies leaves rows that stop being
 * listed after `leaseMs` and are swept by the others.
 */
export class RoomDirectory {
  /** This worker's rows (a token per process: a worker that restarts is another holder). */
  private readonly holder = randomBytes(9).toString("base64url");
  /** What each room here was last written as: "" unlisted; absent: not written by this worker yet. */
  private readonly listed = new Map<string, string>();
  private readonly tails = new Map<string, Promise<void>>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly store: MucDirectory,
    private readonly log: Logger,
    private readonly opts: DirectoryOptions = DIRECTORY_DEFAULTS,
  ) {
    this.timer = setInterval(() => void this.renew(Date.now()), opts.renewMs);
    this.timer.unref();
  }

  close(): void {
    clearInterval(this.timer);
  }

  /** The room's configuration changed, or it is new here: listed while public, else not. */
  update(room: Room): void {
    const c = room.config;
    const want = c.public && !room.locked && !room.destroyed ? `${c.persistent ? 1 : 0}|${nameOf(room)}` : "";
    if (this.listed.get(room.jid) === want) return;
    this.listed.set(room.jid, want);
    if (want === "") this.queued(room.jid, () => this.store.remove(room.jid));
    else this.queued(room.jid, () => this.store.put(room.jid, nameOf(room), c.persistent, this.holder, Date.now()));
  }

  /** The room ended here (destroyed, emptied, or gone from this worker): it is not listed any more. */
  gone(room: Room): void {
    const had = this.listed.get(room.jid);
    this.listed.delete(room.jid);
    // A persistent room not written by this worker may have been listed by another (before a restart).
    if (had === "" || (had === undefined && !room.config.persistent && !room.config.public)) return;
    this.queued(room.jid, () => this.store.remove(room.jid));
  }

  /** Renews this worker's temporary rooms, and sweeps rows whose holder stopped renewing (also called by tests). */
  async renew(now: number): Promise<void> {
    try {
      await this.store.renew(this.holder, now);
      await this.store.expire(now - this.opts.leaseMs);
    } catch (e) {
      this.log.warn("muc: room directory not renewed", { error: (e as Error).message });
    }
  }

  private queued(room: string, write: () => Promise<unknown>): void {
    const next = (this.tails.get(room) ?? Promise.resolve()).then(write).then(
      () => undefined,
      (e: Error) => void this.log.warn("muc: room directory not written", { room, error: e.message }),
    );
    this.tails.set(room, next);
    void next.then(() => {
      if (this.tails.get(room) === next) this.tails.delete(room);
    });
  }

  /** What this worker has written and not yet seen land (tests wait for it). */
  settled(): Promise<void> {
    return Promise.all([...this.tails.values()]).then(() => undefined);
  }

  /**
   * The service's disco#items (`q` the query): one page of public rooms, address order. With an RSM
   * <set/> (XEP-0059): max (cut to `maxPage`), after, before (empty: the last page), and the answer's
   * <set/> with first, last and count; without one, the first `maxPage` rooms, and a <set/> when there are more.
   */
  async items(q: Element, domain: string, now: number): Promise<IqReply> {
    const set = q.getChild("set", NS.RSM);
    let max = this.opts.maxPage;
    let after: string | undefined;
    let before: string | undefined;
    let last = false;
    for (const c of set?.getChildElements() ?? []) {
      const t = c.getText().trim();
      if (c.name === "max") {
        if (!/^\d{1,9}$/.test(t)) return { error: StanzaCondition.BadRequest, text: "RSM max must be a non-negative integer" };
        max = Math.min(Number(t), this.opts.maxPage);
      } else if (c.name === "after" || c.name === "before") {
        if (c.name === "before" && t === "") {
          last = true;
          continue;
        }
        // Rooms come and go between two pages: any room address at this service is a place to page from.
        const jid = normalizeAddress(t);
        if (jid === null || !jid.endsWith(`@${domain}`)) return { error: StanzaCondition.BadRequest, text: `RSM ${c.name} must be a room address at ${domain}` };
        if (c.name === "after") after = jid;
        else before = jid;
      } else if (c.name === "index") return { error: StanzaCondition.FeatureNotImplemented, text: "RSM index is not supported: page with after and before" };
    }
    const liveSince = now - this.opts.leaseMs;
    const wantCount = set !== undefined;
    const [rows, count] = await Promise.all([max === 0 ? Promise.resolve([] as DirectoryItem[]) : this.store.page({ liveSince, after, before, last, max }), wantCount || max === 0 ? this.store.count(liveSince) : Promise.resolve(-1)]);
    const cut = rows.length > max;
    const backwards = after === undefined && (before !== undefined || last);
    const page = cut ? (backwards ? rows.slice(1) : rows.slice(0, max)) : rows;
    const out = new Element("query", { xmlns: NS.DISCO_ITEMS });
    for (const r of page) out.c("item", { jid: r.room, name: r.name });
    if (set !== undefined || cut) {
      const s = out.c("set", { xmlns: NS.RSM });
      if (page.length > 0) {
        s.c("first").t(page[0].room);
        s.c("last").t(page[page.length - 1].room);
      }
      s.c("count").t(String(count >= 0 ? count : await this.store.count(liveSince)));
    }
    return { ok: out };
  }
}

function nameOf(room: Room): string {
  return room.config.name || room.jid.slice(0, room.jid.indexOf("@"));
}
