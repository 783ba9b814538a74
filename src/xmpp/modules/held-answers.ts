import { monotonicMs } from "../../timer/clock.js";

/** A stream whose <a/> answers are held (Acks): `due` names its current wait; 0 when none. */
export interface HoldsAnswers {
  answerDue: number;
  sendAnswers(): void;
}

/**
 * XEP-0198 answers held for other output (xmpp.sm.answerDelayMs). A client
 * that sends an <r/> with every message (Conversations) would otherwise get
 * an <a/> in a write of its own for each: on loopback at 20,000 msg/s that
 * write is most of what stream management costs (docs/benchmarks.md). An
 * answer held rides with the next stanza written to that client, or goes
 * alone when the delay passes (up to a tenth of it later). Every wait is as long, so the queue is in
 * order of its deadlines: one timer for the worker, no timer per stream.
 */
export class HeldAnswers {
  private streams: HoldsAnswers[] = [];
  private dues: number[] = [];
  private head = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(readonly delayMs: number) {}

  /** `s` holds an answer from now: its deadline. */
  add(s: HoldsAnswers): number {
    const due = monotonicMs() + this.delayMs;
    this.streams.push(s);
    this.dues.push(due);
    if (this.timer === null) this.arm(this.delayMs);
    return due;
  }

  private arm(ms: number): void {
    this.timer = setTimeout(this.expire, Math.max(1, Math.ceil(ms)));
    this.timer.unref();
  }

  private readonly expire = (): void => {
    this.timer = null;
    const now = monotonicMs();
    let i = this.head;
    for (; i < this.streams.length && this.dues[i] <= now; i++) {
      const s = this.streams[i];
      // Sent already with other output (and perhaps held again since, under a later entry): nothing to do here.
      if (s.answerDue === this.dues[i]) s.sendAnswers();
    }
    if (i === this.streams.length) {
      this.streams = [];
      this.dues = [];
      this.head = 0;
      return;
    }
    if (i >= 1024 && i * 2 >= this.streams.length) {
      this.streams = this.streams.slice(i);
      this.dues = this.dues.slice(i);
      i = 0;
    } else {
      // The entries before the head are done: let them go.
      for (let j = this.head; j < i; j++) this.streams[j] = DONE;
    }
    this.head = i;
    // Not sooner than a tenth of the delay: under load the head is due within a millisecond, and a wake-up of the
    // event loop per millisecond costs more than the few answers each would send (they go up to 10 % late).
    this.arm(Math.max(this.dues[i] - now, this.delayMs / 10));
  };

  /** For tests: streams waiting. */
  get size(): number {
    return this.streams.length - this.head;
  }
}

const DONE: HoldsAnswers = { answerDue: -1, sendAnswers() {} };
