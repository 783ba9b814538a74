import type { XmppSession } from "./xmpp-session.js";

export function isLoopback(ip: string): boolean {
  return ip.startsWith("127.") || ip === "::1" || ip.startsWith("::ffff:127.");
}

/** RFC 6120 §13.8 and the config: whether this connection must encrypt before SASL. */
export function encryptionRequired(s: XmppSession): boolean {
  const c = s.x.config.xmpp;
  return c.requireEncryption && !s.secure && !(c.exemptLoopback && isLoopback(s.conn.remoteAddress));
}
