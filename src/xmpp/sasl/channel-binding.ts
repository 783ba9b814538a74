import type { ChannelBindingType, Conn } from "../../transport/conn.js";

/**
 * Channel binding types this connection can give (XEP-0440): tls-exporter
 * (RFC 9266) on TLS 1.3, tls-unique (RFC 5929) on TLS 1.2, where it is defined.
 */
export function bindingTypes(conn: Conn): ChannelBindingType[] {
  const v = conn.tlsVersion;
  if (v === null) return [];
  return v === "TLSv1.3" ? ["tls-exporter"] : ["tls-unique"];
}

/**
 * What a client may ask for: what we advertise, and tls-unique on TLS 1.3 too.
 * RFC 9266 deprecates it there, but deployed clients (slixmpp 1.8) send it
 * whatever is advertised and, refused, retry with the "y" flag that RFC 5802
 * §6 obliges us to fail: they could never log in. Its data, the client's
 * Finished, still belongs to this one connection.
 */
function acceptedBindingTypes(conn: Conn): ChannelBindingType[] {
  const v = conn.tlsVersion;
  if (v === null) return [];
  return v === "TLSv1.3" ? ["tls-exporter", "tls-unique"] : ["tls-unique"];
}

export function bindingData(conn: Conn, type: string): Buffer | null {
  const accepted = acceptedBindingTypes(conn);
  return accepted.includes(type as ChannelBindingType) ? conn.channelBinding(type as ChannelBindingType) : null;
}
