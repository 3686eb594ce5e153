/**
 * {@link Activations}: pooled hidden states of a set of rows (one [n, d] matrix per layer plus
 * the rows' metadata, and per-token matrices for pooling "none"), as lib/compass/collect.ts
 * gathers them. Saves as `activations.safetensors` + `meta.json`, loads back, selects rows and
 * layers, and renders itself in Jupyter.
 *
 * @module
 */

import { join } from "node:path";
import * as aq from "arquero";
import { readSafetensors, serializeSafetensors, type TensorToWrite } from "../io/safetensors.ts";
import { writeDirAtomic, writeFileAtomic, writeJsonAtomic } from "../io/atomic.ts";
import { escapeHtml, formatNumber, JUPYTER_DISPLAY, type MimeBundle } from "../viz/display.ts";
import type { Pooling } from "./compass.ts";
import { makeMatrix, type Matrix, selectRows } from "./matrix.ts";

/** What {@link Activations} is built from (see its fields). */
export interface ActivationsInit {
  meta: Record<string, unknown>[];
  layers: number[];
  pooling: Pooling;
  data: Map<number, Matrix>;
  tokens?: Map<number, Matrix[]>;
  tokenCounts: number[];
  responseStart: number[];
  truncated?: number[];
  tokensPerSecond?: number;
  seconds?: number;
  model?: string;
  nLayer?: number;
}

const FORMAT = "safety-compass.activations";

/** Pooled hidden states of a set of rows: one [n, d] matrix per layer plus the rows' metadata. */
export class Activations {
  /** The input rows, every column kept (text included). */
  readonly meta: Record<string, unknown>[];
  /** Captured layers, ascending (0 = embeddings). */
  readonly layers: number[];
  /** How the token states were pooled. */
  readonly pooling: Pooling;
  /** layer -> [n, d] pooled rows (for pooling "none": the masked means). */
  readonly data: Map<number, Matrix>;
  /** Pooling "none" only: layer -> per row, its [T_i, d] token states. */
  readonly tokens?: Map<number, Matrix[]>;
  /** Real tokens per row (prompt + trace, after truncation). */
  readonly tokenCounts: number[];
  /** Index of each row's first trace token (= its prompt length after truncation). */
  readonly responseStart: number[];
  /** Tokens dropped per row by `maxLength`. */
  readonly truncated: number[];
  /** Real tokens per second over the whole collection (forward + pooling + reads). */
  readonly tokensPerSecond: number;
  /** Wall-clock seconds of the collection. */
  readonly seconds: number;
  /** The model's source. */
  readonly model: string;
  /** Decoder layers of the model (its last layer is CRAFT's default). */
  readonly nLayer?: number;

  /** Checks that every matrix has one row per meta row and the same width. */
  constructor(init: ActivationsInit) {
    const n = init.meta.length;
    let d: number | undefined;
    for (const l of init.layers) {
      const m = init.data.get(l);
      if (!m || m.rows !== n || (d !== undefined && m.cols !== d)) {
        throw new Error(
          `Cannot build Activations: layer ${l} is ${m ? `[${m.rows}, ${m.cols}]` : "missing"}, ` +
            `expected [${n}, ${d ?? "d"}] (one row per meta row)`,
        );
      }
      d = m.cols;
      const tk = init.tokens?.get(l);
      if (
        init.tokens && (!tk || tk.length !== n || tk.some((t, i) => t.rows !== init.tokenCounts[i]))
      ) {
        throw new Error(
          `Cannot build Activations: token matrices of layer ${l} do not match tokenCounts`,
        );
      }
    }
    if (init.tokenCounts.length !== n || init.responseStart.length !== n) {
      throw new Error(`Cannot build Activations: tokenCounts/responseStart need ${n} entries`);
    }
    this.meta = init.meta;
    this.layers = init.layers;
    this.pooling = init.pooling;
    this.data = init.data;
    this.tokens = init.tokens;
    this.tokenCounts = init.tokenCounts;
    this.responseStart = init.responseStart;
    this.truncated = init.truncated ?? new Array(n).fill(0);
    this.tokensPerSecond = init.tokensPerSecond ?? 0;
    this.seconds = init.seconds ?? 0;
    this.model = init.model ?? "";
    this.nLayer = init.nLayer;
  }

  /** Number of rows. */
  get nRows(): number {
    return this.meta.length;
  }

  /** Width of the hidden states. */
  get dModel(): number {
    return this.data.get(this.layers[0])?.cols ?? 0;
  }

  /** The metadata as an arquero table (columns: the union of the rows' keys). */
  table(): aq.ColumnTable {
    const names = [...new Set(this.meta.flatMap((r) => Object.keys(r)))];
    return aq.from(this.meta, names);
  }

  #resolve(l: number): number {
    const layer = l < 0 && this.nLayer !== undefined ? this.nLayer + 1 + l : l;
    if (!this.data.has(layer)) {
      throw new Error(
        `Activations hold no layer ${l}: collected layers are ${this.layers.join(", ")}; ` +
          `collect it with {layers: [${l}, ...]}`,
      );
    }
    return layer;
  }

  /** The pooled [n, d] matrix of layer `l` (negative counts from the model's last layer). */
  layer(l: number): Matrix {
    return this.data.get(this.#resolve(l))!;
  }

  /** Pooling "none" only: the [T_i, d] token states of every row at layer `l`. */
  layerTokens(l: number): Matrix[] {
    if (!this.tokens) {
      throw new Error(
        `Activations pooled with "${this.pooling}" hold no token states; collect with pooling "none"`,
      );
    }
    return this.tokens.get(this.#resolve(l))!;
  }

  /** The values of a metadata column as strings; throws naming the first row that lacks it. */
  labels(column = "traceLabel"): string[] {
    return this.meta.map((r, i) => {
      const v = r[column];
      if (v === undefined || v === null) {
        throw new Error(
          `Cannot read labels: row ${i} has no '${column}' (its columns: ${
            Object.keys(r).join(", ")
          })`,
        );
      }
      return String(v);
    });
  }

  /** A new Activations holding the rows at `indices`, in that order. */
  select(indices: readonly number[]): Activations {
    const pick = <T>(xs: readonly T[]) => indices.map((i) => xs[i]);
    return new Activations({
      ...this,
      meta: pick(this.meta),
      data: new Map(this.layers.map((l) => [l, selectRows(this.data.get(l)!, indices)])),
      tokens: this.tokens && new Map(this.layers.map((l) => [l, pick(this.tokens!.get(l)!)])),
      tokenCounts: pick(this.tokenCounts),
      responseStart: pick(this.responseStart),
      truncated: pick(this.truncated),
    });
  }

  /** Writes `dir/activations.safetensors` (F32 `layer.L` [n, d], `tokens.L` [sum T_i, d]) and `dir/meta.json`, atomically. */
  save(dir: string): Promise<void> {
    const d = this.dModel, total = this.tokenCounts.reduce((a, b) => a + b, 0);
    const tensors: Record<string, TensorToWrite> = {};
    for (const l of this.layers) {
      tensors[`layer.${l}`] = { shape: [this.nRows, d], data: this.data.get(l)!.data };
      if (this.tokens) {
        const flat = new Float32Array(total * d);
        let at = 0;
        for (const m of this.tokens.get(l)!) (flat.set(m.data, at), at += m.data.length);
        tensors[`tokens.${l}`] = { shape: [total, d], data: flat };
      }
    }
    const { meta, layers, pooling, tokenCounts, responseStart, truncated } = this;
    return writeDirAtomic(dir, async (tmp) => {
      await writeFileAtomic(
        join(tmp, "activations.safetensors"),
        serializeSafetensors(tensors, { format: FORMAT }),
      );
      await writeJsonAtomic(join(tmp, "meta.json"), {
        format: FORMAT,
        version: 1,
        model: this.model,
        nLayer: this.nLayer,
        layers,
        pooling,
        dModel: d,
        tokensPerSecond: this.tokensPerSecond,
        seconds: this.seconds,
        tokenCounts,
        responseStart,
        truncated,
        rows: meta,
      });
    });
  }

  /** Reads a folder written by {@link Activations.save}; errors name the file and field. */
  static async load(dir: string): Promise<Activations> {
    const path = join(dir, "meta.json");
    let m: Record<string, unknown>;
    try {
      m = JSON.parse(await Deno.readTextFile(path));
    } catch (err) {
      throw new Error(`Cannot load activations from ${dir}: ${path}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    if (m.format !== FORMAT) {
      throw new Error(`Cannot load ${path}: field 'format' is ${m.format}, expected ${FORMAT}`);
    }
    for (const f of ["layers", "tokenCounts", "responseStart", "rows"]) {
      if (!Array.isArray(m[f])) {
        throw new Error(`Cannot load ${path}: field '${f}' must be an array`);
      }
    }
    const file = await readSafetensors(join(dir, "activations.safetensors"));
    const layers = m.layers as number[], counts = m.tokenCounts as number[];
    const n = (m.rows as unknown[]).length, d = m.dModel as number;
    const get = (name: string, rows: number) => {
      const t = file.tensors.get(name);
      if (!t || t.shape[0] !== rows || t.shape[1] !== d) {
        throw new Error(
          `Cannot load ${dir}/activations.safetensors: tensor '${name}' is ` +
            `${t ? `[${t.shape}]` : "missing"}, expected [${rows}, ${d}] (meta.json)`,
        );
      }
      return t.data;
    };
    const data = new Map(layers.map((l) => [l, makeMatrix(n, d, get(`layer.${l}`, n))]));
    let tokens: Map<number, Matrix[]> | undefined;
    if (m.pooling === "none") {
      const total = counts.reduce((a, b) => a + b, 0);
      tokens = new Map(layers.map((l) => {
        const flat = get(`tokens.${l}`, total);
        let at = 0;
        return [l, counts.map((c) => makeMatrix(c, d, flat.subarray(at * d, (at += c) * d)))];
      }));
    }
    return new Activations({
      meta: m.rows as Record<string, unknown>[],
      layers,
      pooling: m.pooling as Pooling,
      data,
      tokens,
      tokenCounts: counts,
      responseStart: m.responseStart as number[],
      truncated: m.truncated as number[] | undefined,
      tokensPerSecond: m.tokensPerSecond as number | undefined,
      seconds: m.seconds as number | undefined,
      model: m.model as string | undefined,
      nLayer: m.nLayer as number | undefined,
    });
  }

  /** Counts of the label column ("traceLabel", else "label") over the rows. */
  labelCounts(): Record<string, number> {
    const col = this.meta.some((r) => r.traceLabel !== undefined) ? "traceLabel" : "label";
    const out: Record<string, number> = {};
    for (const r of this.meta) {
      if (r[col] !== undefined) out[String(r[col])] = (out[String(r[col])] ?? 0) + 1;
    }
    return out;
  }

  /** A one-line description. */
  toString(): string {
    const counts = Object.entries(this.labelCounts()).map(([k, v]) => `${k} ${v}`).join(", ");
    return `Activations(${this.nRows} rows, layers ${this.layers.join(",")}, d=${this.dModel}, ` +
      `pooling ${this.pooling}${counts ? `; ${counts}` : ""}; ${
        formatNumber(this.tokensPerSecond, 3)
      } tok/s)`;
  }

  /** Jupyter rich display: an HTML summary (rows, layers, pooling, label counts, speed). */
  [JUPYTER_DISPLAY](): MimeBundle {
    const mean = this.tokenCounts.reduce((a, b) => a + b, 0) / Math.max(1, this.nRows);
    const items: [string, string][] = [
      ["model", this.model],
      ["rows", String(this.nRows)],
      ["layers", `${this.layers.join(", ")} (${this.layers.length})`],
      ["d_model", String(this.dModel)],
      ["pooling", this.pooling],
      ["tokens per row", formatNumber(mean, 3)],
      ["rows truncated", String(this.truncated.filter((t) => t > 0).length)],
      ["speed", `${formatNumber(this.tokensPerSecond, 3)} tokens/s`],
      ...Object.entries(this.labelCounts()).map(([k, v]) =>
        [`label: ${k}`, String(v)] as [string, string]
      ),
    ];
    const html = `<table class="sc-table"><caption><b>Activations</b></caption>${
      items.map(([k, v]) =>
        `<tr><th style="text-align:left">${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`
      )
        .join("")
    }</table>`;
    return { "text/html": html, "text/plain": this.toString() };
  }
}
