import { createHash } from "node:crypto";
import type { Element } from "ltx";
import { NS } from "../ns.js";

/**
 * XEP-0115 §5.1: the verification string of a disco#info <query/>: its
 * identities, features and extended forms (XEP-0128) in a canonical order,
 * each part followed by '<', hashed (sha-1 here, §5.4) and in base64.
 * Null when the query is malformed in a way §5.4 says must fail the check
 * (a feature or identity twice, a form without a hidden FORM_TYPE, two forms of one type).
 */
export function capsString(query: Element): string | null {
  const identities: string[] = [];
  const features: string[] = [];
  const forms = new Map<string, string>();
  for (const c of query.getChildElements()) {
    if (c.name === "identity") {
      identities.push(`${c.attrs.category ?? ""}/${c.attrs.type ?? ""}/${c.attrs["xml:lang"] ?? ""}/${c.attrs.name ?? ""}`);
    } else if (c.name === "feature") {
      features.push(String(c.attrs.var ?? ""));
    } else if (c.name === "x" && c.attrs.xmlns === NS.DATA) {
      const form = formString(c);
      if (form === null) continue; // §5.4 step 3.6: a form without FORM_TYPE is ignored
      if (form === undefined || forms.has(form[0])) return null;
      forms.set(form[0], form[1]);
    }
  }
  if (new Set(identities).size !== identities.length || new Set(features).size !== features.length) return null;
  let s = "";
  for (const i of identities.sort(byteOrder)) s += `${i}<`;
  for (const f of features.sort(byteOrder)) s += `${f}<`;
  for (const type of [...forms.keys()].sort(byteOrder)) s += forms.get(type);
  return s;
}

/** The hash of capsString, as `ver` carries it; null: malformed. */
export function capsVer(query: Element): string | null {
  const s = capsString(query);
  return s === null ? null : createHash("sha1").update(s, "utf8").digest("base64");
}

/** [FORM_TYPE, its part of S]; null: no FORM_TYPE (ignored); undefined: a FORM_TYPE that is not hidden or has several values. */
function formString(x: Element): [string, string] | null | undefined {
  let type: string | null = null;
  const fields: [string, string[]][] = [];
  for (const f of x.getChildren("field")) {
    const values = f.getChildren("value").map((v) => v.getText());
    if (f.attrs.var === "FORM_TYPE") {
      if (f.attrs.type !== "hidden" || values.length !== 1) return undefined;
      type = values[0];
    } else fields.push([String(f.attrs.var ?? ""), values]);
  }
  if (type === null) return null;
  let s = `${type}<`;
  for (const [v, values] of fields.sort((a, b) => byteOrder(a[0], b[0]))) {
    s += `${v}<`;
    for (const value of values.sort(byteOrder)) s += `${value}<`;
  }
  return [type, s];
}

/** §5.1: "sorted ... using 'i;octet' collation" (RFC 4790): by UTF-8 bytes. */
function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}
