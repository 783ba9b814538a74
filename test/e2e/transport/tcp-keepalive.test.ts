import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { connect as tcpConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import type { IncomingMessage } from "node:http";
import { WebSocket } from "ws";
import { CA, TLS_FILES, startServer, waitUntil, type TestServer } from "../../helpers.js";

// Node cannot read SO_KEEPALIVE back (no getsockopt), and a mock of setKeepAlive
// would prove nothing. Linux shows it instead: in /proc/net/tcp the "tr" column
// of a socket is 2 while its keepalive timer (sk_timer) is pending, and an idle
// established socket without keepalive has no timer (0). We read the server's
// side of real loopback connections.

const PROC = "/proc/net/tcp";
const readable = ((): boolean => {
  try {
    return readFileSync(PROC, "utf8").length > 0;
  } catch {
    return false;
  }
})();
const skip = readable ? false : `${PROC} is not readable here (not Linux?)`;

const hexPort = (p: number): string => p.toString(16).toUpperCase().padStart(4, "0");

/** The timer kind ("tr") of the server's socket from `serverPort` to the client's `clientPort`, or null if not listed. */
function serverTimer(serverPort: number, clientPort: number): number | null {
  const local = `0100007F:${hexPort(serverPort)}`;
  const remote = `0100007F:${hexPort(clientPort)}`;
  for (const line of readFileSync(PROC, "utf8").split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    // sl local rem st tx:rx tr:when …; st 01 = ESTABLISHED
    if (f[1] === local && f[2] === remote && f[3] === "01") return parseInt(f[5].split(":")[0], 16);
  }
  return null;
}

interface Client {
  localPort: number;
  close(): void;
}

/** A real client of each transport, connected (TLS handshake and WebSocket upgrade done). */
async function connectClient(ts: TestServer, protocol: "relay" | "xmpp", transport: string): Promise<Client> {
  const port = ts.port(protocol, transport);
  if (transport === "websocket") {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/relay`);
    const sock = await new Promise<Socket>((resolve, reject) => {
      ws.once("upgrade", (res: IncomingMessage) => resolve(res.socket as Socket));
      ws.once("error", reject);
    });
    return { localPort: sock.localPort!, close: () => ws.terminate() };
  }
  const sock: Socket =
    transport === "tls"
      ? await new Promise((resolve, reject) => {
          const s = tlsConnect({ port, host: "127.0.0.1", ca: CA, servername: "localhost" }, () => resolve(s));
          s.once("error", reject);
        })
      : await new Promise((resolve, reject) => {
          const s = tcpConnect({ port, host: "127.0.0.1" }, () => resolve(s));
          s.once("error", reject);
        });
  sock.on("error", () => {});
  return { localPort: sock.localPort!, close: () => sock.destroy() };
}

const KINDS: ["relay" | "xmpp", string][] = [
  ["relay", "tcp"],
  ["relay", "tls"],
  ["relay", "websocket"],
  ["xmpp", "tcp"],
];

function listeners(): Record<string, unknown>[] {
  return [
    { protocol: "relay", transport: "tcp", host: "127.0.0.1", port: 0 },
    { protocol: "relay", transport: "tls", host: "127.0.0.1", port: 0, tls: TLS_FILES },
    { protocol: "relay", transport: "websocket", host: "127.0.0.1", port: 0, path: "/relay" },
    { protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port: 0 },
  ];
}

for (const [keepAlive, timer, what] of [
  [60000, 2, "on: the server's side of every transport has its keepalive timer running"],
  [0, 0, "off (0): no timer on an idle server socket"],
] as const) {
  test(`limits.tcpKeepAliveMs ${keepAlive}: ${what}`, { timeout: 15_000, skip }, async () => {
    const ts = await startServer({ listeners: listeners(), limits: { tcpKeepAliveMs: keepAlive } });
    try {
      for (const [protocol, transport] of KINDS) {
        const c = await connectClient(ts, protocol, transport);
        const serverPort = ts.port(protocol, transport);
        // Until the kernel has settled the handshake's last segments (no retransmit timer, 1, left).
        await waitUntil(() => serverTimer(serverPort, c.localPort) === timer, 3000, () => `${protocol}/${transport}: tr ${serverTimer(serverPort, c.localPort)}, expected ${timer}`);
        c.close();
      }
    } finally {
      await ts.stop();
    }
  });
}
