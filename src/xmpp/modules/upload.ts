import { Element } from "ltx";
import type { UploadConfig } from "../../config/config.js";
import { StanzaCondition, stanzaError } from "../errors.js";
import { NS } from "../ns.js";
import { bounce, iqResultFor } from "../replies.js";
import { Ev, type Hooks, type ServiceEvent } from "../hooks.js";
import type { XmppContext } from "../context.js";
import type { ClientSession } from "../client-session.js";
import type { Disco } from "./disco.js";
import { held } from "./roster-items.js";
import { UploadFiles, retryAt } from "../../upload/files.js";
import { newSlotId, signSlot, slotPath, userKey } from "../../upload/slot.js";
import { contentTypeProblem, filenameProblem } from "../../upload/names.js";

/** What the XMPP side of the upload service needs: its config, the signing key, and the URL the host's listener is reached at. */
export interface UploadService {
  cfg: UploadConfig;
  key: Buffer;
  /** upload.publicUrl, or the listener's own address (the host's primary tells its workers). */
  baseUrl: string;
}

const DEFAULT_TYPE = "application/octet-stream";

/**
 * XEP-0363 HTTP File Upload, the XMPP side: the service answers at its own
 * address (upload.<domain>), listed in the server's disco#items, with its
 * limit in a XEP-0128 form (§3), and gives slots (§4): a PUT URL with a signed
 * Authorization header and a GET URL, both on the host's HTTP listener
 * (src/upload/http.ts). Any worker answers for the sessions it holds: a slot is
 * checked by its signature, not looked up.
 */
export function uploadModule(hooks: Hooks, x: XmppContext, disco: Disco, svc: UploadService): void {
  const domain = svc.cfg.domain!;
  const files = new UploadFiles(svc.cfg.path!);
  disco.serverItem({ jid: domain, name: "HTTP File Upload" });
  hooks.on(Ev.Service, (e) => {
    if (e.domain !== domain) return false;
    const { session: s, stanza } = e;
    if (stanza.name === "presence") return true;
    if (stanza.name === "message") return bounce(s, stanza, StanzaCondition.ServiceUnavailable), true;
    const type = stanza.attrs.type;
    if (type === "result" || type === "error") return true;
    const kids = stanza.getChildElements();
    // RFC 6120 §8.2.3: get and set carry an id and exactly one child.
    if ((type !== "get" && type !== "set") || stanza.attrs.id === undefined || kids.length !== 1) return bounce(s, stanza, StanzaCondition.BadRequest), true;
    const child = kids[0];
    const ns = child.attrs.xmlns;
    // Only the service's own address has anything to say; the node-less disco queries, the request, a ping.
    if (e.to !== domain || type !== "get") return bounce(s, stanza, StanzaCondition.ServiceUnavailable), true;
    if (ns === NS.DISCO_INFO || ns === NS.DISCO_ITEMS) {
      if (child.attrs.node !== undefined) return bounce(s, stanza, StanzaCondition.ItemNotFound), true;
      return iqResultFor(s, stanza, ns === NS.DISCO_INFO ? info(svc.cfg.maxFileBytes) : new Element("query", { xmlns: NS.DISCO_ITEMS })), true;
    }
    if (ns === NS.PING) return iqResultFor(s, stanza), true;
    if (ns === NS.HTTP_UPLOAD && child.name === "request") return requestSlot(e, child, x, svc, files), true;
    return bounce(s, stanza, StanzaCondition.ServiceUnavailable), true;
  });
}

/** §3: identity store/file, the feature, and max-file-size in a XEP-0128 form. */
function info(maxFileBytes: number): Element {
  const q = new Element("query", { xmlns: NS.DISCO_INFO });
  q.c("identity", { category: "store", type: "file", name: "HTTP File Upload" });
  q.c("feature", { var: NS.DISCO_INFO });
  q.c("feature", { var: NS.HTTP_UPLOAD });
  const form = q.c("x", { xmlns: NS.DATA, type: "result" });
  form.c("field", { var: "FORM_TYPE", type: "hidden" }).c("value").t(NS.HTTP_UPLOAD);
  form.c("field", { var: "max-file-size" }).c("value").t(String(maxFileBytes));
  return q;
}

/** §4 slot request: checks, then the user's usage on disk against the quota, then a signed slot. */
function requestSlot({ session: s, stanza }: ServiceEvent, req: Element, x: XmppContext, svc: UploadService, files: UploadFiles): void {
  const cfg = svc.cfg;
  const name = req.attrs.filename;
  const sizeText = req.attrs.size;
  const type = req.attrs["content-type"] ?? DEFAULT_TYPE;
  if (typeof name !== "string" || typeof sizeText !== "string" || !/^\d{1,15}$/.test(sizeText)) return bounce(s, stanza, StanzaCondition.BadRequest, "filename and size are required");
  const bad = filenameProblem(name) ?? contentTypeProblem(type);
  if (bad !== null) return bounce(s, stanza, StanzaCondition.NotAcceptable, bad);
  const size = Number(sizeText);
  if (size > cfg.maxFileBytes) {
    // §5: not-acceptable with the limit, so the client can tell the user.
    const app = new Element("file-too-large", { xmlns: NS.HTTP_UPLOAD });
    app.c("max-file-size").t(String(cfg.maxFileBytes));
    return refuse(s, stanza, StanzaCondition.NotAcceptable, `File too large: the maximum file size is ${cfg.maxFileBytes} bytes`, app);
  }
  const user = userKey(svc.key, s.bare);
  const slot = () => {
    const sl = { user, id: newSlotId(), name, size, type, expires: Date.now() + cfg.slotTimeoutMs };
    const url = `${svc.baseUrl}${slotPath(sl)}`;
    const el = new Element("slot", { xmlns: NS.HTTP_UPLOAD });
    el.c("put", { url }).c("header", { name: "Authorization" }).t(`Bearer ${signSlot(svc.key, sl)}`);
    el.c("get", { url });
    iqResultFor(s, stanza, el);
  };
  if (cfg.quotaBytes === 0) return slot();
  if (size > cfg.quotaBytes) return refuse(s, stanza, StanzaCondition.ResourceConstraint, `Quota exceeded: a user may hold ${cfg.quotaBytes} bytes`);
  const expiredBefore = cfg.expireAfterMs === 0 ? 0 : Date.now() - cfg.expireAfterMs;
  held(x, s, files.usage(user, expiredBefore), (u) => {
    if (u.bytes + size <= cfg.quotaBytes) return slot();
    // §5: resource-constraint, with when enough of the user's files will have expired.
    const at = retryAt(u, size, cfg.quotaBytes, cfg.expireAfterMs);
    const app = at === null ? undefined : new Element("retry", { xmlns: NS.HTTP_UPLOAD, stamp: new Date(at).toISOString().replace(/\.\d{3}Z$/, "Z") });
    refuse(s, stanza, StanzaCondition.ResourceConstraint, `Quota exceeded: ${u.bytes} of ${cfg.quotaBytes} bytes in use`, app);
  }, () => bounce(s, stanza, StanzaCondition.InternalServerError));
}

/** An error reply with XEP-0363's application-specific element beside the condition. */
function refuse(s: ClientSession, stanza: Element, cond: StanzaCondition, text: string, app?: Element): void {
  const reply = stanzaError(stanza, cond, stanza.attrs.to, s.address, text);
  if (app !== undefined) {
    const err = reply.getChild("error")!;
    err.cnode(app);
  }
  s.send(reply);
}
