/**
 * Seeded mutators for the fuzz suite: byte-level mutations (bit flips, random and
 * "interesting" bytes, chunk insertions, deletions, duplications, truncation) and JSON-level
 * mutations (a random node replaced by a hostile value: huge or negative numbers, wrong types,
 * 10k-character strings, 100k-deep nesting, long arrays; keys deleted or added). Case `i` of
 * seed `s` is always the same input, so a failure is replayed from the two numbers.
 *
 * @module
 */

/** A small, fast, seeded PRNG (mulberry32). */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  /** One element of `xs`. */
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
}

/** The generator of case `index` under `seed` (independent of the other cases). */
export function caseRng(seed: number, index: number): Rng {
  return new Rng((seed * 2654435761 + index * 40503 + 12345) >>> 0);
}

const INTERESTING_BYTES = [
  0x00,
  0x0a,
  0x0d,
  0x22,
  0x27,
  0x2c,
  0x5b,
  0x5d,
  0x7b,
  0x7d,
  0x5c,
  0x7f,
  0x80,
  0xbf,
  0xc0,
  0xc3,
  0xe2,
  0xed,
  0xef,
  0xf0,
  0xf4,
  0xf8,
  0xfe,
  0xff,
];
const INTERESTING_CHUNKS = [
  '"',
  '""',
  "\n",
  "\r\n",
  "\r",
  ",",
  "\t",
  "{",
  "}",
  "[",
  "]",
  ":",
  "null",
  "-1",
  "1e309",
  "2147483648",
  "\ufeff",
  "\u2028",
  "[".repeat(5000),
  "x".repeat(10_000),
];

/** Applies 1 to 4 byte-level mutations to a copy of `input`. */
export function mutateBytes(rng: Rng, input: Uint8Array): Uint8Array {
  let b: Uint8Array = input.slice();
  const rounds = 1 + rng.int(4);
  const enc = new TextEncoder();
  for (let r = 0; r < rounds; r++) {
    const at = b.length ? rng.int(b.length) : 0;
    switch (rng.int(7)) {
      case 0: // bit flip
        if (b.length) b[at] ^= 1 << rng.int(8);
        break;
      case 1: // interesting byte
        if (b.length) b[at] = rng.pick(INTERESTING_BYTES);
        break;
      case 2: { // insert a chunk
        const chunk = enc.encode(rng.pick(INTERESTING_CHUNKS));
        b = concat(b.subarray(0, at), chunk, b.subarray(at));
        break;
      }
      case 3: { // delete a span
        const len = 1 + rng.int(Math.max(1, Math.min(64, b.length - at)));
        b = concat(b.subarray(0, at), b.subarray(at + len));
        break;
      }
      case 4: { // duplicate a span
        const len = 1 + rng.int(Math.max(1, Math.min(256, b.length - at)));
        b = concat(b.subarray(0, at + len), b.subarray(at, at + len), b.subarray(at + len));
        break;
      }
      case 5: // truncate
        b = b.slice(0, at);
        break;
      default: // random byte
        if (b.length) b[at] = rng.int(256);
    }
  }
  return b;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) out.set(p, o), (o += p.length);
  return out;
}

/** A JSON value. */
export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Marker of a 100k-deep nested array (JSON.stringify could not write one). */
const DEEP = "\u0000deep\u0000";
const DEEP_TEXT = "[".repeat(100_000) + "1" + "]".repeat(100_000);

/** Hostile values a mutated JSON node may become. */
function hostile(rng: Rng): Json {
  switch (rng.int(16)) {
    case 0:
      return rng.pick([-1, 0, 1, -0.5, 0.5, 1.5, 3]);
    case 1:
      return rng.pick([2 ** 31, 2 ** 32, 2 ** 53, 1e9, 1e12, 1e308, -1e9, 2 ** 24, 65536]);
    case 2:
      return rng.pick(["", "x", "1e-6", "10000", "true", "null", "<unk>", "silu"]);
    case 3:
      return "y".repeat(10_000 + rng.int(10_000));
    case 4:
      return rng.pick([true, false, null]);
    case 5:
      return [];
    case 6:
      return {};
    case 7:
      return DEEP; // replaced by 100k-deep brackets when serialised
    case 8:
      return new Array(100_000).fill(7);
    case 9:
      return rng.pick([[1, 2], ["a"], [null], [[1]]]);
    case 10:
      return { rope_type: rng.pick(["linear", "llama3", "yarn", "longrope", "dynamic", "nope"]) };
    case 11:
      return "{% for i in range(100000000) %}x{% endfor %}";
    case 12:
      return "{% for i in range(3000) %}{% for j in range(3000) %}x{% endfor %}{% endfor %}";
    case 13:
      return "{{ 'a' | indent(999999999) }}{{ raise_exception('boom') }}";
    case 14:
      return rng.pick([-(2 ** 31), 4097, 1 << 20, 1 << 26]);
    default:
      return rng.int(1000);
  }
}

/** Every path (list of keys / indices) into `v`, nodes visited breadth-first, at most `max`. */
function paths(v: Json, max = 2000): (string | number)[][] {
  const out: (string | number)[][] = [[]];
  const queue: [Json, (string | number)[]][] = [[v, []]];
  while (queue.length && out.length < max) {
    const [node, path] = queue.shift()!;
    if (node && typeof node === "object") {
      const entries = Array.isArray(node)
        ? node.map((x, i) => [i, x] as const)
        : Object.entries(node);
      for (const [k, child] of entries.slice(0, 200)) {
        const p = [...path, k];
        out.push(p);
        queue.push([child as Json, p]);
      }
    }
  }
  return out;
}

/** Applies 1 to 3 JSON-level mutations to a deep copy of `value`. */
export function mutateJson(rng: Rng, value: Json): Json {
  let root = structuredClone(value);
  const rounds = 1 + rng.int(3);
  for (let r = 0; r < rounds; r++) {
    const all = paths(root);
    const path = rng.pick(all);
    if (path.length === 0) {
      if (rng.int(8) === 0) root = hostile(rng);
      continue;
    }
    let parent = root as Record<string | number, Json>;
    for (const k of path.slice(0, -1)) parent = parent[k] as Record<string | number, Json>;
    const key = path[path.length - 1];
    const op = rng.int(6);
    if (op === 0 && !Array.isArray(parent)) delete parent[key];
    else if (op === 1 && !Array.isArray(parent)) {
      parent[rng.pick(["n_layer", "num_hidden_layers", "head_dim", "vocab", "id", "zz"])] = hostile(
        rng,
      );
    } else parent[key] = hostile(rng);
  }
  return root;
}

/** Mutates JSON text: mostly structurally (parse, mutate, serialise), sometimes byte-wise. */
export function mutateJsonText(rng: Rng, seed: Json): Uint8Array {
  const enc = new TextEncoder();
  if (rng.int(4) === 0) return mutateBytes(rng, enc.encode(JSON.stringify(seed)));
  const text = JSON.stringify(mutateJson(rng, seed)).replaceAll(JSON.stringify(DEEP), DEEP_TEXT);
  return enc.encode(text);
}
