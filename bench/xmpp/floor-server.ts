/**
 * `--target floor`: the least a Node.js server can do for this benchmark, as a
 * yardstick measured under the same generator, pinning and schedule. It does
 * no XMPP work: it takes any PLAIN login without checking it, binds without
 * looking, and copies each <message/>'s bytes unchanged to the socket of the
 * user its `to` names. What a real server costs above this is its own work;
 * what this costs is Node.js's sockets, the kernel's loopback and the machine.
 *
 *   node dist/bench/xmpp/floor-server.js PORT
 */
import { createServer, type Socket } from "node:net";

const NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl";
const NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind";
const port = Number(process.argv[2]);
const online = new Map<string, Socket>();

interface Conn {
  user: string;
  authed: boolean;
  bound: boolean;
  buf: string;
}

function header(s: Socket, c: Conn): void {
  const features = c.authed ? `<bind xmlns='${NS_BIND}'/>` : `<mechanisms xmlns='${NS_SASL}'><mechanism>PLAIN</mechanism></mechanisms>`;
  s.write(`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='localhost' id='f' version='1.0'><stream:features>${features}</stream:features>`);
}

function login(s: Socket, c: Conn, b: string): string {
  if (b.includes("<stream:stream")) {
    header(s, c);
    return "";
  }
  const auth = /<auth[^>]*>([^<]*)<\/auth>/.exec(b);
  if (auth !== null) {
    c.user = Buffer.from(auth[1], "base64").toString("utf8").split("\0")[1] ?? "";
    c.authed = true;
    s.write(`<success xmlns='${NS_SASL}'/>`);
    return "";
  }
  const bind = /<iq[^>]*id=['"]([^'"]+)['"][^>]*>.*<\/iq>/.exec(b);
  if (bind !== null) {
    c.bound = true;
    online.set(c.user, s);
    s.write(`<iq type='result' id='${bind[1]}'><bind xmlns='${NS_BIND}'><jid>${c.user}@localhost/g</jid></bind></iq>`);
    return "";
  }
  return b;
}

/** Forwards every whole <message>…</message> in b; returns what is left of an unfinished one. */
function forward(b: string): string {
  let at = 0;
  for (;;) {
    const open = b.indexOf("<message", at);
    if (open < 0) return "";
    const close = b.indexOf("</message>", open);
    if (close < 0) return b.slice(open);
    const end = close + 10;
    const to = b.indexOf("to='", open);
    if (to >= 0 && to < close) {
      const peer = online.get(b.slice(to + 4, b.indexOf("@", to)));
      peer?.write(b.slice(open, end));
    }
    at = end;
  }
}

createServer((s) => {
  const c: Conn = { user: "", authed: false, bound: false, buf: "" };
  s.setNoDelay(true);
  s.setEncoding("utf8");
  s.on("data", (d: string) => {
    const b = c.buf.length > 0 ? c.buf + d : d;
    c.buf = c.bound ? forward(b) : login(s, c, b);
  });
  s.on("error", () => {});
  s.on("close", () => {
    if (online.get(c.user) === s) online.delete(c.user);
  });
}).listen({ port, host: "127.0.0.1", backlog: 4096 });
process.on("SIGTERM", () => process.exit(0));
