import { performance } from "node:perf_hooks";

/** Runs `f` with performance.now counted: how many times the clock was read (tests of inputMs's users). */
export function clockReads(f: () => void): number {
  const real = performance.now;
  let n = 0;
  performance.now = function (this: typeof performance) {
    n++;
    return real.call(this);
  };
  try {
    f();
  } finally {
    performance.now = real;
  }
  return n;
}
