import { createInterface } from "node:readline";
import { defaults } from "../../../src/config/config.js";
import { NatsBus, type NatsBusOptions } from "../../../src/cluster/nats-bus.js";
import { ProxyDaemon } from "../../../src/proxy/proxy-daemon.js";
import { Envelope, Flag } from "../../../src/envelope/envelope.js";
import { Recorder, textCodec } from "./fixtures.js";

// The sending worker of stop-mid-flush.test.ts, a process of its own so that it can be stopped while its peer runs.
// argv[2]: { bus: NatsBusOptions, from: full address, to: bare address }. Reads lines from stdin:
//   "send <id>"  a message from `from` to `to` with that id;
//   "stop <id>"  the same, and the worker stops itself (SIGSTOP) inside the bus publish that carries it: after the
//                publish judged the batch fresh, before it is written — where an outside SIGSTOP lands now and then.
// Writes "ready" once its session is bound at the owner, and "published <id>" once the batch carrying it went.

const args = JSON.parse(process.argv[2]) as { bus: NatsBusOptions; from: string; to: string };
const bus = await NatsBus.connect(args.bus, { xmpp: textCodec });
await bus.ready(2);
const proxy = new ProxyDaemon(bus, {
  timeouts: { xmpp: { defaultMs: 30000, minMs: 1000, maxMs: 300000 } },
  sweepIntervalMs: 20,
  maxPendingPerSession: 10,
  maxInboundPerSession: 100,
  // Not routed again by time while the test runs: a second copy would come only from the late batch itself.
  custody: { ...defaults().cluster.custody, confirmTimeoutMs: 60_000 },
});
proxy.start();
const alice = new Recorder(args.from);
proxy.attach(alice);
const bound = setInterval(() => {
  if (!alice.bound) return;
  clearInterval(bound);
  process.stdout.write("ready\n");
}, 10);

// Submitted since the last publish (the bus keeps its afterPublish hooks: one, for every publish).
let submitted: string[] = [];
bus.afterPublish(() => {
  for (const id of submitted) process.stdout.write(`published ${id}\n`);
  submitted = [];
});
for await (const line of createInterface({ input: process.stdin })) {
  const [what, id] = line.split(" ");
  if (what === "stop") bus.beforePublish(() => void process.kill(process.pid, "SIGSTOP"));
  proxy.submit(alice, Envelope.message({ from: alice.address, to: args.to, protocol: "xmpp", payload: id, flags: Flag.Offline, id }));
  submitted.push(id);
}
