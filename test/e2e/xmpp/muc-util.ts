import { xml } from "@xmpp/client";
import type { Online } from "./util.js";

export const MUC = "http://jabber.org/protocol/muc";
export const MUC_USER = "http://jabber.org/protocol/muc#user";
export const MUC_ADMIN = "http://jabber.org/protocol/muc#admin";
export const MUC_OWNER = "http://jabber.org/protocol/muc#owner";
export const SERVICE = "conference.localhost";

/** The status codes of a MUC presence or message. */
export function codes(el: any): number[] {
  const x = el.getChild("x", MUC_USER);
  return x === undefined ? [] : x.getChildren("status").map((s: any) => Number(s.attrs.code));
}

export const itemOf = (el: any): any => el.getChild("x", MUC_USER)?.getChild("item");

/** A presence from `from` (room/nick) with these codes among its own. */
export const presenceFrom = (from: string, ...want: number[]) => (el: any) => el.is("presence") && el.attrs.from === from && want.every((c) => codes(el).includes(c));

/** The error condition of a stanza, or "". */
export function errorOf(el: any): string {
  const e = el.getChild("error");
  if (e === undefined) return "";
  return e.children.find((c: any) => typeof c !== "string" && c.attrs.xmlns === "urn:ietf:params:xml:ns:xmpp-stanzas" && c.name !== "text")?.name ?? "";
}

let ids = 0;

/** Sends a join; `x` children added to <x xmlns=muc/> (history, password). Resolves with the self-presence (110) or the error presence. */
export async function join(o: Online, room: string, nick: string, ...x: any[]): Promise<any> {
  await o.c.send(xml("presence", { to: `${room}/${nick}` }, xml("x", { xmlns: MUC }, ...x)));
  return o.waitFor((el) => el.is("presence") && el.attrs.from?.startsWith(`${room}/`) && (el.attrs.type === "error" || codes(el).includes(110)), 8000);
}

/** An iq to `to` and its answer (result or error). */
export async function iq(o: Online, to: string, type: "get" | "set", child: any): Promise<any> {
  const id = `q${++ids}`;
  await o.c.send(xml("iq", { to, type, id }, child));
  return o.waitFor((el) => el.is("iq") && el.attrs.id === id, 8000);
}

/** §10.1.2: the owner accepts the default configuration (an instant room). */
export async function instant(o: Online, room: string): Promise<void> {
  const r = await iq(o, room, "set", xml("query", { xmlns: MUC_OWNER }, xml("x", { xmlns: "jabber:x:data", type: "submit" })));
  if (r.attrs.type !== "result") throw new Error(`instant room refused: ${r}`);
}

/** Submits muc#roomconfig fields. */
export async function configure(o: Online, room: string, fields: Record<string, string>): Promise<any> {
  const f = Object.entries(fields).map(([k, v]) => xml("field", { var: k }, xml("value", {}, v)));
  return iq(o, room, "set", xml("query", { xmlns: MUC_OWNER }, xml("x", { xmlns: "jabber:x:data", type: "submit" }, xml("field", { var: "FORM_TYPE" }, xml("value", {}, "http://jabber.org/protocol/muc#roomconfig")), ...f)));
}

export function groupchat(o: Online, room: string, body: string): Promise<void> {
  return o.c.send(xml("message", { to: room, type: "groupchat" }, xml("body", {}, body)));
}

export const bodyFrom = (from: string, body: string) => (el: any) => el.is("message") && el.attrs.from === from && el.getChildText("body") === body;

export async function admin(o: Online, room: string, item: Record<string, string>, reason?: string): Promise<any> {
  return iq(o, room, "set", xml("query", { xmlns: MUC_ADMIN }, xml("item", item, ...(reason === undefined ? [] : [xml("reason", {}, reason)]))));
}

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join as pathJoin } from "node:path";
import { validate } from "../../../src/config/config.js";
import { Server } from "../../../src/server/server.js";
import { LocalHub } from "../../../src/cluster/local-bus.js";
import { silentLogger } from "../../../src/log/logger.js";
import { deriveCredentials } from "../../../src/store/scram.js";
import { online } from "./util.js";
import { TLS_FILES } from "../../helpers.js";

/** Two workers in one process on a LocalHub, each with its own xmpp listener; users `<name>`/`<name>-pass`. */
export async function startPair(users: string[], muc: Record<string, unknown> = {}, storage?: Record<string, unknown>, tls = false): Promise<{ a: Server; b: Server; portA: number; portB: number; stop(): Promise<void> }> {
  const dir = mkdtempSync(pathJoin(tmpdir(), "switchboard-muc-"));
  const hub = new LocalHub(64);
  const c = validate({
    storage: storage ?? { type: "sqlite", path: pathJoin(dir, "db.sqlite") },
    listeners: [{ protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port: 0, ...(tls ? { tls: TLS_FILES } : {}) }],
    muc: { enabled: true, ...muc },
    // Raw clients (util.ts rawLogin) authenticate with PLAIN on loopback.
    xmpp: { allowPlainWithoutTls: true },
  });
  const a = await Server.start(c, { log: silentLogger(), hub, workerId: "w0" });
  const b = await Server.start(c, { log: silentLogger(), hub, workerId: "w1" });
  for (const u of users) await a.store.putUser(u, await deriveCredentials(`${u}-pass`, c.auth.scramIterations));
  return {
    a,
    b,
    portA: a.port("xmpp", "tcp"),
    portB: b.port("xmpp", "tcp"),
    async stop() {
      await a.stop();
      await b.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Logs users in, alternating between the two ports (the first on A). */
export function usersOn(ports: [number, number], ...names: string[]): Promise<Online[]> {
  return Promise.all(names.map((n, i) => online(ports[i % 2], n, `${n}-pass`, { resource: "r" })));
}

/** A room made by `owner` and opened as an instant room. */
export async function openRoom(owner: Online, room: string, nick: string): Promise<void> {
  await join(owner, room, nick);
  await instant(owner, room);
}
