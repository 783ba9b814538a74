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
