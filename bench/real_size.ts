/**
 * Speed at the sizes researchers use, beside PyTorch in the same run (issue 17, item 6):
 * random-weight Qwen3 checkpoints of the real shapes (written once into a temporary folder by
 * bench/synthetic_checkpoint.ts, bf16 as real checkpoints ship), loaded with `loadModel`
 * (2-D weights outside the wasm heap), and the same folder run by Hugging Face transformers
 * (bench/hf_peer.py, 2 threads).
 * - Qwen3-0.6B shape: forward 8x128, decode at B=1 and B=8, one LoRA training step (r=8 on
 *   q_proj/v_proj, AdamW, 1x128 tokens: 2x128 outgrows the 4 GiB heap in the backward pass);
 *   float32 weights on both sides.
 * - Qwen3-4B shape (full run only): decode at B=1, forward 1x128; bf16 weights on both sides
 *   (float32 would need 15 GiB per side).
 * Rows: ours, peer, ratio ours / peer, and the 1.0x target for the 0.6B forward and decode.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import { join } from "node:path";
import { loadModel } from "../lib/model/load.ts";
import type { Model } from "../lib/model/model.ts";
import { addLora, trainableVariables } from "../lib/model/lora.ts";
import { lmLoss, padBatch } from "../lib/optim/loss.ts";
import { AdamW } from "../lib/optim/adamw.ts";
import { externalWeightsInfo } from "../lib/engine/external_weights.ts";
import { type QwenShape, writeSyntheticCheckpoint } from "./synthetic_checkpoint.ts";
import { timeIt } from "./timing.ts";
import { numberTokenizer, peakRssMiB } from "./common.ts";

/** One real-size configuration. */
export interface RealShape {
  /** Row name. */
  name: string;
  /** Qwen3 dimensions. */
  shape: QwenShape;
  /** Host storage of the weights (and the peer's dtype). */
  dtype: "float32" | "bfloat16";
  /** Forward batch x tokens. */
  fwd: [number, number];
  /** Decode batches and new tokens. */
  decode: [number, number][];
  /** LoRA training batch x tokens, if measured. */
  lora?: [number, number];
}

/** The shapes of `deno task bench` (the 4B one only in the full run). */
export const REAL_SHAPES: RealShape[] = [
  {
    name: "qwen3-0.6b",
    shape: { layers: 28, d: 1024, heads: 16, kvHeads: 8, ff: 3072, vocab: 151936 },
    dtype: "float32",
    fwd: [8, 128],
    decode: [[1, 16], [8, 16]],
    lora: [1, 128],
  },
  {
    name: "qwen3-4b",
    shape: { layers: 36, d: 2560, heads: 32, kvHeads: 8, ff: 9728, vocab: 151936 },
    dtype: "bfloat16",
    fwd: [1, 128],
    decode: [[1, 8]],
  },
];

/** A Qwen3 config.json for a shape (the fields of the Qwen3 releases). */
export function qwen3Config(s: QwenShape): Record<string, unknown> {
  return {
    architectures: ["Qwen3ForCausalLM"],
    model_type: "qwen3",
    vocab_size: s.vocab,
    hidden_size: s.d,
    intermediate_size: s.ff,
    num_hidden_layers: s.layers,
    num_attention_heads: s.heads,
    num_key_value_heads: s.kvHeads,
    head_dim: 128,
    hidden_act: "silu",
    max_position_embeddings: 40960,
    rms_norm_eps: 1e-6,
    rope_theta: 1000000,
    tie_word_embeddings: true,
    attention_bias: false,
    torch_dtype: "bfloat16",
    bos_token_id: 151643,
    eos_token_id: 151645,
  };
}

/** Writes the synthetic checkpoint of `s` into `dir` unless it is there already. */
export async function ensureCheckpoint(dir: string, s: QwenShape): Promise<void> {
  try {
    await Deno.stat(join(dir, "config.json"));
  } catch {
    await writeSyntheticCheckpoint(dir, s);
    await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(qwen3Config(s), null, 2));
  }
}

function ids(b: number, t: number, vocab: number, salt = 0): number[][] {
  return Array.from(
    { length: b },
    (_, i) => Array.from({ length: t }, (_, j) => 1 + ((i * 131 + j * 17 + salt) % (vocab - 1))),
  );
}

/** Tokens/s of ours on one shape. */
async function ours(m: Model, r: RealShape, reps: number): Promise<Record<string, number>> {
  const v = r.shape.vocab;
  const out: Record<string, number> = {};
  const [fb, ft] = r.fwd;
  const fx = ids(fb, ft, v);
  const note = (what: string) => console.error(`  ${r.name}: measuring ${what}`);
  note(`forward ${fb}x${ft}`);
  out.forward = (fb * ft) / await timeIt(reps, async () => {
    const f = m.forward(fx);
    await f.logits!.data();
    tf.dispose(f.logits!);
  });
  for (const [b, steps] of r.decode) {
    note(`decode B=${b}`);
    const gx = ids(b, 16, v, 7);
    const gen = (n: number) => async () => {
      await m.generate({ inputIds: gx, maxNewTokens: n, stopAtEos: false, batchSize: b });
    };
    const full = await timeIt(reps, gen(steps)), one = await timeIt(reps, gen(1));
    out[`decode${b}`] = (b * (steps - 1)) / Math.max(full - one, 1e-9);
  }
  if (r.lora) {
    const [b, t] = r.lora;
    note(`LoRA step ${b}x${t}`);
    addLora(m, { rank: 8, targets: ["q_proj", "v_proj"], seed: 0 });
    const vars = trainableVariables(m);
    const opt = new AdamW({ lr: 1e-4 });
    const batch = padBatch(ids(b, t, v, 3), new Array(b).fill(1));
    out.lora = (b * t) / await timeIt(reps, async () => {
      const { value, grads } = tf.variableGrads(() => lmLoss(m.config, m.params, batch), vars);
      await value.data();
      opt.step(vars, vars.map((x) => grads[x.name]));
      tf.dispose([value, ...Object.values(grads)]);
    });
    opt.dispose();
  }
  return out;
}

/** The transformers peer on the same folder, or why it could not run. */
async function peer(dir: string, r: RealShape): Promise<Record<string, number> | string> {
  const python = Deno.env.get("SAFETY_COMPASS_PYTHON") ?? "python3";
  const cfg = { dir, dtype: r.dtype, fwd: r.fwd, decode: r.decode, lora: r.lora, prompt: 16 };
  try {
    const out = await new Deno.Command(python, {
      args: [new URL("./hf_peer.py", import.meta.url).pathname, JSON.stringify(cfg)],
      env: { OMP_WAIT_POLICY: "PASSIVE", TOKENIZERS_PARALLELISM: "false" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      const err = new TextDecoder().decode(out.stderr).trim().split("\n").at(-1);
      return `transformers peer failed: ${err}`;
    }
    return JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!);
  } catch (err) {
    return `transformers peer unavailable (${python}: ${(err as Error).message})`;
  }
}

/** The targets issue 17 sets (ours / PyTorch), printed beside the ratios. */
const TARGETS: Record<string, Record<string, number>> = {
  "qwen3-0.6b": { forward: 1.0, decode1: 1.0, decode8: 1.0 },
};

/**
 * Measures one real shape (ours in this process, then the peer in a subprocess) and returns
 * printable rows. The checkpoint folder is kept for the next run (`/tmp/sc-bench-<name>`).
 */
export async function measureRealSize(
  r: RealShape,
  reps: number,
): Promise<{ lines: string[]; row: Record<string, unknown> }> {
  const dir = join(Deno.env.get("TMPDIR") ?? "/tmp", `sc-bench-${r.name}`);
  await ensureCheckpoint(dir, r.shape);
  const m = await loadModel(dir, {
    tokenizer: numberTokenizer(r.shape.vocab),
    weights: "external",
    externalStorage: r.dtype,
  });
  let mine: Record<string, number>;
  try {
    mine = await ours(m, r, reps);
  } finally {
    m.dispose();
  }
  const rss = peakRssMiB();
  const theirs = await peer(dir, r);
  const lines = [
    `${r.name} (${r.dtype} weights outside the heap: ${externalWeightsInfo().reason}; ` +
    `peak RSS ${((rss ?? NaN) / 1024).toFixed(2)} GiB; peer: ${
      typeof theirs === "string"
        ? theirs
        : `transformers, torch ${theirs.torch}, ${theirs.threads} threads`
    })`,
  ];
  const ratios: Record<string, number | null> = {};
  for (const [k, v] of Object.entries(mine)) {
    const p = typeof theirs === "string" ? undefined : theirs[k];
    const ratio = p ? v / p : NaN;
    ratios[k] = Number.isFinite(ratio) ? ratio : null;
    const target = TARGETS[r.name]?.[k];
    lines.push(
      `  ${k.padEnd(8)} ours ${v.toFixed(1).padStart(8)} tok/s   transformers ${
        p === undefined ? "     n/a" : p.toFixed(1).padStart(8)
      } tok/s   ratio ${Number.isNaN(ratio) ? " n/a" : ratio.toFixed(2) + "x"}` +
        (target
          ? `   (target >= ${target.toFixed(1)}x: ${ratio >= target ? "met" : "NOT met"})`
          : ""),
    );
  }
  const row = {
    ours: mine,
    peer: typeof theirs === "string" ? null : theirs,
    peerNote: typeof theirs === "string" ? theirs : undefined,
    ratios,
    targets: TARGETS[r.name] ?? {},
    peakRssMiB: rss,
  };
  return { lines, row };
}

/** The marker of the machine-readable line the child prints for bench/run.ts's --json. */
export const ROW_MARKER = "@@bench-row ";

if (import.meta.main) {
  const quick = Deno.args.includes("--quick");
  const { initBackend } = await import("../lib/engine/backend.ts");
  await initBackend("wasm");
  const only = Deno.args.includes("--only")
    ? Deno.args[Deno.args.indexOf("--only") + 1]
    : undefined;
  for (
    const r of REAL_SHAPES.filter((s) => (only ? s.name === only : !quick || s.name !== "qwen3-4b"))
  ) {
    const { lines, row } = await measureRealSize(r, quick ? 1 : 2);
    for (const line of lines) console.log(line);
    console.log(ROW_MARKER + JSON.stringify({ shape: r.name, ...row }));
  }
}
