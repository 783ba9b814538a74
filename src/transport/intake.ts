import { performance } from "node:perf_hooks";

/**
 * How much input one worker takes in one event-loop turn (docs/architecture.md, "Intake").
 *
 * Under overload every client socket is ready at every poll, and libuv's poll phase takes up to 48 × 1,024 ready
 * sockets before it returns: a worker on a CPU budget then spent tens of seconds in one phase, no timer ran
 * (custody's timeouts, the coalescing window, the sweep) and its host links stalled past their limits. Here each
 * read first asks for room in the turn: past `maxTurnMs` of reading, a client connection's read is kept aside (its
 * bytes, copied when they lie in a shared buffer) and the socket stops reading; a host link handles its read and
 * stops. What waits is taken, oldest first, in the check phase of the turns that follow, each for up to
 * `maxTurnMs`, and reads again once taken: the loop turns within about twice the budget, timers run between.
 *
 * Backpressure: while something this worker writes to falls behind (a host link whose peer has not taken
 * several megabytes: hold()), clients are not read at all; the kernel's buffers fill and TCP slows the senders,
 * instead of a backlog without bound in this process. Host links are never held (two workers waiting on each
 * other would wait for ever), only budgeted.
 */

/** A source of input that stopped reading: resumed, oldest first, when the turn has room. */
export interface IntakeWaiter {
  resumeIntake(): void;
}

let maxTurnMs = 0;
/** performance.now() at the first read of this turn; -1: none yet. */
let turnStart = -1;
let reads = 0;
let bytes = 0;
let over = false;
let holds = 0;
let waiting: IntakeWaiter[] = [];
let at = 0;
/** Host links that stopped for the turn: all read again at the next check phase, held or not. */
let links: IntakeWaiter[] = [];
let scheduled = false;

/** For the metrics: reads kept aside and holds begun (counters); the bytes of the reads kept aside now (kept). */
export const intakeStats = { deferred: 0, holds: 0, kept: 0 };

/** limits.maxTurnMs (the server sets it; 0 here until then); 0: no budget (hold() still applies, where a host link asks). */
export function configureIntake(ms: number): void {
  maxTurnMs = ms;
}

function startTurn(): void {
  turnStart = performance.now();
  schedule();
}

/**
 * Whether this turn has room. The clock (~55 ns a read here) is read every 8th read or 8 KiB: a small read is one
 * stanza at most loads, a large one many.
 */
function room(n: number): boolean {
  if (over) return false;
  if (maxTurnMs > 0 && ((bytes += n) >= 8192 || (++reads & 7) === 0)) {
    bytes = 0;
    if (performance.now() - turnStart > maxTurnMs) over = true;
  }
  return !over;
}

/** A client connection's read of `n` bytes: handle it now (true), or keep it aside and stop reading (false). */
export function admitClient(n: number): boolean {
  // Off: one test per read.
  if (maxTurnMs === 0 && holds === 0) return true;
  if (turnStart < 0) startTurn();
  return holds === 0 && room(n);
}

/** A host link's read of `n` bytes, handled: whether the link reads on in this turn (false: it stops until the next). */
export function admitLink(n: number): boolean {
  if (maxTurnMs === 0) return true;
  if (turnStart < 0) startTurn();
  return room(n);
}

/** Client connection `w` stopped reading: resumed when a turn has room (and nothing holds clients). */
export function wait(w: IntakeWaiter): void {
  intakeStats.deferred++;
  waiting.push(w);
  schedule();
}

/** Host link `w` stopped reading for this turn: resumed at its end. */
export function waitLink(w: IntakeWaiter): void {
  links.push(w);
  schedule();
}

function schedule(): void {
  if (!scheduled) {
    scheduled = true;
    setImmediate(endTurn);
  }
}

/** Something this worker writes to fell behind: clients are not read until release(). */
export function hold(): void {
  holds++;
  intakeStats.holds++;
}

export function release(): void {
  if (holds === 0) return;
  holds--;
  if (holds === 0 && waiting.length > at) schedule();
}

/**
 * Whether reads wait now or are about to: the turn is past its budget, clients are held, or sources wait for room.
 * A client connection's next read is then small (StreamConn), since a read that waits is kept in memory.
 */
export function intakePressed(): boolean {
  return over || holds > 0 || waiting.length > at;
}

/** Reading is held back now (tests, metrics). */
export function intakeHeld(): boolean {
  return holds > 0;
}

/** Sources waiting for room now. */
export function intakeWaiting(): number {
  return waiting.length - at;
}

/** The check phase: the poll's budget starts again; what waits is taken for up to maxTurnMs. */
function endTurn(): void {
  scheduled = false;
  turnStart = -1;
  reads = 0;
  bytes = 0;
  over = false;
  if (links.length > 0) {
    const ls = links;
    links = [];
    for (const l of ls) l.resumeIntake();
  }
  if (waiting.length === at || holds > 0) return;
  const start = performance.now();
  while (at < waiting.length) {
    const w = waiting[at++];
    w.resumeIntake();
    if (holds > 0 || (maxTurnMs > 0 && performance.now() - start > maxTurnMs)) break;
  }
  if (at === waiting.length) {
    waiting = [];
    at = 0;
  } else if (at > 1024 && at * 2 > waiting.length) {
    waiting = waiting.slice(at);
    at = 0;
  }
  if (waiting.length > at && holds === 0) schedule();
}
