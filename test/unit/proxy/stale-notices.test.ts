import { test } from "node:test";
import assert from "node:assert/strict";
import { LocalHub } from "../../../src/cluster/local-bus.js";
import { ProxyDaemon } from "../../../src/proxy/proxy-daemon.js";
import { proxyOptions } from "./fixtures.js";

// Core.stale / onStale (what a protocol keeps in memory on the worker that uses it, XEP-0313 preferences):
// told on one worker, heard on every worker of the cluster, itself included; a membership change says
// that anything may be stale (null).


test("a stale key told on one worker reaches the listeners of its topic on every worker; a membership change clears all", { timeout: 5000 }, () => {
  const hub = new LocalHub(64);
  const ids = ["w0", "w1", "w2"];
  const buses = ids.map((id, i) => hub.join(id, `10.0.0.${1 + (i % 2)}`));
  const proxies = buses.map((b) => new ProxyDaemon(b, proxyOptions()));
  const heard = new Map<string, (string | null)[]>(ids.map((id) => [id, []]));
  proxies.forEach((p, i) => p.onStale("mam-prefs", (k) => heard.get(ids[i])!.push(k)));
  const other: (string | null)[] = [];
  proxies[2].onStale("other", (k) => other.push(k));
  proxies[1].stale("mam-prefs", "alice");
  assert.deepEqual([...heard.values()], [["alice"], ["alice"], ["alice"]], "every worker of both hosts, the sender at once");
  assert.deepEqual(other, [], "not another topic's listeners");
  buses[2].close();
  assert.deepEqual(heard.get("w0"), ["alice", null], "w2 left: anything may be stale");
  assert.deepEqual(heard.get("w1"), ["alice", null]);
  for (const p of proxies) p.stop();
});
