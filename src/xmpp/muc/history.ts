import type { Element } from "ltx";

/** One groupchat message a room keeps for newcomers (XEP-0045 §7.2.15). */
export interface Kept {
  /** The message as broadcast (from room/nick), with its <delay/> already in it for replay. */
  el: Element;
  /** Its size in characters as serialized: what maxchars counts. */
  chars: number;
  /** When it was sent (ms since the epoch). */
  at: number;
}

/** What the joiner's <history/> asks for; each absent limit is null. */
export interface HistoryAsk {
  maxstanzas: number | null;
  maxchars: number | null;
  seconds: number | null;
  /** ms since the epoch. */
  since: number | null;
}

/** Parses <history/> (§7.2.15); a limit that is not a non-negative integer (or a date) is a bad request: null. */
export function historyAsk(h: Element | undefined): HistoryAsk | null {
  const ask: HistoryAsk = { maxstanzas: null, maxchars: null, seconds: null, since: null };
  if (h === undefined) return ask;
  for (const k of ["maxstanzas", "maxchars", "seconds"] as const) {
    const v = h.attrs[k];
    if (v === undefined) continue;
    if (!/^\d{1,9}$/.test(v)) return null;
    ask[k] = Number(v);
  }
  if (h.attrs.since !== undefined) {
    const t = Date.parse(h.attrs.since);
    if (!Number.isFinite(t)) return null;
    ask.since = t;
  }
  return ask;
}

/** The kept messages the ask allows, oldest first: the newest ones within every limit given. */
export function historyFor(kept: readonly Kept[], ask: HistoryAsk, now: number): Kept[] {
  const out: Kept[] = [];
  let chars = 0;
  for (let i = kept.length - 1; i >= 0; i--) {
    const k = kept[i];
    if (ask.maxstanzas !== null && out.length >= ask.maxstanzas) break;
    if (ask.seconds !== null && now - k.at > ask.seconds * 1000) break;
    if (ask.since !== null && k.at <= ask.since) break;
    if (ask.maxchars !== null && chars + k.chars > ask.maxchars) break;
    chars += k.chars;
    out.push(k);
  }
  return out.reverse();
}
