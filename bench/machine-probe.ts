/**
 * `node dist/bench/machine-probe.js`: how fast this machine is right now, apart from any server. Two probes,
 * each the median of 7 slices: dependent loads at random over 64 MiB (past the caches: the memory system and the
 * page walks, which the host shares with others and which move minute by minute here), and an integer loop
 * (the core alone). Pin it as the run it is compared with: `taskset -c 0 node dist/bench/machine-probe.js`.
 * docs/benchmarks.md, "Stream management's extra CPU, session 34".
 */
const WORDS = 16 << 20;
const LOADS = 2_000_000;

function memoryProbe(): number[] {
  // One random cycle through every slot (Sattolo's shuffle), so each load depends on the one before.
  const next = new Int32Array(WORDS);
  for (let i = 0; i < WORDS; i++) next[i] = i;
  let seed = 12345;
  for (let i = WORDS - 1; i > 0; i--) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    const j = seed % i;
    const t = next[i];
    next[i] = next[j];
    next[j] = t;
  }
  let p = 0;
  for (let i = 0; i < LOADS; i++) p = next[p];
  const out: number[] = [];
  for (let k = 0; k < 7; k++) {
    const t = process.hrtime.bigint();
    for (let i = 0; i < LOADS; i++) p = next[p];
    out.push(Number(process.hrtime.bigint() - t) / LOADS);
  }
  if (p < 0) console.log(p);
  return out.sort((a, b) => a - b);
}

function loop(n: number): number {
  let x = 1;
  for (let i = 0; i < n; i++) x = (Math.imul(x, 1103515245) + 12345) | 0;
  return x;
}

function aluProbe(): number[] {
  let sink = loop(1e6);
  const out: number[] = [];
  for (let k = 0; k < 7; k++) {
    const t = process.hrtime.bigint();
    sink ^= loop(2e7);
    out.push(Number(process.hrtime.bigint() - t) / 20 / 1000);
  }
  if (sink === 42) console.log(sink);
  return out.sort((a, b) => a - b);
}

const m = memoryProbe();
const a = aluProbe();
console.log(`memory ${m[3].toFixed(1)} ns a load (${m[0].toFixed(1)}–${m[6].toFixed(1)}); integer loop ${a[3].toFixed(1)} µs a million (${a[0].toFixed(1)}–${a[6].toFixed(1)})`);
