/**
 * Addresses are JIDs (RFC 7622) in their common form `local@domain/resource`.
 * Full stringprep is out of scope: local part and domain are case-folded,
 * the resource is kept as sent.
 */
export interface Address {
  local: string;
  domain: string;
  resource: string;
}

const LOCAL_FORBIDDEN = /["&'/:<>@\s\u0000-\u001f]/;
const MAX_PART = 1023;

export function parseAddress(s: string): Address | null {
  if (typeof s !== "string" || s.length === 0 || s.length > 3071) return null;
  const slash = s.indexOf("/");
  const bare = slash < 0 ? s : s.slice(0, slash);
  const resource = slash < 0 ? "" : s.slice(slash + 1);
  if (slash >= 0 && (resource.length === 0 || resource.length > MAX_PART)) return null;
  const at = bare.indexOf("@");
  const local = at < 0 ? "" : bare.slice(0, at).toLowerCase();
  const domain = (at < 0 ? bare : bare.slice(at + 1)).toLowerCase();
  if (at >= 0 && !validLocal(local)) return null;
  if (domain.length === 0 || domain.length > MAX_PART || /[@\s/]/.test(domain)) return null;
  return { local, domain, resource };
}

export function validLocal(local: string): boolean {
  return local.length > 0 && local.length <= MAX_PART && !LOCAL_FORBIDDEN.test(local);
}

export function bareOf(address: string): string {
  const slash = address.indexOf("/");
  return slash < 0 ? address : address.slice(0, slash);
}

/**
 * Whether `address` lies in `domain`, a bare address with no local part (an
 * XEP-0114 component's): `domain` itself, or any `local@domain[/resource]`.
 */
export function inDomain(address: string, domain: string): boolean {
  if (domain.indexOf("@") >= 0 || domain.indexOf("/") >= 0) return false;
  const bare = bareOf(address);
  const at = bare.indexOf("@");
  return (at < 0 ? bare : bare.slice(at + 1)) === domain;
}

export function resourceOf(address: string): string {
  const slash = address.indexOf("/");
  return slash < 0 ? "" : address.slice(slash + 1);
}

/**
 * The part of a resource that names its client (Session.client): after the first `/`, or the whole resource without
 * one. XEP-0386 §3.2.1's `tag/part` puts the server's part there, stable per account and user-agent id.
 */
export function clientPart(resource: string): string {
  const slash = resource.indexOf("/");
  return slash < 0 ? resource : resource.slice(slash + 1);
}

export function formatAddress(a: Address): string {
  const bare = a.local ? `${a.local}@${a.domain}` : a.domain;
  return a.resource ? `${bare}/${a.resource}` : bare;
}

/**
 * The canonical string of a parsed address. When the client already sent it
 * canonical (the usual case) its own string is returned: a string built by
 * concatenation is a rope that every Map lookup on the routing path would
 * have to flatten first (about 3× the cost of a lookup).
 */
export function canonicalAddress(s: string, a: Address): string {
  const at = a.local ? a.local.length : -1;
  const sameBare = a.local ? s.startsWith(a.local) && s.charCodeAt(at) === 64 /* @ */ && s.startsWith(a.domain, at + 1) : s.startsWith(a.domain);
  const bareLength = at + 1 + a.domain.length;
  if (sameBare && (a.resource ? s.length === bareLength + 1 + a.resource.length : s.length === bareLength)) return s;
  return formatAddress(a);
}

/** Canonical form of a client-supplied address, or null when malformed. */
export function normalizeAddress(s: string): string | null {
  const a = parseAddress(s);
  return a && canonicalAddress(s, a);
}
