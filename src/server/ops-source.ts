import type { OpsSession, OpsSource } from "../cluster/ops.js";
import type { Session } from "../session/session.js";
import { bareOf } from "../address/address.js";

/**
 * What `switchboard cluster status` and `switchboard sessions` learn of this
 * worker: its sessions (ProxyDaemon.sessions) in protocol-neutral terms. Read
 * only when an operator asks.
 */
export function opsSource(sessions: ReadonlyMap<string, Session>): OpsSource {
  // A session that moved to another worker stays in the map until it is forgotten here: it is counted there.
  const here = (s: Session) => s.movedTo === null && !s.closed;
  return {
    counts() {
      let n = 0;
      let detached = 0;
      for (const s of sessions.values()) {
        if (!here(s)) continue;
        n++;
        if (s.suspended) detached++;
      }
      return { sessions: n, detached };
    },
    sessions(match) {
      const out: OpsSession[] = [];
      for (const s of sessions.values()) {
        if (!here(s)) continue;
        if (match !== null && s.address !== match && bareOf(s.address) !== match) continue;
        out.push({ jid: s.address, protocol: s.protocol, since: s.since, available: s.available, resumable: s.resumable, detached: s.suspended });
      }
      return out;
    },
  };
}
