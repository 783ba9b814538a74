import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { WebSocket } from "ws";
import { xml } from "@xmpp/client";
import { FIXTURES, startXmppServer, within, xmppListeners } from "../../helpers.js";
import { online } from "./util.js";

const CHROMIUM = "/usr/bin/chromium";
const PAGE = join(FIXTURES, "..", "..", "examples", "websocket.html");
const PATH = "/xmpp-websocket";

/** Headless Chromium with a fresh profile; resolves with its DevTools WebSocket URL. */
async function startChromium(url: string, profile: string): Promise<{ child: ChildProcess; devtools: string }> {
  const child = spawn(
    CHROMIUM,
    [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      `--user-data-dir=${profile}`,
      "--remote-debugging-port=0",
      url,
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let err = "";
  const devtools = await within(
    new Promise<string>((resolve, reject) => {
      child.stderr!.setEncoding("utf8");
      child.stderr!.on("data", (d: string) => {
        err += d;
        const m = /DevTools listening on (ws:\/\/\S+)/.exec(err);
        if (m) resolve(m[1]);
      });
      child.on("exit", (code) => reject(new Error(`chromium exited (${code}): ${err}`)));
    }),
    15_000,
    () => `chromium's DevTools address; stderr: ${err}`,
  );
  return { child, devtools };
}

/** A minimal DevTools protocol client: one command at a time, answers matched by id. */
function cdp(url: string): Promise<{ send(method: string, params?: object, sessionId?: string): Promise<any>; close(): void }> {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  let next = 0;
  const pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();
  ws.on("message", (data) => {
    const msg = JSON.parse(String(data));
    const p = msg.id !== undefined ? pending.get(msg.id) : undefined;
    if (p === undefined) return;
    pending.delete(msg.id);
    if (msg.error) p.reject(new Error(JSON.stringify(msg.error)));
    else p.resolve(msg.result);
  });
  ws.on("close", () => pending.forEach((p) => p.reject(new Error("devtools connection closed"))));
  return new Promise((resolve, reject) => {
    ws.once("error", reject);
    ws.once("open", () =>
      resolve({
        send(method, params = {}, sessionId) {
          const id = ++next;
          ws.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
          return new Promise((res, rej) => pending.set(id, { resolve: res, reject: rej }));
        },
        close: () => ws.close(),
      }),
    );
  });
}

test(
  "examples/websocket.html in headless Chromium: SCRAM over RFC 7395, a message each way with a TCP client",
  { timeout: 60_000, skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (Debian package chromium; .ci/run installs it)` },
  async () => {
    const ts = await startXmppServer(
      { listeners: [...xmppListeners(), { protocol: "xmpp", transport: "websocket", host: "127.0.0.1", port: 0, path: PATH }] },
      { alice: "a-pass", bob: "b-pass" },
    );
    const profile = mkdtempSync(join(tmpdir(), "switchboard-chromium-"));
    let child: ChildProcess | null = null;
    try {
      const bob = await online(ts.port("xmpp", "tcp"), "bob", "b-pass", { resource: "desk" });
      const wsUrl = `ws://127.0.0.1:${ts.port("xmpp", "websocket")}${PATH}`;
      const page = pathToFileURL(PAGE);
      page.search = new URLSearchParams({ url: wsUrl, jid: "alice@localhost", password: "a-pass", to: bob.jid, body: "hi from Chromium \u2713" }).toString();
      const started = await startChromium(page.href, profile);
      child = started.child;

      // The page writes first; bob answers whoever wrote.
      const hi = await bob.waitFor((el) => el.is("message") && el.getChildText("body") !== null, 30_000);
      assert.equal(hi.getChildText("body"), "hi from Chromium \u2713");
      assert.equal(hi.attrs.from, "alice@localhost/browser");
      await bob.c.send(xml("message", { to: hi.attrs.from, type: "chat" }, xml("body", {}, "hello, browser <&>")));

      const devtools = await cdp(started.devtools);
      try {
        const { targetInfos } = await devtools.send("Target.getTargets");
        const target = targetInfos.find((t: any) => t.type === "page" && t.url.startsWith("file:"));
        assert.ok(target, `the page's target among ${JSON.stringify(targetInfos)}`);
        const { sessionId } = await devtools.send("Target.attachToTarget", { targetId: target.targetId, flatten: true });
        const r = await within(
          devtools.send("Runtime.evaluate", { expression: "window.result", awaitPromise: true, returnByValue: true }, sessionId),
          20_000,
          "the page's result",
        );
        assert.equal(r.exceptionDetails, undefined, JSON.stringify(r.exceptionDetails));
        assert.deepEqual(r.result.value, { jid: "alice@localhost/browser", received: { from: bob.jid, body: "hello, browser <&>" } });
      } finally {
        devtools.close();
      }
      await bob.stop();
    } finally {
      if (child !== null && child.exitCode === null) {
        const exited = new Promise((r) => child!.once("exit", r));
        child.kill();
        await within(exited, 10_000, "chromium to exit").catch(() => child!.kill("SIGKILL"));
      }
      await ts.stop();
      // Chromium's helper processes may still be writing its profile for a moment after the main one exits.
      rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
    }
  },
);
