import type { TLSSocket } from "node:tls";
import type { Conn } from "../../transport/conn.js";

/** The TLS socket under a connection, when it has one (StreamConn after STARTTLS or direct TLS). */
export function tlsOf(conn: Conn): TLSSocket | null {
  const tls = (conn as { tls?: TLSSocket | null }).tls;
  return tls != null && tls.encrypted ? tls : null;
}

/**
 * Channel binding types this connection can give (XEP-0440): tls-exporter
 * (RFC 9266) on TLS 1.3, tls-unique (RFC 5929) on TLS 1.2, where it is defined.
 */
export function bindingTypes(conn: Conn): string[] {
  const tls = tlsOf(conn);
  if (tls === null) return [];
  return tls.getProtocol() === "TLSv1.3" ? ["tls-exporter"] : ["tls-unique"];
}

/**
 * What a client may ask for: what we advertise, and tls-unique on TLS 1.3 too.
 * RFC 9266 deprecates it there, but deployed clients (slixmpp 1.8) send it
 * whatever is advertised and, refused, retry with the "y" flag that RFC 5802
 * §6 obliges us to fail: they could never log in. Its data, the client's
 * Finished, still belongs to this one connection.
 */
export function acceptedBindingTypes(conn: Conn): string[] {
  const tls = tlsOf(conn);
  if (tls === null) return [];
  return tls.getProtocol() === "TLSv1.3" ? ["tls-exporter", "tls-unique"] : ["tls-unique"];
}

export function bindingData(conn: Conn, type: string): Buffer | null {
  const tls = tlsOf(conn);
  if (tls === null || !acceptedBindingTypes(conn).includes(type)) return null;
  if (type === "tls-exporter") return tls.exportKeyingMaterial(32, "EXPORTER-Channel-Binding", Buffer.alloc(0));
  // tls-unique: the first Finished of the handshake, which on a full handshake is the client's.
  return tls.getPeerFinished() ?? null;
}
