import type { XmppConfig } from "../config/config.js";
import type { ClientSession } from "./client-session.js";

function isLoopback(ip: string): boolean {
  return ip.startsWith("127.") || ip === "::1" || ip.startsWith("::ffff:127.");
}

/** RFC 6120 §13.8 and the config: whether this connection must encrypt before SASL. */
export function encryptionRequired(c: XmppConfig, s: ClientSession): boolean {
  return c.requireEncryption && !s.secure && !(c.exemptLoopback && isLoopback(s.conn.remoteAddress));
}
