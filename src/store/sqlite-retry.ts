/**
 * better-sqlite3 is synchronous: a call that finds another process holding the
 * write lock would sleep on the event loop for the whole busy_timeout. The
 * stores keep busy_timeout tiny and instead try again on a timer, so a locked
 * database costs the caller time, never the event loop. Reads in WAL mode
 * rarely see a lock; they go through the same path.
 */
export const BUSY_TIMEOUT_MS = 5;

export function isBusy(e: unknown): boolean {
  const code = (e as { code?: unknown })?.code;
  return typeof code === "string" && (code === "SQLITE_BUSY" || code.startsWith("SQLITE_BUSY_") || code === "SQLITE_LOCKED");
}

/** Runs `fn` now; while the database is locked, again after 2, 4, … 100 ms, until `lockTimeoutMs` has passed. */
export function retrying<T>(fn: () => T, lockTimeoutMs: number): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (e) {
    if (!isBusy(e)) return Promise.reject(e);
  }
  const deadline = Date.now() + lockTimeoutMs;
  return new Promise<T>((resolve, reject) => {
    let wait = 2;
    const again = () => {
      try {
        resolve(fn());
      } catch (e) {
        if (!isBusy(e) || Date.now() >= deadline) return reject(e);
        setTimeout(again, wait);
        wait = Math.min(100, wait * 2);
      }
    };
    setTimeout(again, wait);
  });
}
