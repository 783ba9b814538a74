import { readdirSync, readFileSync } from "node:fs";

/** What a `switchboard start` process writes on stderr: the text whole, for assertion messages, and its JSON log lines. */
export class HostLog {
  text = "";
  /** The host's and its workers' log lines, in the order written. */
  readonly lines: Record<string, unknown>[] = [];
  private partial = "";

  /** For `child.stderr.on("data", …)`. */
  readonly onData = (b: Buffer): void => {
    this.text += b;
    const lines = (this.partial + b).split("\n");
    this.partial = lines.pop()!;
    for (const line of lines) {
      try {
        this.lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // Not a log line (a crash trace): it stays in the text for the assertion messages.
      }
    }
  };

  /** The lines with this message, from line `since` on. */
  logged(message: string, since = 0): Record<string, unknown>[] {
    return this.lines.slice(since).filter((l) => l.message === message);
  }
}

/** The worker processes of the host, by their index (node:cluster passes it in the environment). */
export function workersOf(primary: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) !== primary) continue;
      const env = readFileSync(`/proc/${name}/environ`, "utf8").split("\0").find((e) => e.startsWith("SWITCHBOARD_WORKER="));
      if (env !== undefined) out.set(Number(env.split("=")[1]), Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

