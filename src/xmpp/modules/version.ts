import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { release, type } from "node:os";
import { Element } from "ltx";
import { NS } from "../ns.js";
import { iqResultFor } from "../replies.js";
import type { Hooks } from "../hooks.js";
import type { XmppContext } from "../context.js";
import type { Disco } from "./disco.js";

/** The version in the nearest package.json above this file (src/ or dist/src/), read once. */
export function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    try {
      const v = (JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { version?: unknown }).version;
      if (typeof v === "string") return v;
    } catch {
      // Not here: one level up.
    }
    dir = dirname(dir);
  }
  return "unknown";
}

/** XEP-0092 Software Version of the server: name and version; the operating system only when xmpp.versionShowsOs is on (§5: it helps attackers). */
export function versionModule(hooks: Hooks, x: XmppContext, disco: Disco): void {
  const version = packageVersion();
  const os = `${type()} ${release()}`;
  hooks.iq("host", NS.VERSION, (e) => {
    if (e.type !== "get") return false;
    const q = new Element("query", { xmlns: NS.VERSION });
    q.c("name").t("Switchboard");
    q.c("version").t(version);
    if (x.config.xmpp.versionShowsOs) q.c("os").t(os);
    iqResultFor(e.session, e.stanza, q);
    return true;
  });
  disco.serverFeature(NS.VERSION);
}
