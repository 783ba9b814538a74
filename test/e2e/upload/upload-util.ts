import { connect, type Socket } from "node:net";
import { xml } from "@xmpp/client";
import type { Online } from "../xmpp/util.js";

export const UPLOAD_NS = "urn:xmpp:http:upload:0";

export interface SlotUrls {
  put: string;
  get: string;
  auth: string;
}

/** A slot request from `c` to the service; the answer's URLs and Authorization header (rejects with the XMPPError). */
export async function requestSlot(c: Online, filename: string, size: number, type?: string, service = "upload.localhost"): Promise<SlotUrls> {
  const attrs: Record<string, string> = { xmlns: UPLOAD_NS, filename, size: String(size) };
  if (type !== undefined) attrs["content-type"] = type;
  const res = await c.c.iqCaller.request(xml("iq", { type: "get", to: service }, xml("request", attrs)));
  const slot = res.getChild("slot", UPLOAD_NS);
  const put = slot.getChild("put");
  return { put: put.attrs.url, get: slot.getChild("get").attrs.url, auth: put.getChild("header").text() };
}

/** The error a slot request ends with: condition, text, and the XEP-0363 element beside them. */
export async function slotError(c: Online, filename: string, size: number | string, type?: string): Promise<{ condition: string; text: string; app: any }> {
  try {
    const attrs: Record<string, string> = { xmlns: UPLOAD_NS, filename, size: String(size) };
    if (type !== undefined) attrs["content-type"] = type;
    await c.c.iqCaller.request(xml("iq", { type: "get", to: "upload.localhost" }, xml("request", attrs)));
  } catch (e: any) {
    return { condition: e.condition, text: e.text, app: e.application };
  }
  throw new Error("the slot was given");
}

export async function putFile(s: SlotUrls, body: Buffer, type = "application/octet-stream"): Promise<{ status: number; text: string }> {
  const r = await fetch(s.put, { method: "PUT", body: new Uint8Array(body), headers: { Authorization: s.auth, "Content-Type": type }, signal: AbortSignal.timeout(20_000) });
  return { status: r.status, text: await r.text() };
}

/** Raw HTTP on one connection: what the server wrote until it closed (or `ms` passed: then "(open)" is appended). */
export function rawHttp(port: number, write: (s: Socket) => void, ms: number): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, "127.0.0.1");
    let text = "";
    const t = setTimeout(() => {
      s.destroy();
      resolve(`${text}(open)`);
    }, ms);
    s.setEncoding("latin1");
    s.on("data", (d: string) => (text += d));
    s.on("error", () => {});
    s.on("close", () => {
      clearTimeout(t);
      resolve(text);
    });
    s.on("connect", () => write(s));
  });
}
