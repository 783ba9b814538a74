import type { Dir } from "node:fs";
import { opendir, readdir, rmdir, stat, unlink } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "../log/logger.js";
import type { UploadFiles } from "./files.js";
import { isSlotId, isUserKey } from "./slot.js";

/** Files looked at per tick at most: a host with a million files spreads its sweep over many ticks, never one long stall. */
export const SWEEP_PER_TICK = 1000;
/** A claim or partial body not being written by this process and untouched this long is left over from a crash: removed. */
const STALE_MS = 10 * 60_000;

/**
 * Removes expired files (upload.expireAfterMs after their upload) and what
 * failed uploads of a crashed process left, walking the tree a bounded number
 * of entries per tick and going on where it stopped. One per host: it runs
 * beside the HTTP listener. GET also refuses an expired file, so the time a
 * sweep takes never serves one late.
 */
export class Sweeper {
  private root: Dir | null = null;
  /** The user being swept and the entries of theirs still to look at. */
  private user: string | null = null;
  private left: string[] = [];
  private running = false;
  private timer: NodeJS.Timeout | null = null;
  /** Expired files removed, and whole passes over the tree completed (for tests and logs). */
  removed = 0;
  passes = 0;
  private removedBefore = 0;

  constructor(
    private readonly files: UploadFiles,
    private readonly expireAfterMs: number,
    /** Is this slot's PUT under way in this process? */
    private readonly active: (user: string, id: string) => boolean,
    private readonly log: Logger,
  ) {}

  start(): void {
    // Often enough that a file outlives its expiry by a fraction of it; at least once a minute for leftovers.
    const every = this.expireAfterMs === 0 ? 60_000 : Math.min(60_000, Math.max(250, Math.floor(this.expireAfterMs / 4)));
    this.timer = setInterval(() => void this.tick(), every);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    await this.root?.close().catch(() => {});
    this.root = null;
  }

  /** One bounded step; the number of entries looked at. */
  async tick(now = Date.now(), budget = SWEEP_PER_TICK): Promise<number> {
    if (this.running) return 0;
    this.running = true;
    let used = 0;
    try {
      while (used < budget) {
        if (this.left.length === 0) {
          if (this.user !== null) await rmdir(this.files.userDir(this.user)).catch(() => {});
          this.user = await this.nextUser();
          if (this.user === null) break;
          this.left = await readdir(this.files.userDir(this.user)).catch(() => []);
          continue;
        }
        const name = this.left.pop()!;
        used++;
        await this.look(this.user!, name, now);
      }
    } catch (e) {
      this.log.warn("upload sweep failed; trying again next tick", { error: (e as Error).message });
    } finally {
      this.running = false;
    }
    return used;
  }

  /** The next user directory, or null at the end of a pass (the next tick starts another). */
  private async nextUser(): Promise<string | null> {
    if (this.root === null) {
      try {
        this.root = await opendir(this.files.root);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
        throw e;
      }
    }
    for (;;) {
      const d = await this.root.read();
      if (d === null) {
        await this.root.close().catch(() => {});
        this.root = null;
        this.passes++;
        if (this.removed > this.removedBefore) this.log.info("upload sweep removed expired files", { files: this.removed - this.removedBefore });
        this.removedBefore = this.removed;
        return null;
      }
      if (d.isDirectory() && isUserKey(d.name)) return d.name;
    }
  }

  private async look(user: string, name: string, now: number): Promise<void> {
    const dot = name.lastIndexOf(".");
    const id = name.slice(0, dot);
    const ext = name.slice(dot + 1);
    if (!isSlotId(id)) return;
    const p = this.files.paths(user, id);
    const st = await stat(join(this.files.userDir(user), name)).catch(() => null);
    if (st === null) return;
    if (ext === "data") {
      if (this.expireAfterMs === 0 || st.mtimeMs + this.expireAfterMs > now) return;
      // The body first: a GET that finds no .data answers 404 whatever the claim says.
      await unlink(p.data).catch(() => {});
      await unlink(p.meta).catch(() => {});
      this.removed++;
      return;
    }
    if ((ext === "meta" || ext === "part") && !this.active(user, id) && st.mtimeMs + STALE_MS < now) {
      // A claim with its body complete is a live file's: only its own expiry removes it.
      if (ext === "meta" && (await stat(p.data).catch(() => null)) !== null) return;
      await unlink(p.part).catch(() => {});
      await unlink(p.meta).catch(() => {});
    }
  }
}
