/**
 * A receipt names the custodian that holds a message and the message's place there: `<worker>.<tag>_<n>`
 * (Custody.hold), where `<worker>.<tag>_` tells the custodian's incarnations apart and `n` counts from 0.
 * Read in place, without slices or number parsing, on every message that crosses workers.
 */

/**
 * Where the number that ends `receipt` starts (1 to 15 digits after something else, so that it is exact as a
 * double, without a leading zero), else -1.
 */
export function numberAt(receipt: string): number {
  let i = receipt.length;
  while (i > 0) {
    const c = receipt.charCodeAt(i - 1);
    if (c < 48 || c > 57) break;
    i--;
  }
  const digits = receipt.length - i;
  // "07" is not "7": a leading zero makes it a receipt kept whole.
  return i > 0 && digits > 0 && digits <= 15 && (digits === 1 || receipt.charCodeAt(i) !== 48) ? i : -1;
}

/** The number written from `from` to the end of `receipt` (digits only, as numberAt found them). */
export function valueAt(receipt: string, from: number): number {
  let n = 0;
  for (let i = from; i < receipt.length; i++) n = n * 10 + receipt.charCodeAt(i) - 48;
  return n;
}


/** Worker ids seen in receipts lately: a receipt's worker is then that string, not a slice made (and hashed) again. */
const knownWorkers: string[] = [];
let nextKnown = 0;

/** The worker named by a receipt or ref `<worker>.<n>`; "" when it names none. */
export function workerOf(receipt: string): string {
  let dot = receipt.length - 1;
  while (dot >= 0 && receipt.charCodeAt(dot) !== 46) dot--;
  if (dot <= 0) return "";
  // A slice compared with ===: V8 compares the bytes at once, where startsWith reads them one by one.
  const w = receipt.slice(0, dot);
  for (let i = 0; i < knownWorkers.length; i++) if (knownWorkers[i] === w) return knownWorkers[i];
  if (knownWorkers.length < 16) knownWorkers.push(w);
  else {
    knownWorkers[nextKnown] = w;
    nextKnown = (nextKnown + 1) & 15;
  }
  return w;
}
