/**
 * The protocol-neutral unit the core routes (seed 004's Request/Response).
 * `payload` belongs to the protocol that made it and is passed along untouched.
 */
export const Kind = {
  Message: 0,
  Request: 1,
  Response: 2,
  Error: 3,
  Presence: 4,
} as const;
export type Kind = (typeof Kind)[keyof typeof Kind];

/** Delivery rules a protocol asks of the core; the core knows no protocol semantics. */
export const Flag = {
  None: 0,
  /** To a full address that is not online: deliver as if sent to the bare address (RFC 6121 §8.5.3.2.1). */
  BareFallback: 1,
  /** Nobody online to receive it: hand it to offline storage. */
  Offline: 2,
  /** A presence probe: the owner answers with the current presence of each available resource. */
  Probe: 4,
  /**
   * To a bare address: every bound session, available or not, whatever its
   * priority; each session decides whether it is interested (roster pushes,
   * RFC 6121 §2.1.6).
   */
  EveryResource: 8,
  /** Nobody online to receive it and not stored: the sender gets an error (XMPP groupchat, RFC 6121 §8.5.3.2.1). */
  Bounce: 16,
  /**
   * A message whose copies the sender's and the recipient's other sessions may
   * take (XMPP: eligible for XEP-0280 carbons): each session of either user
   * that wants copies (Session.wantsCopies) and did not get the message itself
   * gets one copy, made by the core only when such a session exists.
   */
  Copies: 32,
  /** A copy (Envelope.copy) for the sessions of bare(to) that want copies, other than to's own: "received". */
  Copy: 64,
  /** A copy for the sessions of bare(from) that want copies, other than the sender: "sent". */
  SentCopy: 128,
  /**
   * A request the owner of a bare address gave to one session of a pool (docs/relay-protocol.md, "Pools"):
   * the recipient's worker tells that owner when it is settled, so the owner knows each session's load.
   */
  Pool: 256,
  /**
   * A message its protocol wants kept in the archives of its users (XMPP: XEP-0313): the owner of the
   * recipient hands it to the archive sink, and the owner of the sender too (a SentCopy carries it there
   * when that owner is another worker). Archives drop a message they already have (same id).
   */
  Archive: 512,
  /**
   * For an address served on its owner worker by a protocol's service rather than a UserChannel (XMPP:
   * XEP-0045 rooms, src/session/service.ts): the ring names the owner as for a user, and the owner hands
   * it to the service of the address's domain. Never stored, bounced or held in custody.
   */
  Service: 1024,
  /**
   * A message its sender's client may be sending again (XMPP: right after a resumption, XEP-0198 §5): the
   * session it is delivered to drops it if it already had one with the same sender and id (Session.recent,
   * docs/architecture.md "Resent").
   */
  Resent: 2048,
} as const;

/** Stable error codes; each protocol turns them into its own wire condition in one place. */
export const ErrorCode = {
  Timeout: "timeout",
  Unavailable: "unavailable",
  BadRequest: "bad-request",
  BadFrame: "bad-frame",
  TooLarge: "too-large",
  NotAuthorized: "not-authorized",
  RateLimited: "rate-limited",
  Conflict: "conflict",
  Internal: "internal",
  /** The recipient's offline queue is full. */
  QuotaExceeded: "quota-exceeded",
  /** The recipient is offline and the message could not be stored (store unreachable or failing, write queue full). */
  NotStored: "not-stored",
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * A payload that came over the bus as text (src/cluster/wire.ts, PayloadCodec.decodeText), decoded the
 * first time it is read: a worker that only passes a stanza on to another never parses it, and one that
 * only writes it to a client may write the text (xmpp/outbound.ts). Envelopes made from one share it.
 */
export class WireText {
  private value: unknown = null;
  decoded = false;

  constructor(
    readonly text: string,
    private readonly decode: (text: string) => unknown,
    /** A text that does not decode (a foreign publisher, a bug): told here, and the payload is null. Never thrown to the reader. */
    private readonly bad: (e: Error) => void,
  ) {}

  get(): unknown {
    if (!this.decoded) {
      this.decoded = true;
      try {
        this.value = this.decode(this.text);
      } catch (e) {
        this.bad(e as Error);
      }
    }
    return this.value;
  }
}

/** Who sends what to whom: named, so that `from` and `to` cannot be swapped by position. */
interface Route {
  /** Full address of the sender, stamped by the server ("" for the server itself). */
  from: string;
  to: string;
  /** The protocol whose codec made the payload. */
  protocol: string;
}

/**
 * Envelopes are made by the named factories below and never changed after:
 * the core makes a new one where a request is forwarded or an answer turned
 * back towards its asker.
 */
export class Envelope {
  /** For BusWire, which restores an envelope field by field; everyone else uses the factories. */
  constructor(
    readonly kind: Kind,
    /** Request: the id the requester wrote. Message: the protocol's message id, if any (quoted in a bounce). */
    readonly id: string,
    /**
     * Request, once forwarded: the proxy reference `<worker>.<key>` of its
     * PendingResponse, which names the requester's worker (seed 004's proxy id).
     * Message that left its sender's worker: its receipt `<worker>.<key>`, which
     * names the worker holding it until it is settled (custody, docs/architecture.md).
     */
    readonly ref: string,
    /** Response/Error: the request answered, as its recipient wrote it, as the ref on the bus, and as the requester's id on delivery. */
    readonly responseFor: string,
    readonly from: string,
    readonly to: string,
    readonly protocol: string,
    /** The protocol's payload, or a WireText standing for it (read through `payload`). */
    payload: unknown,
    /** Request: the timeout in ms asked by the sender (0: the protocol's default); clamped when forwarded. */
    readonly ttl: number,
    readonly flags: number,
    /** Error: one of ErrorCode or a code sent by the answering peer. */
    readonly code: string,
  ) {
    this.p = payload;
  }

  private p: unknown;

  /**
   * A message marked Flag.Archive: the text its protocol wrote it as for a session on this worker, kept for
   * the archive, which then neither serializes it again nor holds the event loop for it (src/store/archive-writer.ts).
   */
  written: string | null = null;

  /** Belongs to the protocol that made it; a payload that came over the bus as text is decoded on its first read here. */
  get payload(): unknown {
    const p = this.p;
    return p instanceof WireText ? p.get() : p;
  }

  /** The payload's text as it came over the bus while nobody here has read `payload` (BusWire passes it on as it is). */
  get wireText(): string | null {
    const p = this.p;
    return p instanceof WireText && !p.decoded ? p.text : null;
  }

  /** The length of the payload's text when it is one (a WireText, read or not), else -1: a size for splitting batches. */
  get textLength(): number {
    const p = this.p;
    return p instanceof WireText ? p.text.length : -1;
  }

  /** `receipt`: a message given back by a session that never had it acknowledged keeps the one it came with. */
  static message(r: Route & { payload: unknown; flags?: number; id?: string; receipt?: string }): Envelope {
    return new Envelope(Kind.Message, r.id ?? "", r.receipt ?? "", "", r.from, r.to, r.protocol, r.payload, 0, r.flags ?? 0, "");
  }

  static presence(r: Route & { payload: unknown; flags?: number }): Envelope {
    return new Envelope(Kind.Presence, "", "", "", r.from, r.to, r.protocol, r.payload, 0, r.flags ?? 0, "");
  }

  static request(r: Route & { id: string; payload: unknown; ttl?: number }): Envelope {
    return new Envelope(Kind.Request, r.id, "", "", r.from, r.to, r.protocol, r.payload, r.ttl ?? 0, 0, "");
  }

  static response(r: Route & { responseFor: string; payload: unknown }): Envelope {
    return new Envelope(Kind.Response, "", "", r.responseFor, r.from, r.to, r.protocol, r.payload, 0, 0, "");
  }

  static error(r: Route & { responseFor: string; code: string; payload?: unknown }): Envelope {
    return new Envelope(Kind.Error, "", "", r.responseFor, r.from, r.to, r.protocol, r.payload ?? null, 0, 0, r.code);
  }

  /** This request as forwarded: carrying the ref of its PendingResponse and its clamped timeout. */
  forwarded(ref: string, ttl: number): Envelope {
    return new Envelope(this.kind, this.id, ref, "", this.from, this.to, this.protocol, this.p, ttl, this.flags, "");
  }

  /** This message as it leaves its sender's worker, held there under `receipt`. */
  withReceipt(receipt: string): Envelope {
    return new Envelope(this.kind, this.id, receipt, "", this.from, this.to, this.protocol, this.p, this.ttl, this.flags, "");
  }

  /**
   * This message as a copy for the other sessions of its recipient (Flag.Copy)
   * or its sender (Flag.SentCopy): same from, to and payload, and no other
   * flag, so that a copy is never stored, bounced or copied again.
   */
  copy(flag: typeof Flag.Copy | typeof Flag.SentCopy, archive = false): Envelope {
    return new Envelope(this.kind, this.id, "", "", this.from, this.to, this.protocol, this.p, 0, archive ? flag | Flag.Archive : flag, "");
  }

  /** This envelope with `flags` added (the owner marks a request it chose by pool). */
  flagged(flags: number): Envelope {
    return new Envelope(this.kind, this.id, this.ref, this.responseFor, this.from, this.to, this.protocol, this.p, this.ttl, this.flags | flags, this.code);
  }

  /** The same envelope to another recipient, sharing its payload: one of a service's fan-out (src/proxy/services.ts). */
  readdressed(to: string): Envelope {
    return new Envelope(this.kind, this.id, this.ref, this.responseFor, this.from, to, this.protocol, this.p, this.ttl, this.flags, this.code);
  }

  /** This answer readdressed: to `to`, answering `responseFor` (the ref on the bus, the asker's own id on delivery). */
  answering(responseFor: string, to: string): Envelope {
    return new Envelope(this.kind, "", "", responseFor, this.from, to, this.protocol, this.p, 0, 0, this.code);
  }
}
