/**
 * `deno task bench`: tokens/s of the hot paths (forward, KV-cache generation, training
 * step with AdamW, activation collection) for a GPT-2-small-shaped model and a
 * SafetyWorld-sized one, per backend configuration, beside PyTorch on CPU (Debian
 * python3-torch, 2 threads) measured in the same run, with the ratio ours / PyTorch.
 *
 * Then the real sizes (bench/real_size.ts): Qwen3-0.6B and Qwen3-4B shapes loaded with
 * `loadModel` beside Hugging Face transformers on the same checkpoint.
 *
 * Rows: PyTorch (the peer, same run), wasm + OpenBLAS, the same with unfused decoding
 * (`SAFETY_COMPASS_FUSED=0`: what lib/engine/fused.ts buys), two workers, stock kernels, cpu.
 *
 * Flags: --quick (fewer repeats; skips the slow reference rows, stock wasm kernels and pure-JS
 * cpu, and the 4B shape),
 * --only NAME (gpt2-small | safetyworld | qwen3-0.6b | qwen3-4b | real), --json PATH (every row
 * with its own and its peer's tokens/s, the ratios and issue 22's targets). The targets are
 * printed beside the ratios ("met" / "NOT met").
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import { createModel } from "../lib/model/create.ts";
import type { ConfigSpec } from "../lib/model/config.ts";
import { lmLoss, padBatch } from "../lib/optim/loss.ts";
import { AdamW, type StateLocation } from "../lib/optim/adamw.ts";
import { chunk, GradientAccumulator, targetTokens } from "../lib/optim/accumulate.ts";
import { writeJsonAtomic } from "../lib/io/atomic.ts";
import type { Model } from "../lib/model/model.ts";
import { collectActivations } from "../lib/compass/collect.ts";
import { measureInferenceOnWorkers, measureTrainingOnWorkers } from "./workers.ts";
import { timeIt } from "./timing.ts";
import { numberTokenizer, peakRssMiB, wasmHeapMiB } from "./common.ts";
import { REAL_SHAPES, ROW_MARKER } from "./real_size.ts";
import { cliArgs } from "../lib/cli/args.ts";

// `--child SHAPE LABEL PHASE [--quick]` is the internal mode of runChild (not parsed here).
const isChild = Deno.args[0] === "--child";
const { values: flags } = isChild ? { values: {} as Record<string, unknown> } : cliArgs(Deno.args, {
  usage: "usage: deno task bench [--quick] [--only NAME] [--json PATH]",
  summary: "Tokens/s of the hot paths beside PyTorch, then the real sizes beside transformers.",
  flags: {
    quick: { type: "boolean", help: "fewer repeats; skips the slowest rows and the 4B shape" },
    only: {
      type: "string",
      value: "NAME",
      help: "gpt2-small | safetyworld | qwen3-0.6b | qwen3-4b | real",
      default: "all",
    },
    json: { type: "string", value: "PATH", help: "also write the results as JSON" },
  },
});
const quick = isChild ? Deno.args.includes("--quick") : flags.quick === true;
const only = flags.only as string | undefined;
const jsonOut = flags.json as string | undefined;

interface Shape {
  name: string;
  spec: ConfigSpec;
  fwd: { b: number; t: number };
  gen: { b: number; prompt: number; steps: number };
  /**
   * Training batch; `microBatch` examples per forward/backward (gradients accumulated,
   * @default b) and where AdamW's state lives (@default "heap").
   */
  train: { b: number; t: number; microBatch?: number; state?: StateLocation };
}

const SHAPES: Shape[] = [
  {
    name: "gpt2-small",
    spec: {
      arch: "gpt2",
      vocabSize: 50257,
      nLayer: 12,
      dModel: 768,
      nHead: 12,
      maxPositions: 1024,
    },
    fwd: { b: 8, t: 128 },
    gen: { b: 8, prompt: 16, steps: 64 },
    // 124M weights + gradients + two AdamW moments exceed the 4 GiB wasm heap: moments and
    // accumulated gradients live on the host, one micro-batch's activations in the heap. Two
    // sequences a micro-batch (heap 2.4 GiB; four reach 3.4 GiB, too near the limit): the
    // weight gradients' products then run 256 deep instead of 128 and half as many host
    // accumulations run; 98 -> 118 tokens/s against micro-batches of one (issue 22).
    train: { b: 8, t: 128, microBatch: 2, state: "host" },
  },
  {
    name: "safetyworld",
    spec: { arch: "gpt2", vocabSize: 640, nLayer: 4, dModel: 128, nHead: 4, maxPositions: 128 },
    fwd: { b: 32, t: 64 },
    gen: { b: 32, prompt: 16, steps: 48 },
    train: { b: 32, t: 64 },
  },
];

function ids(b: number, t: number, vocab: number, salt = 0): number[][] {
  return Array.from(
    { length: b },
    (_, i) => Array.from({ length: t }, (_, j) => 1 + ((i * 131 + j * 17 + salt) % (vocab - 1))),
  );
}

/** Inference phase: forward, KV-cache decoding, activation collection (tokens/s). */
async function measureInference(m: Model, s: Shape, reps: number) {
  const v = s.spec.vocabSize;
  const fx = ids(s.fwd.b, s.fwd.t, v);
  const fwd = await timeIt(reps, async () => {
    const f = m.forward(fx);
    await f.logits!.data();
    tf.dispose(f.logits!);
  });
  const gx = ids(s.gen.b, s.gen.prompt, v, 7);
  const gen = await timeIt(Math.max(1, reps - 1), async () => {
    await m.generate({
      inputIds: gx,
      maxNewTokens: s.gen.steps,
      stopAtEos: false,
      batchSize: s.gen.b,
    });
  });
  // One sequence (B=1): the latency a single user sees.
  const gen1 = await timeIt(Math.max(1, reps - 1), async () => {
    await m.generate({
      inputIds: gx.slice(0, 1),
      maxNewTokens: s.gen.steps,
      stopAtEos: false,
      batchSize: 1,
    });
  });
  // Activation collection: all layers captured in one pass per batch, mean-pooled.
  const rows = fx.map((r) => ({
    prompt: r.slice(0, s.fwd.t / 2).join(" "),
    trace: r.slice(s.fwd.t / 2).join(" "),
  }));
  let collectTok = 0;
  const collect = await timeIt(Math.max(1, reps - 1), async () => {
    const acts = await collectActivations(m, rows, { batchSize: s.fwd.b, progress: "silent" });
    collectTok = acts.tokenCounts.reduce((a, b) => a + b, 0);
  });
  return {
    forward: (s.fwd.b * s.fwd.t) / fwd,
    decode: (s.gen.b * s.gen.steps) / gen,
    decode1: s.gen.steps / gen1,
    collect: collectTok / collect,
  };
}

/** How a shape trains, in words: batch, micro-batches, where the optimiser state lives. */
function trainConfig(s: Shape): string {
  const { b, t, microBatch = b, state = "heap" } = s.train;
  return `${b}x${t}, AdamW` + (microBatch < b ? `, micro-batches of ${microBatch}` : "") +
    `, state in ${state === "host" ? "host memory" : "the heap"}`;
}

/**
 * The peer's interpreter: Debian's `/usr/bin/python3` when it imports torch (python3-torch 1.13
 * with OpenBLAS, the documented CPU peer), else `python3` on PATH (whatever torch it has; the
 * version is printed in the peer's row). A pip torch 2.x on PATH measured SafetyWorld's B=1
 * decoding at a quarter of 1.13's speed on this machine (247 vs 985 tok/s, same run
 * conditions), so the choice is explicit.
 */
let peerPy: string | undefined;
function peerPython(): string {
  if (peerPy) return peerPy;
  const debian = "/usr/bin/python3";
  try {
    const ok =
      new Deno.Command(debian, { args: ["-c", "import torch"], stdout: "null", stderr: "null" })
        .outputSync().success;
    peerPy = ok ? debian : "python3";
  } catch {
    peerPy = "python3";
  }
  return peerPy;
}

/** Training phase: forward + backward (per micro-batch) + AdamW step (tokens/s). */
async function measureTraining(m: Model, s: Shape, reps: number) {
  const { b, t, microBatch = b, state = "heap" } = s.train;
  const x = ids(b, t, s.spec.vocabSize, 3);
  const parts = chunk(x, microBatch).map((rows) => {
    const batch = padBatch(rows, new Array(rows.length).fill(1));
    return { batch, weight: targetTokens(batch) };
  });
  const vars = [...m.params.values()];
  const opt = new AdamW({ lr: 1e-4, stateLocation: state });
  const acc = new GradientAccumulator(vars, state);
  const train = await timeIt(Math.max(1, reps - 1), async () => {
    await acc.accumulate(parts, (batch) => lmLoss(m.config, m.params, batch));
    await acc.apply(opt);
  });
  acc.dispose();
  opt.dispose();
  return {
    train: (b * t) / train,
    trainConfig: trainConfig(s),
    wasmHeapMiB: wasmHeapMiB(),
    peakRssMiB: peakRssMiB(),
  };
}

async function torchPeer(s: Shape): Promise<Record<string, number> | string> {
  const cfg = {
    arch: s.spec.arch,
    n_layer: s.spec.nLayer,
    d_model: s.spec.dModel,
    n_head: s.spec.nHead,
    vocab: s.spec.vocabSize,
    n_ctx: s.spec.maxPositions,
    fwd_batch: s.fwd.b,
    fwd_seq: s.fwd.t,
    gen_batch: s.gen.b,
    gen_prompt: s.gen.prompt,
    new_tokens: s.gen.steps,
    train_batch: s.train.b,
    train_seq: s.train.t,
    repeats: quick ? 2 : 3,
  };
  try {
    const out = await new Deno.Command(peerPython(), {
      args: [new URL("./torch_peer.py", import.meta.url).pathname, JSON.stringify(cfg)],
      env: { OMP_WAIT_POLICY: "PASSIVE" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      return `torch peer failed: ${new TextDecoder().decode(out.stderr).trim().split("\n").at(-1)}`;
    }
    const line = new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!;
    return JSON.parse(line);
  } catch (err) {
    return `torch peer unavailable: ${(err as Error).message}`;
  }
}

/** `workers`: data-parallel worker threads (bench/workers.ts), each with its own backend. */
type Config = {
  label: string;
  backend: "wasm" | "cpu";
  blas: boolean;
  workers?: number;
  /** false: SAFETY_COMPASS_FUSED=0 (composed decoding ops; inference only, training is the same). */
  fused?: boolean;
};

/** Issue 22's targets (ours / PyTorch, same run), printed beside the ratios and kept in --json. */
const TARGETS: Record<string, Partial<Record<"forward" | "decode" | "decode1" | "train", number>>> =
  {
    safetyworld: { forward: 1.0, decode: 1.0, decode1: 1.0, train: 1.0 },
    "gpt2-small": { decode: 1.5, train: 1.0 },
  };
const CONFIGS: Config[] = [
  { label: "wasm + OpenBLAS", backend: "wasm", blas: true },
  { label: "  same, unfused decoding", backend: "wasm", blas: true, fused: false },
  { label: "wasm+OpenBLAS, 2 workers", backend: "wasm", blas: true, workers: 2 },
  { label: "wasm (stock kernels)", backend: "wasm", blas: false },
  { label: "cpu (pure JS)", backend: "cpu", blas: false },
];

/** Child mode: measure one (shape, configuration) in a fresh process and print one JSON line. */
async function child(shapeName: string, label: string, phase: string): Promise<void> {
  const s = SHAPES.find((x) => x.name === shapeName)!;
  const cfg = CONFIGS.find((c) => c.label === label)!;
  const m = await createModel(s.spec, {
    tokenizer: numberTokenizer(s.spec.vocabSize),
    backend: cfg.backend,
    blas: cfg.blas,
    seed: 1,
  });
  if (cfg.blas && !m.backend.blas?.enabled) {
    console.log(JSON.stringify({ skipped: m.backend.blas?.reason }));
    return;
  }
  const reps = quick ? 2 : 3;
  if (cfg.workers) {
    const ws = { vocab: s.spec.vocabSize, fwd: s.fwd, gen: s.gen, train: s.train };
    const w = phase === "train"
      ? { ...await measureTrainingOnWorkers(m, ws, reps, cfg.workers), trainConfig: trainConfig(s) }
      : await measureInferenceOnWorkers(m, ws, reps, cfg.workers);
    console.log(JSON.stringify({ ...w, backend: m.backend.reason }));
    return;
  }
  const r = phase === "train"
    ? await measureTraining(m, s, reps)
    : await measureInference(m, s, reps);
  console.log(JSON.stringify({ ...r, backend: m.backend.reason }));
}

if (Deno.args[0] === "--child") {
  await child(Deno.args[1], Deno.args[2], Deno.args[3]);
  Deno.exit(0);
}

/** Runs one configuration in its own process, so a wasm heap abort (4 GiB) costs one row only. */
async function runChild(
  shape: string,
  label: string,
  phase: string,
  fused = true,
): Promise<Record<string, unknown>> {
  const args = [
    "run",
    "--allow-read",
    "--allow-write",
    "--allow-env",
    "--allow-sys",
    "--allow-ffi",
    "--allow-run",
    new URL(import.meta.url).pathname,
    "--child",
    shape,
    label,
    phase,
    ...(quick ? ["--quick"] : []),
  ];
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    stdout: "piped",
    stderr: "piped",
    env: { SAFETY_COMPASS_QUIET: "1", ...(fused ? {} : { SAFETY_COMPASS_FUSED: "0" }) },
  }).output();
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n").filter((l) =>
    l.startsWith("{")
  );
  if (out.success && lines.length) return JSON.parse(lines.at(-1)!);
  const err = new TextDecoder().decode(out.stderr);
  if (/Aborted\(\)|memory access out of bounds|Out of memory/.test(err)) {
    return { failed: "aborted: wasm heap exhausted (4 GiB)" };
  }
  const first = err.split("\n").find((l) => /error/i.test(l)) ?? err.trim().split("\n").at(-1);
  // deno-lint-ignore no-control-regex -- strips ANSI colour codes from the child's stderr
  return { failed: first?.replace(/\x1b\[[0-9;]*m/g, "").trim() ?? "failed" };
}

const rows: Record<string, unknown>[] = [];
const fmt = (
  x: unknown,
) => (typeof x === "number" && Number.isFinite(x) ? x.toFixed(1).padStart(9) : "        -");
console.log(
  `safety-compass bench  (${new Date().toISOString()}, ${navigator.hardwareConcurrency} cores${
    quick ? ", quick" : ""
  })`,
);
for (const s of SHAPES) {
  if (only && s.name !== only) continue;
  console.log(
    `\n== ${s.name}: forward ${s.fwd.b}x${s.fwd.t}, decode B=${s.gen.b} x ${s.gen.steps} new, train ${
      trainConfig(s)
    }`,
  );
  const peer = await torchPeer(s);
  const peerRow = typeof peer === "string" ? undefined : peer;
  if (typeof peer === "string") console.log(`  ${peer}`);
  // PyTorch decoding one sequence (B=1), in its own small run.
  const p1 = peerRow
    ? await torchPeer({
      ...s,
      fwd: { b: 1, t: 16 },
      gen: { ...s.gen, b: 1 },
      train: { b: 1, t: 16 },
    })
    : undefined;
  const peerDecode1 = typeof p1 === "object" ? p1.decode_tok_s : undefined;
  console.log(
    `  ${"configuration".padEnd(24)} ${"forward".padStart(9)} ${"decode".padStart(9)} ${
      "dec B=1".padStart(9)
    } ${"train".padStart(9)} ${"collect".padStart(9)}   tok/s`,
  );
  if (peerRow) {
    console.log(
      `  ${`PyTorch ${peerRow.torch_version ?? ""} CPU`.padEnd(24)} ${fmt(peerRow.forward_tok_s)} ${
        fmt(peerRow.decode_tok_s)
      } ${fmt(peerDecode1)} ${fmt(peerRow.train_tok_s)}`,
    );
  }
  for (const cfg of CONFIGS) {
    if (cfg.backend === "cpu" && s.name === "gpt2-small") continue; // minutes per row
    if (quick && !cfg.blas) {
      console.log(
        `  ${
          cfg.label.padEnd(24)
        } skipped in --quick (a slow reference row: the full run measures it)`,
      );
      continue;
    }
    const r = await runChild(s.name, cfg.label, "infer", cfg.fused ?? true);
    if (!r.skipped && !r.failed) {
      if (cfg.fused === false) {
        r.train = "same as the row above (the fused kernels never run under a gradient tape)";
      } else if (!cfg.blas && s.name === "gpt2-small") {
        r.train = "skipped: stock kernels take minutes per step";
      } else if (cfg.workers && s.name === "gpt2-small") {
        r.train = "not measured with workers (minutes per step; see the row above)";
      } else {
        const t = await runChild(s.name, cfg.label, "train");
        r.train = t.failed ? `train ${t.failed}` : t.train;
        if (!t.failed) {
          const mem = [["wasm heap", t.wasmHeapMiB], ["peak RSS", t.peakRssMiB]]
            .filter(([, v]) => typeof v === "number")
            .map(([k, v]) => `${k} ${((v as number) / 1024).toFixed(2)} GiB`);
          r.trainNote = `train ${t.trainConfig}${mem.length ? `; ${mem.join(", ")}` : ""}`;
          Object.assign(r, { trainWasmHeapMiB: t.wasmHeapMiB, trainPeakRssMiB: t.peakRssMiB });
        }
      }
    }
    if (r.skipped || r.failed) {
      console.log(`  ${cfg.label.padEnd(24)} ${r.skipped ? `skipped: ${r.skipped}` : r.failed}`);
      rows.push({ shape: s.name, config: cfg.label, ...r });
      continue;
    }
    const peerOf = (k: "forward" | "decode" | "decode1" | "train") =>
      k === "decode1" ? peerDecode1 : peerRow?.[`${k}_tok_s`];
    const ratioOf = (k: "forward" | "decode" | "decode1" | "train") => {
      const p = peerOf(k);
      return p && typeof r[k] === "number" && Number.isFinite(r[k] as number)
        ? (r[k] as number) / p
        : undefined;
    };
    const target = TARGETS[s.name] ?? {};
    const ratio = (k: "forward" | "decode" | "decode1" | "train") => {
      const v = ratioOf(k), t = target[k];
      if (v === undefined) return "-";
      return v.toFixed(2) + "x" +
        (t ? ` (target ${t.toFixed(1)}x: ${v >= t ? "met" : "NOT met"})` : "");
    };
    const ratios = Object.fromEntries(
      (["forward", "decode", "decode1", "train"] as const).map((k) => [k, ratioOf(k) ?? null]),
    );
    console.log(
      `  ${cfg.label.padEnd(24)} ${fmt(r.forward)} ${fmt(r.decode)} ${fmt(r.decode1)} ${
        fmt(r.train)
      } ${fmt(r.collect)}   ` +
        `vs PyTorch: forward ${ratio("forward")}, decode ${ratio("decode")}, B=1 ${
          ratio("decode1")
        }, train ${ratio("train")}`,
    );
    if (r.trainNote) console.log(`  ${"".padEnd(24)} ${r.trainNote}`);
    if (cfg.workers) {
      // One sequence cannot be split: B=1 is one stream (latency), or one stream per worker.
      const t1 = peerDecode1;
      const vs = (x: unknown) => t1 && typeof x === "number" ? ` (${(x / t1).toFixed(2)}x)` : "";
      console.log(
        `  ${"".padEnd(24)} ${r.workers}; decode B=1: 1 stream ${fmt(r.decode1).trim()}${
          vs(r.decode1)
        }, ${cfg.workers} streams (one per worker) ${fmt(r.decodeStreams).trim()}${
          vs(r.decodeStreams)
        } tok/s` +
          (t1 ? `; PyTorch B=1 ${t1.toFixed(1)}` : typeof p1 === "string" ? `; ${p1}` : ""),
      );
    }
    rows.push({
      shape: s.name,
      config: cfg.label,
      ...r,
      peer: peerRow ? { ...peerRow, decode1_tok_s: peerDecode1 ?? null } : null,
      ratios,
      targets: target,
    });
  }
}
// Real sizes (issue 17): Qwen3 shapes through loadModel beside transformers, in a child
// process each (bench/real_size.ts), so their host memory is returned between shapes.
for (const r of REAL_SHAPES) {
  if (only && r.name !== only && only !== "real") continue;
  if (quick && r.name === "qwen3-4b") {
    console.log(
      `\n== ${r.name}: skipped in --quick (an 8 GB checkpoint; the full run measures it)`,
    );
    continue;
  }
  console.log(
    `\n== ${r.name} (real size): forward ${r.fwd.join("x")}, decode ${
      r.decode.map(([b, n]) => `B=${b} x ${n}`).join(", ")
    }${r.lora ? `, LoRA step ${r.lora.join("x")}` : ""}`,
  );
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./real_size.ts", import.meta.url).pathname,
      "--only",
      r.name,
      ...(quick ? ["--quick"] : []),
    ],
    stdout: "piped",
    stderr: "piped",
    env: { SAFETY_COMPASS_QUIET: "1" },
  }).output();
  const all = new TextDecoder().decode(out.stdout).trim().split("\n");
  const text = all.filter((l) => !l.startsWith(ROW_MARKER)).join("\n");
  const parsed = all.filter((l) => l.startsWith(ROW_MARKER))
    .map((l) => JSON.parse(l.slice(ROW_MARKER.length)) as Record<string, unknown>);
  if (text) console.log(text);
  if (!out.success) {
    console.log(
      `  failed: ${
        new TextDecoder().decode(out.stderr).trim().split("\n").find((l) => /rror/.test(l)) ??
          "see stderr"
      }`,
    );
  }
  rows.push({
    shape: r.name,
    config: "real size",
    ...(parsed[0] ?? {}),
    output: text,
    ok: out.success,
  });
}
if (jsonOut) await writeJsonAtomic(jsonOut, rows);
