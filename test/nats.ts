import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { freePort, waitPort } from "../bench/lib/proc.js";

/** nats-server is a system package (Debian `nats-server`); .ci/run installs it. */
export const HAVE_NATS = spawnSync("sh", ["-c", "command -v nats-server"]).status === 0;

export interface NatsServer {
  url: string;
  port: number;
  stop(): Promise<void>;
}

/** A real nats-server on an ephemeral loopback port (or on `port`: a restart of one that was stopped). */
export async function startNats(port?: number): Promise<NatsServer> {
  port ??= await freePort();
  const child: ChildProcess = spawn("nats-server", ["-a", "127.0.0.1", "-p", String(port)], { stdio: "ignore" });
  await waitPort(port);
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}
