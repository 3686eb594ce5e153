/**
 * The native few-rows kernel (lib/engine/native/few_rows_gemm.c, built by
 * lib/engine/native_build.ts), called directly through its CBLAS entry points:
 * - the fast path (row-major, A as is, alpha 1, beta 0) against a float64 product, at every
 *   kind of tail (rows past a pass of 8, columns past a block, k past a vector) and threaded;
 * - each output the same to the bit whatever the batch it is computed in and the thread count;
 * - NaN and infinities where IEEE arithmetic puts them;
 * - the CBLAS cases outside the fast path (column-major, transposed A, alpha, beta; sgemv with
 *   strides) against a plain reference;
 * - the build: cached by content, a broken source gives a reason instead of a throw.
 * Skips with a message where there is no C compiler (Debian/Ubuntu: apt install gcc).
 */
import assert from "node:assert/strict";
import { buildNative } from "../lib/engine/native_build.ts";
import { makeRng } from "../lib/data/rng.ts";
import { float64MatMul, relErr } from "./_helpers.ts";

const SOURCE = new URL("../lib/engine/native/few_rows_gemm.c", import.meta.url);
const I = "i32", F = "f32", P = "buffer";
const SYMBOLS = {
  cblas_sgemm: { parameters: [I, I, I, I, I, I, F, P, I, P, I, F, P, I], result: "void" },
  cblas_sgemv: { parameters: [I, I, I, I, F, P, I, P, I, F, P, I], result: "void" },
  sc_set_num_threads: { parameters: [I], result: "void" },
} as const;
const ROW = 101, COL = 102, NT = 111, T = 112;

const built = buildNative(SOURCE);
const lib = built.path === undefined ? undefined : Deno.dlopen(built.path, SYMBOLS);
if (!lib) console.log(`  few_rows_gemm_test: no native kernel (${built.reason}); tests skip`);
const threads = navigator.hardwareConcurrency ?? 2;

function random(n: number, seed: number): Float32Array {
  const rng = makeRng(seed);
  return Float32Array.from({ length: n }, () => rng.normal());
}

/** The fast path: C[m, n] = A[m, k] B (B [k, n], or [n, k] when tB). */
function fast(a: Float32Array, b: Float32Array, m: number, n: number, k: number, tB: boolean) {
  const c = new Float32Array(m * n).fill(NaN); // beta 0: never read
  lib!.symbols.cblas_sgemm(ROW, NT, tB ? T : NT, m, n, k, 1, a, k, b, tB ? k : n, 0, c, n);
  return c;
}

function sameBits(a: Float32Array, b: Float32Array, what: string): void {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) {
    if (x[i] !== y[i]) assert.fail(`${what}: element ${i} differs (${a[i]} vs ${b[i]})`);
  }
}

Deno.test({
  name: "native few-rows kernel: matches a float64 product at every tail, threaded or not",
  ignore: !lib,
  fn() {
    lib!.symbols.sc_set_num_threads(threads);
    // [m, k, n]: rows past one pass of 8, columns past a block of 48, k past a vector of 16,
    // single entries, and products large enough to split over the threads.
    const cases = [
      [1, 1, 1],
      [3, 15, 47],
      [8, 16, 48],
      [9, 17, 49],
      [16, 100, 97],
      [
        5,
        33,
        300,
      ],
      [13, 768, 61],
      [8, 700, 1000],
      [2, 3072, 768],
      [16, 512, 1030],
    ];
    let seed = 1;
    for (const [m, k, n] of cases) {
      for (const tB of [false, true]) {
        const a = random(m * k, seed++), b = random(k * n, seed++);
        const e = relErr(fast(a, b, m, n, k, tB), float64MatMul(a, b, m, n, k, tB));
        assert.ok(e < 1e-5, `${m}x${k}x${n} transposeB=${tB}: relative error ${e}`);
      }
    }
  },
});

Deno.test({
  name: "native few-rows kernel: a row's outputs are the same bits in any batch, on any threads",
  ignore: !lib,
  fn() {
    const [m, k, n] = [16, 777, 3001]; // 3001 = 62 blocks of 48 + 25; 777 = 48 vectors + 9
    for (const tB of [false, true]) {
      const a = random(m * k, 40), b = random(k * n, 41);
      lib!.symbols.sc_set_num_threads(Math.max(2, threads));
      const batch = fast(a, b, m, n, k, tB);
      lib!.symbols.sc_set_num_threads(1);
      for (const r of [0, 5, 8, 15]) {
        const alone = fast(a.subarray(r * k, (r + 1) * k), b, 1, n, k, tB);
        sameBits(alone, batch.subarray(r * n, (r + 1) * n), `row ${r} alone, transposeB=${tB}`);
      }
      // Rows 3..7 as a batch of 5 on one thread.
      const five = fast(a.subarray(3 * k, 8 * k), b, 5, n, k, tB);
      sameBits(five, batch.subarray(3 * n, 8 * n), `rows 3-7 as a batch of 5, transposeB=${tB}`);
    }
    lib!.symbols.sc_set_num_threads(threads);
  },
});

Deno.test({
  name: "native few-rows kernel: NaN and infinities land where IEEE arithmetic puts them",
  ignore: !lib,
  fn() {
    const [m, k, n] = [8, 64, 200];
    for (const tB of [false, true]) {
      const a = random(m * k, 7), b = random(k * n, 8);
      a[2 * k + 5] = NaN; // row 2 all NaN
      a[4 * k + 9] = 0; // row 4 meets the infinity with 0: NaN at column 7
      const at = (p: number, j: number) => (tB ? j * k + p : p * n + j);
      b[at(9, 7)] = Infinity; // column 7 infinite elsewhere
      b[at(10, 150)] = -Infinity; // in a block, and column 150 of a tail for tB
      const got = fast(a, b, m, n, k, tB), want = float64MatMul(a, b, m, n, k, tB);
      for (let i = 0; i < m * n; i++) {
        const where = `C[${Math.floor(i / n)}, ${i % n}] transposeB=${tB}`;
        if (Number.isFinite(want[i])) continue;
        assert.ok(Object.is(got[i], want[i]), `${where}: ${got[i]} vs ${want[i]}`);
      }
      assert.ok(got.every((v, i) => Number.isFinite(v) === Number.isFinite(want[i])));
      assert.ok(Number.isNaN(got[4 * n + 7]) && Number.isNaN(got[2 * n + 100]));
    }
  },
});

Deno.test({
  name: "native few-rows kernel: CBLAS cases outside the fast path are right (sgemm, sgemv)",
  ignore: !lib,
  fn() {
    const [m, n, k] = [3, 5, 4];
    const a = random(m * k, 11), b = random(k * n, 12), c0 = random(m * n, 13);
    // Reference: C = alpha op(A) op(B) + beta C on logical row-major matrices.
    const ref =
      (opA: (i: number, p: number) => number, opB: (p: number, j: number) => number) =>
      (alpha: number, beta: number) =>
        Array.from({ length: m * n }, (_, x) => {
          const [i, j] = [Math.floor(x / n), x % n];
          let s = 0;
          for (let p = 0; p < k; p++) s += opA(i, p) * opB(p, j);
          return alpha * s + beta * c0[x];
        });
    // Transposed A (stored [k, m]), alpha 0.5, beta 2, row-major.
    const aT = Float32Array.from({ length: k * m }, (_, x) => a[(x % m) * k + Math.floor(x / m)]);
    let c = c0.slice();
    lib!.symbols.cblas_sgemm(ROW, T, NT, m, n, k, 0.5, aT, m, b, n, 2, c, n);
    let want = ref((i, p) => a[i * k + p], (p, j) => b[p * n + j])(0.5, 2);
    assert.ok(relErr(c, want) < 1e-6, "transposed A, alpha, beta");
    // Column-major: C^T (stored [n, m]) = A B with A, B stored column-major.
    const aC = Float32Array.from({ length: m * k }, (_, x) => a[(x % m) * k + Math.floor(x / m)]);
    const bC = Float32Array.from({ length: k * n }, (_, x) => b[(x % k) * n + Math.floor(x / k)]);
    const cC = new Float32Array(m * n).fill(NaN); // beta 0 ignores NaN
    lib!.symbols.cblas_sgemm(COL, NT, NT, m, n, k, 1, aC, m, bC, k, 0, cC, m);
    want = ref((i, p) => a[i * k + p], (p, j) => b[p * n + j])(1, 0);
    c = Float32Array.from({ length: m * n }, (_, x) => cC[(x % n) * m + Math.floor(x / n)]);
    assert.ok(relErr(c, want) < 1e-6, "column-major");
    // sgemv: y = alpha A x + beta y and y = alpha A^T x + beta y, with strides 2 and -1.
    const x = random(8, 14), y0 = random(8, 15);
    for (const order of [ROW, COL]) {
      for (const trans of [NT, T]) {
        const [len, out] = trans === NT ? [k, m] : [m, k];
        const y = y0.slice(0, out);
        // A logical [m, k]; stored row-major (lda k) or column-major (lda m).
        const stored = order === ROW ? a : aC, lda = order === ROW ? k : m;
        lib!.symbols.cblas_sgemv(order, trans, m, k, 1.5, stored, lda, x, 2, -0.5, y, -1);
        const xs = Array.from({ length: len }, (_, p) => x[2 * p]);
        for (let j = 0; j < out; j++) {
          let s = 0;
          for (let p = 0; p < len; p++) s += xs[p] * (trans === NT ? a[j * k + p] : a[p * k + j]);
          const slot = out - 1 - j; // incy -1: element j at the far end
          const w = 1.5 * s - 0.5 * y0[slot];
          assert.ok(Math.abs(y[slot] - w) < 1e-5, `sgemv order ${order} trans ${trans} y[${j}]`);
        }
      }
    }
  },
});

Deno.test({
  name: "native build: the kernel's library is NODELETE (its threads outlive a closing Worker)",
  ignore: !lib,
  fn(t) {
    let out: Deno.CommandOutput;
    try {
      out = new Deno.Command("readelf", { args: ["-d", built.path!], stdout: "piped" })
        .outputSync();
    } catch {
      console.log("  readelf not installed (binutils): NODELETE not checked");
      return;
    }
    assert.ok(out.success, "readelf -d ran");
    assert.match(new TextDecoder().decode(out.stdout), /FLAGS_1.*NODELETE/, t.name);
  },
});

Deno.test({
  name: "native build: cached by content; a broken source gives a reason, not a throw",
  ignore: !lib,
  fn() {
    const dir = Deno.makeTempDirSync();
    const before = Deno.env.get("SAFETY_COMPASS_CACHE");
    Deno.env.set("SAFETY_COMPASS_CACHE", `${dir}/cache`);
    try {
      const src = "int sc_answer(void) { return 42; }\n";
      for (const sub of ["one", "two"]) {
        Deno.mkdirSync(`${dir}/${sub}`);
        Deno.writeTextFileSync(`${dir}/${sub}/answer.c`, src);
      }
      const first = buildNative(new URL(`file://${dir}/one/answer.c`));
      assert.ok(first.path && first.reason.startsWith("built"), first.reason);
      const second = buildNative(new URL(`file://${dir}/two/answer.c`));
      assert.equal(second.path, first.path, "same content, same library");
      assert.ok(second.reason.startsWith("cached"), second.reason);
      const opened = Deno.dlopen(first.path!, { sc_answer: { parameters: [], result: "i32" } });
      assert.equal(opened.symbols.sc_answer(), 42);
      opened.close();
      Deno.writeTextFileSync(`${dir}/broken.c`, "int f(void) { return }\n");
      const broken = buildNative(new URL(`file://${dir}/broken.c`));
      assert.equal(broken.path, undefined);
      assert.match(broken.reason, /not built: .* failed on .*broken\.c/);
      assert.deepEqual([...Deno.readDirSync(`${dir}/cache`)].map((e) => e.name).length, 1);
    } finally {
      if (before === undefined) Deno.env.delete("SAFETY_COMPASS_CACHE");
      else Deno.env.set("SAFETY_COMPASS_CACHE", before);
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
