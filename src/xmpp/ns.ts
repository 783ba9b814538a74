/** XML namespaces, named by the document that defines them. */
export const NS = {
  CLIENT: "jabber:client",
  STREAM: "http://etherx.jabber.org/streams",
  /** RFC 7395 §3.3.1: <open/> and <close/> of XMPP over WebSocket. */
  FRAMING: "urn:ietf:params:xml:ns:xmpp-framing",
  STREAM_ERRORS: "urn:ietf:params:xml:ns:xmpp-streams",
  STANZA_ERRORS: "urn:ietf:params:xml:ns:xmpp-stanzas",
  TLS: "urn:ietf:params:xml:ns:xmpp-tls",
  SASL: "urn:ietf:params:xml:ns:xmpp-sasl",
  BIND: "urn:ietf:params:xml:ns:xmpp-bind",
  SESSION: "urn:ietf:params:xml:ns:xmpp-session",
  ROSTER: "jabber:iq:roster",
  DISCO_INFO: "http://jabber.org/protocol/disco#info",
  DISCO_ITEMS: "http://jabber.org/protocol/disco#items",
  PING: "urn:xmpp:ping",
  DELAY: "urn:xmpp:delay",
  SASL_CB: "urn:xmpp:sasl-cb:0",
  CSI: "urn:xmpp:csi:0",
} as const;
