import { connect, type NatsConnection } from "nats";
import type { LoadSpec, Loop } from "./loop.js";

/**
 * The nats.js 2.29 request/reply at its fastest settings (FACTS.md):
 * noAsyncTraces on every connection, noMux on every request.
 */
export async function natsLoop(spec: LoadSpec, loop: Loop): Promise<() => void> {
  const conns: NatsConnection[] = [];
  const open = () => connect({ servers: `127.0.0.1:${spec.port}`, noAsyncTraces: true, maxReconnectAttempts: 0 });
  for (let j = 0; j < spec.responders; j++) {
    const nc = await open();
    // Callback subscriptions skip the async iterator: the responder's cheapest path.
    nc.subscribe(`svc.${j}`, { callback: (err, m) => err || m.respond(m.data) });
    await nc.flush();
    conns.push(nc);
  }
  const body = new Uint8Array(spec.payload).fill(0x61);
  for (let i = 0; i < spec.requesters; i++) {
    const nc = await open();
    const subject = `svc.${i % spec.responders}`;
    const worker = async () => {
      while (loop.running) {
        const t0 = performance.now();
        try {
          await nc.request(subject, body, { timeout: 5000, noMux: !spec.natsMux });
          loop.done(performance.now() - t0);
        } catch (e) {
          loop.failed((e as Error).message);
        }
      }
    };
    loop.onStart(() => {
      for (let s = 0; s < spec.inflight; s++) void worker();
    });
    conns.push(nc);
  }
  return () => conns.forEach((nc) => void nc.close());
}
