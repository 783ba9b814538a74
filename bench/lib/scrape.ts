import { request } from "node:http";

/**
 * One scrape of a server's /metrics (Prometheus text, as prom-client writes
 * it), for what a benchmark checks on the server's side: gauges during the
 * run, counters after it.
 */
export class Scrape {
  private constructor(private readonly lines: string[]) {}

  static async of(port: number, timeoutMs = 5000): Promise<Scrape> {
    const body = await new Promise<string>((resolve, reject) => {
      const req = request({ host: "127.0.0.1", port, path: "/metrics", timeout: timeoutMs, agent: false }, (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (text += d));
        res.on("end", () => (res.statusCode === 200 ? resolve(text) : reject(new Error(`/metrics answered ${res.statusCode}: ${text.slice(0, 200)}`))));
      });
      req.on("timeout", () => req.destroy(new Error(`no answer from /metrics in ${timeoutMs} ms`)));
      req.on("error", reject);
      req.end();
    });
    return new Scrape(body.split("\n").filter((l) => l !== "" && !l.startsWith("#")));
  }

  /** The sum of every series `name` whose labels include `labels` (label="value" pairs); NaN when there is none. */
  get(name: string, labels: Record<string, string> = {}): number {
    const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
    let sum = NaN;
    for (const l of this.lines) {
      if (!l.startsWith(name) || (l[name.length] !== "{" && l[name.length] !== " ")) continue;
      if (!want.every((w) => l.includes(w))) continue;
      sum = (Number.isNaN(sum) ? 0 : sum) + Number(l.slice(l.lastIndexOf(" ") + 1));
    }
    return sum;
  }
}
