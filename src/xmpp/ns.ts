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
  /** XEP-0280 Message Carbons. */
  CARBONS: "urn:xmpp:carbons:2",
  /** XEP-0297 Stanza Forwarding, the wrapper of a carbon copy. */
  FORWARD: "urn:xmpp:forward:0",
  /** XEP-0334 Message Processing Hints. */
  HINTS: "urn:xmpp:hints",
  /** XEP-0198 Stream Management. */
  SM: "urn:xmpp:sm:3",
  /** XEP-0191 Blocking Command, and its error condition. */
  BLOCKING: "urn:xmpp:blocking",
  BLOCKING_ERRORS: "urn:xmpp:blocking:errors",
  /** Ours, never written to a client: "this user blocked you" told to the blocked user's sessions (modules/blocklist.ts). */
  BLOCKED_BY: "urn:switchboard:blocked-by",
  /** XEP-0054 vcard-temp. */
  VCARD: "vcard-temp",
  /** XEP-0092 Software Version. */
  VERSION: "jabber:iq:version",
  /** XEP-0313 Message Archive Management. */
  MAM: "urn:xmpp:mam:2",
  /** XEP-0359 Unique and Stable Stanza IDs. */
  SID: "urn:xmpp:sid:0",
  /** XEP-0059 Result Set Management. */
  RSM: "http://jabber.org/protocol/rsm",
  /** XEP-0363 HTTP File Upload. */
  HTTP_UPLOAD: "urn:xmpp:http:upload:0",
  /** XEP-0388 Extensible SASL Profile. */
  SASL2: "urn:xmpp:sasl:2",
  /** XEP-0386 Bind 2. */
  BIND2: "urn:xmpp:bind:0",
  /** XEP-0484 Fast Authentication Streamlining Tokens. */
  FAST: "urn:xmpp:fast:0",
  /** XEP-0004 Data Forms. */
  DATA: "jabber:x:data",
  /** XEP-0114 Jabber Component Protocol: the content namespace of a component's stream. */
  COMPONENT: "jabber:component:accept",
  /** XEP-0077 In-Band Registration: the iq payload and the stream feature. */
  REGISTER: "jabber:iq:register",
  REGISTER_FEATURE: "http://jabber.org/features/iq-register",
  /** XEP-0060 Publish-Subscribe (the subset XEP-0163 PEP needs), its owner, event and error namespaces. */
  PUBSUB: "http://jabber.org/protocol/pubsub",
  PUBSUB_OWNER: "http://jabber.org/protocol/pubsub#owner",
  PUBSUB_EVENT: "http://jabber.org/protocol/pubsub#event",
  PUBSUB_ERRORS: "http://jabber.org/protocol/pubsub#errors",
  /** XEP-0060 §16.4: the FORM_TYPE of node configuration and of XEP-0223 publish-options. */
  PUBSUB_NODE_CONFIG: "http://jabber.org/protocol/pubsub#node_config",
  PUBSUB_PUBLISH_OPTIONS: "http://jabber.org/protocol/pubsub#publish-options",
  /** XEP-0084 User Avatar (PEP nodes), XEP-0153 vCard-based avatar hash in presence, XEP-0398 their conversion. */
  AVATAR_DATA: "urn:xmpp:avatar:data",
  AVATAR_METADATA: "urn:xmpp:avatar:metadata",
  VCARD_UPDATE: "vcard-temp:x:update",
  PEP_VCARD_CONVERSION: "urn:xmpp:pep-vcard-conversion:0",
  /** XEP-0115 Entity Capabilities. */
  CAPS: "http://jabber.org/protocol/caps",
  /** XEP-0045 Multi-User Chat, its user, admin and owner namespaces, and its forms. */
  MUC: "http://jabber.org/protocol/muc",
  MUC_USER: "http://jabber.org/protocol/muc#user",
  MUC_ADMIN: "http://jabber.org/protocol/muc#admin",
  MUC_OWNER: "http://jabber.org/protocol/muc#owner",
  MUC_ROOMCONFIG: "http://jabber.org/protocol/muc#roomconfig",
  MUC_ROOMINFO: "http://jabber.org/protocol/muc#roominfo",
  MUC_REQUEST: "http://jabber.org/protocol/muc#request",
  /** XEP-0421 Anonymous unique occupant identifiers. */
  OCCUPANT_ID: "urn:xmpp:occupant-id:0",
  /** XEP-0249 Direct MUC Invitations. */
  CONFERENCE: "jabber:x:conference",
} as const;
