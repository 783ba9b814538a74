import { mkdir, readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { isSlotId, isUserKey } from "./slot.js";

/**
 * The files of the upload service on this host's disk (docs/operations.md,
 * "HTTP upload storage"):
 *
 *   <root>/<user>/<id>.meta   the claim of a slot, made (O_EXCL) when its PUT starts: name, type, size
 *   <root>/<user>/<id>.part   the body while it arrives
 *   <root>/<user>/<id>.data   the complete file, renamed from .part; its mtime is the upload time
 *
 * `user` and `id` are checked against strict patterns before they are joined
 * to a path, so no request names anything outside `root`.
 */
export class UploadFiles {
  constructor(readonly root: string) {}

  userDir(user: string): string {
    if (!isUserKey(user)) throw new Error("not a user key");
    return join(this.root, user);
  }

  paths(user: string, id: string): { meta: string; part: string; data: string } {
    if (!isSlotId(id)) throw new Error("not a slot id");
    const base = join(this.userDir(user), id);
    return { meta: `${base}.meta`, part: `${base}.part`, data: `${base}.data` };
  }

  async ensureUserDir(user: string): Promise<void> {
    await mkdir(this.userDir(user), { recursive: true, mode: 0o700 });
  }

  /**
   * What a user holds here: complete files (size, upload time), and the bytes
   * of uploads under way (.part) as written so far. Files past `expiresBefore`
   * (upload time before it) are not counted: the sweeper removes them.
   * `parts`: count .part files (false where the uploads under way are known otherwise).
   */
  async usage(user: string, expiresBefore: number, parts = true): Promise<Usage> {
    let names: string[];
    try {
      names = await readdir(this.userDir(user));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return { bytes: 0, files: [] };
      throw e;
    }
    const files: { size: number; mtimeMs: number }[] = [];
    let bytes = 0;
    for (const n of names) {
      const data = n.endsWith(".data");
      if (!data && !(parts && n.endsWith(".part"))) continue;
      try {
        const st = await stat(join(this.userDir(user), n));
        if (data && st.mtimeMs < expiresBefore) continue;
        bytes += st.size;
        if (data) files.push({ size: st.size, mtimeMs: st.mtimeMs });
      } catch {
        // Removed meanwhile (expired, or a failed upload cleaned up).
      }
    }
    return { bytes, files };
  }

  /** A complete file's claim (name, type, size as the slot gave them), or null. */
  async meta(user: string, id: string): Promise<FileMeta | null> {
    try {
      const v = JSON.parse(await readFile(this.paths(user, id).meta, "utf8")) as FileMeta;
      return typeof v.name === "string" && typeof v.type === "string" && Number.isSafeInteger(v.size) ? v : null;
    } catch {
      return null;
    }
  }
}

export interface Usage {
  bytes: number;
  files: { size: number; mtimeMs: number }[];
}

export interface FileMeta {
  name: string;
  type: string;
  size: number;
}

/**
 * XEP-0363 §5 <retry/>: when enough of the user's files will have expired for
 * `need` more bytes to fit the quota; null when that never happens by expiry.
 */
export function retryAt(u: Usage, need: number, quota: number, expireAfterMs: number): number | null {
  if (expireAfterMs === 0 || need > quota) return null;
  let bytes = u.bytes;
  for (const f of [...u.files].sort((a, b) => a.mtimeMs - b.mtimeMs)) {
    bytes -= f.size;
    if (bytes + need <= quota) return Math.ceil(f.mtimeMs + expireAfterMs);
  }
  return null;
}
