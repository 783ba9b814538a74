import { EqualWaits } from "../../timer/equal-waits.js";

/** A stream whose <a/> answers are held (Acks): `answerDue` names its current wait; 0 when none. */
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
 * alone when the delay passes (up to a tenth of it later). Every wait is as
 * long: one timer for the worker (EqualWaits), no timer per stream.
 */
export class HeldAnswers extends EqualWaits<HoldsAnswers> {
  constructor(delayMs: number) {
    // Sent already with other output (and perhaps held again since, under a later deadline): nothing to do.
    super(delayMs, (s, deadline) => {
      if (s.answerDue === deadline) s.sendAnswers();
    });
  }
}
