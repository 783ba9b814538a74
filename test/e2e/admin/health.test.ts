import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { startServer } from "../../helpers.js";
import { AdminServer } from "../../../src/admin/http.js";
import { silentLogger } from "../../../src/log/logger.js";
import { HAVE_NATS, startNats } from "../../nats.js";
import { adminFor, http, until } from "./admin-helpers.js";

describe("/healthz and /readyz", () => {
  test("a ready worker: healthz 200, readyz 200; other paths 404, other methods 405", { timeout: 10_000 }, async () => {
    const ts = await startServer();
    const admin = await adminFor(ts.server);
    try {
      assert.deepEqual(await http(admin.port, "/healthz"), { status: 200, type: "text/plain; charset=utf-8", body: "ok\n" });
      assert.equal((await http(admin.port, "/readyz")).status, 200);
      assert.equal((await http(admin.port, "/readyz")).body, "ready\n");
      assert.equal((await http(admin.port, "/readyz?verbose=1")).status, 200, "a query string is ignored");
      assert.equal((await http(admin.port, "/healthz", "HEAD")).status, 200);
      assert.equal((await http(admin.port, "/")).status, 404);
      assert.equal((await http(admin.port, "/metrics/x")).status, 404);
      assert.equal((await http(admin.port, "/metrics", "POST")).status, 405);
    } finally {
      await admin.close();
      await ts.stop();
    }
  });

  test("readyz says 503 and why: the store closed, then the bus, then the listeners; healthz stays 200", { timeout: 10_000 }, async () => {
    const ts = await startServer();
    const admin = await adminFor(ts.server);
    try {
      ts.server.store.close();
      let r = await http(admin.port, "/readyz");
      assert.equal(r.status, 503);
      assert.match(r.body, /^not ready: store: The database connection is not open\n$/);
      await ts.server.bus.close();
      r = await http(admin.port, "/readyz");
      assert.equal(r.status, 503);
      assert.match(r.body, /store: .*; cluster bus: disconnected/);
      await Promise.all(ts.server.listeners.map((l) => l.close()));
      r = await http(admin.port, "/readyz");
      assert.match(r.body, /^not ready: listeners closed: relay\/tcp 127\.0\.0\.1:\d+, relay\/tls 127\.0\.0\.1:\d+, relay\/websocket 127\.0\.0\.1:\d+; store: /);
      assert.equal((await http(admin.port, "/healthz")).status, 200, "alive all the same");
      assert.equal((await http(admin.port, "/metrics")).status, 200, "and still scraped");
    } finally {
      await admin.close();
      await ts.stop();
    }
  });

  test("before the server has started: healthz 200, readyz and metrics 503 starting", { timeout: 10_000 }, async () => {
    const admin = await AdminServer.start({ host: "127.0.0.1", port: 0 }, silentLogger());
    try {
      assert.equal((await http(admin.port, "/healthz")).status, 200);
      assert.deepEqual([(await http(admin.port, "/readyz")).status, (await http(admin.port, "/readyz")).body], [503, "not ready: starting\n"]);
      assert.equal((await http(admin.port, "/metrics")).status, 503);
    } finally {
      await admin.close();
    }
  });

  test("a port in use: start fails with the error", { timeout: 10_000 }, async () => {
    const a = await AdminServer.start({ host: "127.0.0.1", port: 0 }, silentLogger());
    try {
      await assert.rejects(AdminServer.start({ host: "127.0.0.1", port: a.port }, silentLogger()), /EADDRINUSE/);
    } finally {
      await a.close();
    }
  });

  test("bus nats: readyz 503 while the nats-server is down, 200 again once the bus has reconnected", { timeout: 30_000, skip: HAVE_NATS ? false : "nats-server is not installed (apt-get install nats-server)" }, async () => {
    let nats = await startNats();
    const ts = await startServer({ cluster: { bus: "nats", nats: { servers: [nats.url], subject: `readyz${process.pid}`, heartbeatMs: 200 } } });
    const admin = await adminFor(ts.server);
    try {
      assert.equal((await http(admin.port, "/readyz")).status, 200);
      await nats.stop();
      await until("readyz to say the bus is down", async () => (await http(admin.port, "/readyz")).body === "not ready: cluster bus: disconnected\n", 10_000);
      nats = await startNats(nats.port);
      await until("readyz to be 200 again", async () => (await http(admin.port, "/readyz")).status === 200, 15_000);
    } finally {
      await admin.close();
      await ts.stop();
      await nats.stop();
    }
  });
});
