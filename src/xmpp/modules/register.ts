import { Element } from "ltx";
import { Authenticator } from "../../auth/authenticator.js";
import { FailureLimiter } from "../../auth/failure-limiter.js";
import { deriveCredentials } from "../../store/scram.js";
import { StanzaCondition, stanzaError, StreamCondition, StreamError } from "../errors.js";
import { Ev, type Hooks, type IqEvent } from "../hooks.js";
import { NS } from "../ns.js";
import { encryptionRequired } from "../policy.js";
import { iqResultFor } from "../replies.js";
import { Phase, type ClientSession } from "../client-session.js";
import type { XmppContext } from "../context.js";
import type { Disco } from "./disco.js";

/** Longest password taken (bytes as UTF-8): PBKDF2 runs over it twice. */
const MAX_PASSWORD_BYTES = 1024;

/** The error reply to an iq, with the query echoed as XEP-0077 §3.1 examples show; `type` overrides the condition's usual one. */
function refuse(s: ClientSession, iq: Element, cond: StanzaCondition, text: string, type?: string): void {
  const from = s.phase === Phase.Bound ? iq.attrs.to || s.domain : "";
  const reply = stanzaError(iq, cond, from, s.phase === Phase.Bound ? s.address : "", text);
  if (type !== undefined) reply.getChild("error")!.attrs.type = type;
  s.send(reply);
}

function field(q: Element, name: string): string | null {
  const el = q.getChild(name);
  return el === undefined ? null : el.getText();
}

/**
 * XEP-0077 In-Band Registration. Before authentication (off by default,
 * xmpp.register.enabled): the stream feature, the form (get) and account
 * creation (set) through the account store, limited per IP address on each
 * worker. After it: password change (xmpp.register.passwordChange) and account
 * removal (xmpp.register.remove) by the logged-in user.
 */
export function registerModule(hooks: Hooks, x: XmppContext, disco: Disco): void {
  const R = x.config.xmpp.register;
  // Clients look for it in the server's features before offering a password change (XEP-0077 §3.3).
  if (R.enabled || R.passwordChange || R.remove) disco.serverFeature(NS.REGISTER);
  const limiter = new FailureLimiter(R.maxPerIp, R.windowMs);

  if (R.enabled) {
    // §4: offered with SASL, where SASL may run (RFC 6120 §13.8: not before TLS where TLS is required).
    hooks.on(Ev.StreamFeatures, ({ session, features }) => {
      if (session.phase === Phase.Negotiating && !encryptionRequired(x.config.xmpp, session)) features.c("register", { xmlns: NS.REGISTER_FEATURE });
    });
    hooks.on(Ev.Negotiation, ({ session: s, stanza: iq }) => {
      if (iq.name !== "iq" || s.phase !== Phase.Negotiating) return false;
      const q = iq.getChild("query", NS.REGISTER);
      if (q === undefined) return false;
      if (iq.attrs.type === "result" || iq.attrs.type === "error") return true;
      if (iq.attrs.id === undefined) throw new StreamError(StreamCondition.BadFormat, "an iq needs an id");
      if (encryptionRequired(x.config.xmpp, s)) return refuse(s, iq, StanzaCondition.PolicyViolation, "encryption is required to register"), true;
      if (iq.attrs.type === "get") {
        const reply = new Element("iq", { type: "result", id: iq.attrs.id });
        reply.cnode(form());
        return s.send(reply), true;
      }
      if (iq.attrs.type !== "set") return refuse(s, iq, StanzaCondition.BadRequest, "get or set"), true;
      register(s, iq, q);
      return true;
    });
  }

  /** §3.1: what the form asks for. */
  function form(): Element {
    const q = new Element("query", { xmlns: NS.REGISTER });
    q.c("instructions").t("Choose a user name and password for use with this service.");
    q.c("username");
    q.c("password");
    return q;
  }

  /** §3.1: creates the account; an existing name is a conflict, never replaced. */
  function register(s: ClientSession, iq: Element, q: Element): void {
    const ip = s.conn.remoteAddress;
    if (q.getChild("remove") !== undefined) return refuse(s, iq, StanzaCondition.NotAllowed, "log in to remove an account");
    if (limiter.blocked(ip)) {
      x.log.info("xmpp registration refused: rate limit", { remote: ip });
      return refuse(s, iq, StanzaCondition.PolicyViolation, "too many registrations from this address; try again later", "wait");
    }
    limiter.fail(ip);
    const raw = field(q, "username");
    const user = raw === null ? null : Authenticator.normalizeUser(raw.trim());
    const password = field(q, "password");
    if (user === null) return refuse(s, iq, StanzaCondition.NotAcceptable, "not a valid user name");
    if (password === null || password.length === 0 || Buffer.byteLength(password) > MAX_PASSWORD_BYTES) return refuse(s, iq, StanzaCondition.NotAcceptable, "the password must be 1 to 1024 bytes");
    s.hold();
    deriveCredentials(password, x.config.auth.scramIterations)
      .then((creds) => x.accounts.addUser(user, creds))
      .then(
        (created) => {
          if (s.phase === Phase.Closing) return;
          if (!created) return refuse(s, iq, StanzaCondition.Conflict, "this user name is taken");
          x.log.info("xmpp account registered", { user, remote: ip });
          s.send(new Element("iq", { type: "result", id: iq.attrs.id }));
        },
        (e) => {
          x.log.warn("xmpp registration: account store unavailable", { error: (e as Error).message });
          if (s.phase !== Phase.Closing) refuse(s, iq, StanzaCondition.InternalServerError, "the account could not be stored");
        },
      )
      .finally(() => s.release());
  }

  // ---- logged in: to the server (or with no `to`, the account) ----------------------

  const loggedIn = (e: IqEvent): boolean => {
    const { session: s, stanza: iq, child: q } = e;
    if (e.type === "get") {
      // §3.2: what the entity is registered with.
      const r = new Element("query", { xmlns: NS.REGISTER });
      r.c("registered");
      r.c("username").t(s.user);
      r.c("password");
      iqResultFor(s, iq, r);
      return true;
    }
    if (q.getChild("remove") !== undefined) {
      if (!R.remove) return refuse(s, iq, StanzaCondition.NotAllowed, "account removal is disabled"), true;
      remove(s, iq);
      return true;
    }
    if (!R.passwordChange) return refuse(s, iq, StanzaCondition.NotAllowed, "password change is disabled"), true;
    const name = field(q, "username");
    const password = field(q, "password");
    // §3.3: the username names this account.
    if (name !== null && Authenticator.normalizeUser(name.trim()) !== s.user) return refuse(s, iq, StanzaCondition.BadRequest, "the username is not this account's"), true;
    if (password === null || password.length === 0 || Buffer.byteLength(password) > MAX_PASSWORD_BYTES) return refuse(s, iq, StanzaCondition.NotAcceptable, "the password must be 1 to 1024 bytes"), true;
    const user = s.user;
    deriveCredentials(password, x.config.auth.scramIterations)
      .then((creds) => x.accounts.putUser(user, creds))
      .then(
        () => {
          x.log.info("xmpp password changed", { user });
          iqResultFor(s, iq);
        },
        (e) => {
          x.log.warn("xmpp password change: account store unavailable", { error: (e as Error).message });
          refuse(s, iq, StanzaCondition.InternalServerError, "the password could not be stored");
        },
      );
    return true;
  };
  hooks.iq("host", NS.REGISTER, loggedIn);
  hooks.iq("self", NS.REGISTER, loggedIn);

  /** §3.2: the account goes; the answer, then this stream ends (<not-authorized/>, as the XEP's example). */
  function remove(s: ClientSession, iq: Element): void {
    const user = s.user;
    x.accounts.deleteUser(user).then(
      () => {
        x.log.info("xmpp account removed", { user });
        iqResultFor(s, iq);
        s.fail(new StreamError(StreamCondition.NotAuthorized, "the account was removed"));
      },
      (e) => {
        x.log.warn("xmpp account removal: account store unavailable", { error: (e as Error).message });
        refuse(s, iq, StanzaCondition.InternalServerError, "the account could not be removed");
      },
    );
  }
}
