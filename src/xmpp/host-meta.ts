import type { IncomingMessage, ServerResponse } from "node:http";
import type { ListenerConfig } from "../config/config.js";

/** XEP-0156 §3: the link relation naming an RFC 7395 endpoint. */
const REL_WEBSOCKET = "urn:xmpp:alt-connections:websocket";

/** A Host header we can put in a URL unescaped: a name or address and an optional port. */
const HOST = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/;

/**
 * Serves /.well-known/host-meta (XRD) and host-meta.json (XEP-0156 §3) on an
 * xmpp websocket listener, so that a web client given only the domain finds
 * the WebSocket URL. The URL is built from the Host the client used to reach
 * us; `fallbackHost` stands in when the header is missing or odd.
 */
export function hostMetaHandler(l: ListenerConfig, fallbackHost: () => string): (req: IncomingMessage, res: ServerResponse) => void {
  const scheme = l.tls !== undefined ? "wss" : "ws";
  const path = l.path ?? "/";
  return (req, res) => {
    const url = (req.url ?? "").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") return void res.writeHead(405, { allow: "GET, HEAD" }).end();
    const json = url === "/.well-known/host-meta.json";
    if (!json && url !== "/.well-known/host-meta") return void res.writeHead(404).end();
    const host = req.headers.host !== undefined && HOST.test(req.headers.host) ? req.headers.host : fallbackHost();
    const href = `${scheme}://${host}${path}`;
    const body = json
      ? JSON.stringify({ links: [{ rel: REL_WEBSOCKET, href }] })
      : `<?xml version='1.0' encoding='utf-8'?>\n<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n  <Link rel='${REL_WEBSOCKET}' href='${escapeAttr(href)}'/>\n</XRD>\n`;
    res.writeHead(200, {
      "content-type": json ? "application/json" : "application/xrd+xml",
      // XEP-0156 §3: web clients on other origins read it.
      "access-control-allow-origin": "*",
      "content-length": Buffer.byteLength(body),
    });
    res.end(req.method === "HEAD" ? undefined : body);
  };
}

function escapeAttr(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/'/g, "&apos;").replace(/</g, "&lt;");
}
