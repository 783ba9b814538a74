import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { xml } from "@xmpp/client";
import { waitUntil } from "../../helpers.js";
import { freePort } from "../../../bench/lib/proc.js";
import { startNats, type NatsServer } from "../../nats.js";
import { smClient, settleAcks, type SmClient } from "../xmpp/fault-util.js";
import { workersOf } from "./host-log.js";
import { hostDir, startHost, type Host } from "./host-proc.js";

export const USERS = 6;
const EVERY_MS = 40;

/**
 * What the resumption-after-death tests share (resume-after-kill.test.ts,
 * resume-window.test.ts): a real host of two workers on a real nats-server,
 * USERS @xmpp/client users with stream management sending chat messages to
 * each other's bare JIDs, and the counts: a message is accepted when the
 * server acknowledged it to its sender.
 */
export class ResumeBed {
  nats!: NatsServer;
  port = 0;
  home!: ReturnType<typeof hostDir>;
  host!: Host;
  readonly clients: SmClient[] = [];
  /** Messages the server acknowledged to their senders, by body; and those it failed. */
  readonly accepted = new Set<string>();
  readonly notAccepted = new Set<string>();
  /** When each message was handed to its client to send (Date.now()). */
  readonly sentAt = new Map<string, number>();

  constructor(
    private readonly windowMs: number,
    private readonly subject: string,
  ) {}

  async start(): Promise<void> {
    this.nats = await startNats();
    this.port = await freePort();
    this.home = hostDir(
      {
        log: { level: process.env.RESUME_DEBUG ? "debug" : "info", format: "json" },
        listeners: [{ protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port: this.port }],
        xmpp: { allowPlainWithoutTls: true, sm: { resumeTimeoutMs: this.windowMs } },
        storage: { type: "sqlite", path: "db.sqlite" },
        cluster: { bus: "nats", workers: 2, nats: { servers: [this.nats.url], subject: this.subject, heartbeatMs: 300 } },
        admin: { enabled: false },
        drainTimeoutMs: 3000,
      },
      USERS,
    );
    this.host = startHost(this.home.cfg);
    await waitUntil(() => this.host.log.logged("switchboard started").length === 2, 20_000, () => `both workers started; stderr:\n${this.host.log.text}`, 20);
  }

  async login(): Promise<void> {
    for (let i = 0; i < USERS; i++) this.clients.push(await smClient(this.port, `h${i}`, "pw", "r", { ackIntervalMs: 200, ackTimeoutMs: 1500, plain: true }));
    this.clients.forEach((s) => {
      // The traffic's messages only: with SM enabled inline (Bind2), the initial presence is counted and acknowledged too.
      s.c.streamManagement.on("ack", (el: any) => el.is("message") && this.accepted.add(el.getChildText("body")));
      s.c.streamManagement.on("fail", (el: any) => el.is("message") && this.notAccepted.add(el.getChildText("body")));
    });
    await waitUntil(() => this.clients.every((s) => this.workerOf(String(s.c.jid)) !== "undefined"), 5000, "every start line");
  }

  async stop(): Promise<void> {
    if (process.env.RESUME_LOG) writeFileSync(process.env.RESUME_LOG, this.host.log.text);
    await Promise.all(this.clients.map((s) => s.stop()));
    this.host.kill();
    await this.nats.stop();
    this.home.remove();
  }

  readonly workerOf = (address: string): string => String(this.host.log.logged("session started").filter((l) => l.address === address).at(-1)?.worker);
  readonly pidOf = (worker: string): number => {
    const pid = workersOf(this.host.child.pid!).get(Number(worker.slice(worker.lastIndexOf("w") + 1)));
    assert.ok(pid !== undefined, `the pid of ${worker}`);
    return pid;
  };

  /** Waits until every accepted message to `to` (all clients when omitted) arrived; then counts. */
  async delivered(what: string, only?: Set<number>, run?: number): Promise<{ lost: number; duplicated: number; dups: string[] }> {
    const received = new Map<string, number>();
    const mine = (b: string) => (only === undefined || only.has(Number(b.slice(b.indexOf(">") + 1, b.indexOf(":"))))) && (run === undefined || b.includes(`:${run}-`));
    const tally = () => {
      received.clear();
      for (const s of this.clients) for (const b of s.got) received.set(b, (received.get(b) ?? 0) + 1);
    };
    const missing = () => [...this.accepted].filter((b) => mine(b) && !received.has(b));
    await waitUntil(
      async () => {
        for (const s of this.clients) await settleAcks(s, 3000).catch(() => {});
        tally();
        return missing().length === 0;
      },
      30_000,
      () => {
        const pairs = new Map<string, string[]>();
        for (const b of missing()) pairs.set(b.slice(0, b.indexOf(":")), [...(pairs.get(b.slice(0, b.indexOf(":"))) ?? []), b.slice(b.lastIndexOf("-") + 1)]);
        return `${what}: missing ${missing().length}: ${[...pairs].map(([p, ns]) => `${p}: ${ns.join(",")}`).join("; ")}; stderr:\n${this.host.log.text.slice(-3000)}`;
      },
      500,
    );
    tally();
    const dups = [...received.entries()].filter(([b, n]) => n > 1 && mine(b)).map(([b]) => b);
    return { lost: missing().length, duplicated: dups.length, dups };
  }

  /** Each client sends to the others' bare JIDs every EVERY_MS for `ms`, bodies "<from>><to>:<run>-<n>"; `during` runs once, a third in. */
  async traffic(ms: number, during: () => void, onStart: (run: number) => void = () => {}): Promise<number> {
    let sent = 0;
    let fired = false;
    const start = Date.now();
    onStart(start);
    await Promise.all(
      this.clients.map(async (s, i) => {
        for (let n = 0; Date.now() - start < ms; n++) {
          const to = (i + 1 + (n % (USERS - 1))) % USERS;
          if (s.c.status === "online") {
            const body = `${i}>${to}:${start}-${n}`;
            this.sentAt.set(body, Date.now());
            s.c.send(xml("message", { to: `h${to}@localhost`, type: "chat", id: `${i}-${n}-${start}` }, xml("body", {}, body))).catch(() => {});
            sent++;
          }
          if (!fired && Date.now() - start > ms / 3) {
            fired = true;
            during();
          }
          await new Promise((r) => setTimeout(r, EVERY_MS));
        }
      }),
    );
    return sent;
  }

}
