import type { Element } from "ltx";
import type { FastStore } from "../../store/fast-store.js";
import type { ClientSession } from "../client-session.js";
import type { XmppContext } from "../context.js";
import { NS } from "../ns.js";
import type { Exchange } from "./exchange.js";
import { HT_MECHANISMS, HtExchange, newToken, type HtMechanism } from "./ht.js";
import { SaslCondition, SaslFailure } from "./scram.js";
import type { FastAuth } from "./sasl2.js";

/** Clients (user-agent ids) with tokens per account; past it, those whose tokens expire first lose them. */
const MAX_CLIENTS = 32;

/**
 * XEP-0484 FAST on the token store: HT mechanisms for the connection's
 * channel bindings, tokens issued on <request-token/> or when the used one nears
 * expiry (xmpp.fast.rotateBeforeMs), the previous one valid until the new one
 * is used (§3.5), <fast invalidate='true'/> revoking the client's tokens (§3.6).
 */
export function fastAuth(x: XmppContext, store: FastStore): FastAuth {
  const cfg = x.config.xmpp.fast;
  const unavailable = (e: Error) => x.log.warn("xmpp FAST: token store unavailable", { error: e.message });

  function mechanisms(s: ClientSession): HtMechanism[] {
    // §6: a token sent in the clear could be replayed by anyone who saw it.
    if (!s.secure) return [];
    const out: HtMechanism[] = [];
    for (const [m, type] of Object.entries(HT_MECHANISMS) as [HtMechanism, (typeof HT_MECHANISMS)[HtMechanism]][]) {
      if (type === null || s.conn.channelBinding(type) !== null) out.push(m);
    }
    return out;
  }

  return {
    mechanisms,

    exchange(s: ClientSession, mech: string, agent: string, fast: Element | undefined): Exchange {
      const type = HT_MECHANISMS[mech as HtMechanism];
      const cb = type === null ? Buffer.alloc(0) : s.conn.channelBinding(type);
      if (cb === null) throw new SaslFailure(SaslCondition.InvalidMechanism);
      const c = fast?.attrs.count;
      if (c !== undefined && !/^[1-9][0-9]{0,14}$/.test(c)) throw new SaslFailure(SaslCondition.MalformedRequest, "count must be a positive integer");
      return new HtExchange({ mechanism: mech as HtMechanism, cb, agent, count: c === undefined ? 0 : Number(c), store, unavailable });
    },

    async settle(s, ex, user, agent, req) {
      const used = ex instanceof HtExchange ? ex.used : null;
      const f = req.getChild("fast", NS.FAST);
      const invalidate = used !== null && (f?.attrs.invalidate === "true" || f?.attrs.invalidate === "1");
      try {
        if (invalidate) await store.revokeFastTokens(user, agent);
        const asked = req.getChild("request-token", NS.FAST)?.attrs.mechanism;
        let mech: string | null = null;
        if (asked !== undefined && (mechanisms(s) as string[]).includes(asked)) mech = asked;
        // §3.5: rotation when the token used nears its expiry; never for one just invalidated.
        else if (used !== null && !invalidate && cfg.rotateBeforeMs > 0 && used.expiresAt - Date.now() < cfg.rotateBeforeMs) mech = used.mechanism;
        if (mech === null || agent === "" || !s.secure) return "";
        const { token, hash } = newToken();
        const expiresAt = Date.now() + cfg.tokenLifetimeMs;
        await store.issueFastToken(user, agent, { mechanism: mech, hash, expiresAt }, MAX_CLIENTS);
        if (x.debug) x.log.debug("xmpp FAST token issued", { user, mechanism: mech });
        return `<token xmlns='${NS.FAST}' expiry='${new Date(expiresAt).toISOString()}' token='${token}'/>`;
      } catch (e) {
        // Authenticated all the same; without a token the client keeps its password (or its previous token).
        unavailable(e as Error);
        return "";
      }
    },
  };
}
