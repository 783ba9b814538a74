import { WebSocket } from "ws";

/** A raw WebSocket client speaking RFC 7395 by hand: every message received is kept in order. */
export class RawWs {
  readonly messages: string[] = [];
  closed = false;
  closeCode = 0;
  readonly ws: WebSocket;
  private notify: (() => void) | null = null;

  constructor(url: string, protocols: string[] = ["xmpp"]) {
    this.ws = new WebSocket(url, protocols);
    this.ws.on("message", (data, isBinary) => {
      this.messages.push(isBinary ? `(binary ${(data as Buffer).length})` : String(data));
      this.notify?.();
    });
    this.ws.on("close", (code) => {
      this.closed = true;
      this.closeCode = code;
      this.notify?.();
    });
    this.ws.on("error", () => {});
  }

  /** Resolves once the handshake is done; rejects with the HTTP status when the server refused it. */
  ready(ms = 5000): Promise<void> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("no WebSocket handshake in time")), ms);
      this.ws.once("open", () => (clearTimeout(t), resolve()));
      this.ws.once("unexpected-response", (_req, res) => {
        clearTimeout(t);
        reject(Object.assign(new Error(`refused with ${res.statusCode}`), { status: res.statusCode }));
      });
      this.ws.once("error", (e) => (clearTimeout(t), reject(e)));
    });
  }

  send(s: string | Buffer): void {
    this.ws.send(s, { binary: typeof s !== "string" });
  }

  /** Waits for a message matching `re` (returns it), or fails when the socket closes or `ms` pass. */
  async until(re: RegExp, ms = 5000): Promise<string> {
    const deadline = Date.now() + ms;
    for (;;) {
      const m = this.messages.find((x) => re.test(x));
      if (m !== undefined) return m;
      if (this.closed) throw new Error(`closed before ${re}; got: ${this.messages.join(" | ")}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${re}; got: ${this.messages.join(" | ")}`);
      await this.next(left);
    }
  }

  async whenClosed(ms = 5000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!this.closed) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`still open; got: ${this.messages.join(" | ")}`);
      await this.next(left);
    }
  }

  private next(ms: number): Promise<void> {
    return new Promise<void>((r) => {
      const t = setTimeout(r, ms);
      this.notify = () => (clearTimeout(t), r());
    });
  }
}

export const OPEN = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>";
