import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * An upload slot (XEP-0363 §4), carried by the PUT request itself: any worker
 * signs one and the host's listener checks it with the same key, so no slot
 * table is shared between processes. `user` is the user's key (userKey), not
 * the JID: it names the user's directory and is no use to anyone who reads it.
 */
export interface Slot {
  user: string;
  /** Random, unguessable: the file's name on disk and in the URLs. */
  id: string;
  name: string;
  size: number;
  type: string;
  /** Epoch ms after which the PUT is refused. */
  expires: number;
}

/** Why a token was refused; each maps to one HTTP status (src/upload/http.ts). */
export type SlotProblem = "malformed" | "forged" | "expired";

/** A token longer than this is not ours; refused before it is decoded. */
const MAX_TOKEN = 4096;
const USER_RE = /^[0-9a-f]{32}$/;
const ID_RE = /^[A-Za-z0-9_-]{22}$/;

const mac = (key: Buffer, label: string, data: string): Buffer => createHmac("sha256", key).update(label).update("\0").update(data).digest();

/** The user's directory name: a keyed hash of the bare JID, so a URL does not tell who uploaded (nor can it be guessed from a JID). */
export function userKey(key: Buffer, bare: string): string {
  return mac(key, "user", bare).subarray(0, 16).toString("hex");
}

export function newSlotId(): string {
  return randomBytes(16).toString("base64url");
}

export const isUserKey = (s: string): boolean => USER_RE.test(s);
export const isSlotId = (s: string): boolean => ID_RE.test(s);

/** The Authorization value of the slot's PUT (XEP-0363 §4: a header the client copies): payload.mac, both base64url. */
export function signSlot(key: Buffer, s: Slot): string {
  const payload = Buffer.from(JSON.stringify([s.user, s.id, s.name, s.size, s.type, s.expires])).toString("base64url");
  return `${payload}.${mac(key, "slot", payload).toString("base64url")}`;
}

/** The slot a token stands for, or why not. Constant-time MAC check; the payload is parsed only once the MAC holds. */
export function verifySlot(key: Buffer, token: string, now: number): Slot | SlotProblem {
  if (token.length > MAX_TOKEN) return "malformed";
  const dot = token.indexOf(".");
  if (dot <= 0 || dot !== token.lastIndexOf(".")) return "malformed";
  const payload = token.slice(0, dot);
  const given = Buffer.from(token.slice(dot + 1), "base64url");
  const want = mac(key, "slot", payload);
  if (given.length !== want.length || !timingSafeEqual(given, want)) return "forged";
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
  } catch {
    return "malformed";
  }
  if (!Array.isArray(v) || v.length !== 6) return "malformed";
  const [user, id, name, size, type, expires] = v as unknown[];
  if (typeof user !== "string" || !isUserKey(user) || typeof id !== "string" || !isSlotId(id)) return "malformed";
  if (typeof name !== "string" || typeof type !== "string" || !Number.isSafeInteger(size) || !Number.isSafeInteger(expires)) return "malformed";
  if (now > (expires as number)) return "expired";
  return { user, id, name, size: size as number, type, expires: expires as number };
}

/** The path of a slot's file under the public URL: PUT and GET share it (§4). */
export function slotPath(s: Pick<Slot, "user" | "id" | "name">): string {
  return `/${s.user}/${s.id}/${encodeURIComponent(s.name)}`;
}

/**
 * The signing key: upload.secret, or 32 random bytes kept in <dir>/upload.key
 * (mode 0600). Made once: written aside and linked into place, so processes
 * starting together (a host's primary and workers) all end with the same key.
 */
export function loadUploadKey(secret: string | null, dir: string): Buffer {
  if (secret !== null) return Buffer.from(secret, "utf8");
  const file = join(dir, "upload.key");
  try {
    return readKey(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString("hex")}`;
  writeFileSync(tmp, randomBytes(32).toString("hex") + "\n", { mode: 0o600, flag: "wx" });
  try {
    linkSync(tmp, file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
  } finally {
    unlinkSync(tmp);
  }
  return readKey(file);
}

function readKey(file: string): Buffer {
  const hex = readFileSync(file, "utf8").trim();
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new Error(`${file}: not an upload key (64 hex digits); remove it to have a new one made`);
  return Buffer.from(hex, "hex");
}
