/**
 * What a slot request may name (XEP-0363 §4, §8 security): the filename
 * becomes part of two URLs and of a Content-Disposition header, the content
 * type a response header. Anything that could change a path, split a header
 * or disguise a name is refused (not-acceptable), never repaired.
 */

/** Bytes of UTF-8 at most: what common filesystems allow for one name. */
export const MAX_FILENAME_BYTES = 255;
const MAX_TYPE = 255;

/**
 * C0 and C1 controls, DEL, and the bidirectional overrides and isolates
 * (U+202A–U+202E, U+2066–U+2069) that make "gpj.exe" read "exe.jpg".
 */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
/** RFC 9110 §8.3.1 type/subtype tokens, with optional parameters of token or quoted-string values (printable ASCII only). */
const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";
const TYPE_RE = new RegExp(`^${TOKEN}/${TOKEN}(\\s*;\\s*${TOKEN}=(${TOKEN}|"[\\x20\\x21\\x23-\\x5b\\x5d-\\x7e]*"))*$`);

/** Why a filename is refused, or null. */
export function filenameProblem(name: string): string | null {
  if (name.length === 0) return "the filename is empty";
  if (Buffer.byteLength(name, "utf8") > MAX_FILENAME_BYTES) return `the filename is longer than ${MAX_FILENAME_BYTES} bytes`;
  if (name.includes("/") || name.includes("\\")) return "the filename contains a path separator";
  if (name === "." || name === "..") return "the filename is a directory name";
  if (CONTROL.test(name)) return "the filename contains a control character";
  // A lone surrogate cannot be encoded in the URL (encodeURIComponent throws).
  if (LONE_SURROGATE.test(name)) return "the filename is not valid Unicode";
  return null;
}

/** Why a content type is refused, or null. */
export function contentTypeProblem(type: string): string | null {
  if (type.length > MAX_TYPE) return `the content type is longer than ${MAX_TYPE} characters`;
  if (!TYPE_RE.test(type)) return "the content type is not a MIME type (type/subtype)";
  return null;
}

/** For comparing the slot's type with the PUT's Content-Type: type and subtype case-folded, no blanks around parameters. */
export function normalType(type: string): string {
  const semi = type.indexOf(";");
  const base = (semi < 0 ? type : type.slice(0, semi)).trim().toLowerCase();
  if (semi < 0) return base;
  return `${base};${type
    .slice(semi + 1)
    .split(";")
    .map((p) => p.trim())
    .join(";")}`;
}

/** Types a browser may show in place without running anything; everything else is offered as a download. */
const INLINE = /^(image\/(png|jpeg|gif|webp|avif|bmp)|audio\/[a-z0-9.+-]+|video\/[a-z0-9.+-]+|text\/plain)(;|$)/i;

/**
 * RFC 6266 Content-Disposition: an ASCII fallback name (quotes, backslashes and
 * non-ASCII replaced) and the exact name as RFC 8187 filename*. Anything that
 * is not plain media is `attachment`, so an uploaded page never runs as ours.
 */
export function contentDisposition(name: string, type: string): string {
  const kind = INLINE.test(type) ? "inline" : "attachment";
  const ascii = name.replace(/[^\x20-\x7e]|["\\%]/g, "_");
  const star = encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `${kind}; filename="${ascii}"; filename*=UTF-8''${star}`;
}
