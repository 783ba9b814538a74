import { createHash, randomBytes } from "node:crypto";
import { Element } from "ltx";
import { StreamCondition, StreamError } from "../errors.js";
import { Ev, type Hooks } from "../hooks.js";
import { NS } from "../ns.js";
import { encryptionRequired } from "../policy.js";
import { Phase, type ClientSession } from "../client-session.js";
import type { XmppContext } from "../context.js";
import type { SmInline } from "../modules/stream-management.js";
import { clientPart } from "../../address/address.js";
import { SaslCondition, SaslFailure } from "./scram.js";
import { admit, advance, authFailed, decode, mechanisms, passwordExchange, type Exchange, type Outcome } from "./exchange.js";

/** XEP-0388 §2.3: the user-agent id identifies one installation; longer ones are refused, not cut. */
const MAX_AGENT_ID = 256;
/** XEP-0386 §3.2: the tag names the client software; the resource is the tag and a part the server makes (bind2Resource). */
const MAX_TAG = 64;

/** What FAST (fast.ts) gives SASL2: its mechanisms, their exchanges, and the token after success. */
export interface FastAuth {
  /** The FAST mechanisms this connection may use (none without TLS). */
  mechanisms(s: ClientSession): string[];
  /** An exchange of one of them, for the client `agent` (its user-agent id); `fast` is the <fast/> the client sent. */
  exchange(s: ClientSession, mech: string, agent: string, fast: Element | undefined): Exchange;
  /**
   * After a success: invalidation and rotation (XEP-0484 §3.4, §3.5), and a new token when asked for. Resolves
   * to the <token/> to put in <success/> ("" none); never rejects (a token that could not be stored is not given).
   */
  settle(s: ClientSession, ex: Exchange | null, user: string, agent: string, req: Element): Promise<string>;
}

/** The session's SASL2 exchange in progress (ClientSession.sasl): not an Exchange, so RFC 6120's <response/> cannot drive it. */
class Sasl2State {
  constructor(
    readonly ex: Exchange,
    readonly req: Element,
    readonly agent: string,
    readonly fast: boolean,
  ) {}
}

/**
 * XEP-0388 SASL2 beside RFC 6120 SASL, on the same mechanisms (exchange.ts),
 * with XEP-0386 Bind2, XEP-0198 inline (resume in <authenticate/>, enable in
 * <bind/>), XEP-0280 carbons inline and XEP-0484 FAST. A client is bound,
 * resumed, or carbons-enabled in the round trip that authenticates it.
 */
export function sasl2Module(hooks: Hooks, x: XmppContext, sm: SmInline, fast: FastAuth | null): void {
  if (!x.config.xmpp.sasl2.enabled) return;

  hooks.on(Ev.StreamFeatures, ({ session, features }) => {
    if (session.phase !== Phase.Negotiating || encryptionRequired(x.config.xmpp, session)) return;
    const auth = features.c("authentication", { xmlns: NS.SASL2 });
    for (const m of mechanisms(session, x)) auth.c("mechanism").t(m);
    const inline = auth.c("inline");
    // XEP-0386 §3.1: what may be enabled inside <bind/>.
    const bind = inline.c("bind", { xmlns: NS.BIND2 }).c("inline");
    bind.c("feature", { var: NS.CARBONS });
    bind.c("feature", { var: NS.SM });
    // XEP-0198 §5 inline: a <resume/> inside <authenticate/>.
    inline.c("sm", { xmlns: NS.SM });
    const fm = fast?.mechanisms(session) ?? [];
    if (fm.length > 0) {
      const f = inline.c("fast", { xmlns: NS.FAST });
      for (const m of fm) f.c("mechanism").t(m);
    }
  });

  hooks.on(Ev.Negotiation, ({ session, stanza }) => {
    if (stanza.attrs.xmlns !== NS.SASL2) return false;
    if (session.phase !== Phase.Negotiating) throw new StreamError(StreamCondition.PolicyViolation, "already authenticated");
    const failed = (e: SaslFailure) => authFailed(session, e, x, NS.SASL2);
    try {
      switch (stanza.name) {
        case "abort":
          session.sasl = null;
          throw new SaslFailure(SaslCondition.Aborted);
        case "authenticate":
          authenticate(session, stanza, failed);
          break;
        case "response": {
          const st = session.sasl;
          if (!(st instanceof Sasl2State)) throw new SaslFailure(SaslCondition.MalformedRequest, "no exchange in progress");
          advance(session, st.ex, decode(stanza.getText()), (o) => outcome(session, st, o), failed, st);
          break;
        }
        default:
          throw new SaslFailure(SaslCondition.MalformedRequest, `unexpected <${stanza.name}>`);
      }
    } catch (e) {
      if (!(e instanceof SaslFailure)) throw e;
      failed(e);
    }
    return true;
  });

  function authenticate(s: ClientSession, req: Element, failed: (e: SaslFailure) => void): void {
    const mech = req.attrs.mechanism ?? "";
    const fm = fast?.mechanisms(s) ?? [];
    const isFast = fm.includes(mech);
    admit(s, x, mech, [...mechanisms(s, x), ...fm], (xml) => s.send(xml), NS.SASL2);
    const ua = req.getChild("user-agent");
    const agent = ua?.attrs.id ?? "";
    if (agent.length > MAX_AGENT_ID) throw new SaslFailure(SaslCondition.MalformedRequest, "user-agent id too long");
    const initial = decode(req.getChildText("initial-response") ?? "");
    const ex = isFast ? fast!.exchange(s, mech, agent, req.getChild("fast", NS.FAST)) : passwordExchange(s, mech, x);
    const st = new Sasl2State(ex, req, agent, isFast);
    s.sasl = st;
    advance(s, ex, initial, (o) => outcome(s, st, o), failed, st);
  }

  function outcome(s: ClientSession, st: Sasl2State, o: Outcome): void {
    if (o.kind === "challenge") return s.send(`<challenge xmlns='${NS.SASL2}'>${o.data.toString("base64")}</challenge>`);
    s.sasl = null;
    s.authenticated(o.user);
    if (x.debug) x.log.debug("xmpp authenticated (SASL2)", { user: o.user, remote: s.conn.remoteAddress, fast: st.fast });
    const extra = o.data === null ? "" : `<additional-data>${o.data.toString("base64")}</additional-data>`;
    // Input waits until the client is told: the token is stored, the resumption decided.
    s.hold();
    const tokenP = fast === null ? Promise.resolve("") : fast.settle(s, st.fast ? st.ex : null, o.user, st.agent, st.req);
    void tokenP.then((token) => {
      try {
        if (s.phase === Phase.Authenticated) finish(s, st, extra + token);
      } catch (e) {
        s.fail(e);
      }
      s.release();
    });
  }

  /** After the token: the inline resumption, else Bind2 (or nothing bound). */
  function finish(s: ClientSession, st: Sasl2State, head: string): void {
    const resume = st.req.getChild("resume", NS.SM);
    if (resume === undefined) return bindOrNot(s, st.req, st.agent, head, "");
    sm.resume(s, resume, {
      resumed(owner, xml, address) {
        // XEP-0198 inline: the resumed session's full JID; the stanzas sent again follow the <success/>. A
        // resumed session is bound: its features are empty, whatever step of its restoration it is at.
        owner.sendNonza(`<success xmlns='${NS.SASL2}'>${head}${aid(address)}${xml}</success>`);
        owner.sendFeatures(true);
      },
      failed(xml) {
        // Authenticated all the same: the client binds, inline if it asked to.
        bindOrNot(s, st.req, st.agent, head, xml);
      },
    });
  }

  /** <success/> with Bind2's <bound/> when the client asked for it (XEP-0386 §3.2), else unbound; then the features. */
  function bindOrNot(s: ClientSession, req: Element, agent: string, head: string, smFailed: string): void {
    const bind = req.getChild("bind", NS.BIND2);
    if (bind === undefined) {
      s.sendNonza(`<success xmlns='${NS.SASL2}'>${head}${aid(s.bare)}${smFailed}</success>`);
      s.sendFeatures();
      return;
    }
    const resource = bind2Resource(s.bare, agent, bind.getChildText("tag") ?? "");
    // §3.2: with a user-agent id, the server's part names the client; its earlier sessions (any tag) end at bind.
    const client = agent === "" ? "" : clientPart(resource);
    let bound = "";
    let afterBind: (() => void) | null = null;
    const enable = bind.getChild("enable", NS.SM);
    if (enable !== undefined) {
      const e = sm.enable(s, enable);
      bound += e.xml;
      afterBind = e.bound;
    }
    // XEP-0280 §4 inline: enabled with the binding, told to the owner with it.
    if (bind.getChild("enable", NS.CARBONS) !== undefined) s.wantsCopies = true;
    s.sendNonza(`<success xmlns='${NS.SASL2}'>${head}${aid(`${s.bare}/${resource}`)}${smFailed}<bound xmlns='${NS.BIND2}'>${bound}</bound></success>`);
    s.bind(resource, client);
    afterBind?.();
    if (s.wantsCopies) s.presenceChanged();
    s.sendFeatures();
  }
}

/**
 * XEP-0386 §3.2.1 (resource identifier generation): the client's tag (spaces, control characters, `/` and `@`
 * removed, so that the resource's first `/` ends the tag), a `/` (the format §3.2.1 recommends), and 48 bits the
 * server makes (`phone/Xa9_3kQ2`; without a tag, those alone). With a user-agent id (XEP-0388) they are stable, a
 * hash of the account and the id: a client keeps its full JID across reconnects, on any worker or host, and its new
 * binding replaces its own earlier session (RFC 6120 §7.7.2.2 conflict). Being the same under every tag, they also
 * name the client (clientPart, Session.client): its owner ends the client's earlier sessions under other tags (§3.2:
 * the server SHOULD end any earlier sessions of the same client). The hash does not expose the id (§3.2.1) and
 * differs between accounts. Without an id: random.
 */
export function bind2Resource(bare: string, agent: string, tag: string): string {
  const t = tag.replace(/[\u0000-\u0020\u007f/@]/g, "").slice(0, MAX_TAG);
  const made = agent === "" ? randomBytes(6) : createHash("sha256").update(`${bare}\u0000${agent}`).digest().subarray(0, 6);
  return (t === "" ? "" : `${t}/`) + made.toString("base64url");
}

function aid(jid: string): string {
  return new Element("authorization-identifier").t(jid).toString();
}
