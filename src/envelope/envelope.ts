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
  /** To a bare address: include resources with negative priority (presence broadcast). */
  AllResources: 8,
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
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export class Envelope {
  constructor(
    public kind: Kind,
    /** Request: the sender's id, replaced by the proxy id when forwarded. */
    public id: string,
    /** Response/Error: the id of the request answered (proxy id on the way back, original id on delivery). */
    public responseFor: string,
    /** Full address of the sender, always stamped by the server. */
    public from: string,
    public to: string,
    /** The protocol whose codec made `payload`. */
    public protocol: string,
    public payload: unknown,
    /** Request timeout in ms asked by the sender (0: protocol default). */
    public ttl = 0,
    public flags = 0,
    /** Error: one of ErrorCode or a code sent by the answering peer. */
    public code = "",
  ) {}
}
