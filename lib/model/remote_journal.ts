/**
 * An append-only JSON Lines journal (https://jsonlines.org) for long, resumable runs: a
 * header line records what made the journal, each finished record is appended and flushed
 * at once, and on restart the records already there are read back so they can be skipped.
 * A last line cut off by a crash is dropped (and cut from the file before the next append);
 * a header that does not match the current run is an error, so results made with other
 * options are never mixed in silently. {@linkcode generateResumable} runs a generation over
 * rows on top of it (re-exported by lib/model/remote.ts).
 *
 * @module
 */

import { canonicalJson, HttpError, isRetryableStatus } from "../net/http.ts";
import { writeTextFileAtomic } from "../io/atomic.ts";
import type { ForcedSpan, GenerateResult } from "./generate.ts";
import type { ForcedText, RemoteGenerateOptions } from "./remote.ts";
import { Progress } from "../viz/progress.ts";

/** What an open journal gives. */
export interface Journal<T> {
  /** Records read back from an earlier run, in file order. */
  readonly previous: T[];
  /** Appends one record (one line, written and flushed before the promise resolves). */
  append(record: T): Promise<void>;
}

/**
 * Opens (or creates) the journal at `path`. `header` identifies the run (kind, model,
 * options); an existing journal must have an equal header.
 *
 * @throws Error naming the file and line when a line in the middle is not JSON, or when the
 *   header differs (delete the file or choose another path to start over).
 */
export async function openJournal<T>(
  path: string,
  header: Record<string, unknown>,
): Promise<Journal<T>> {
  let text = "";
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) {
      throw new Error(`Cannot open journal ${path}: ${(err as Error).message}`, { cause: err });
    }
  }
  const want = canonicalJson({ header });
  const lines = text.split("\n");
  const complete = lines.slice(0, -1); // the last element is "" or a line cut off mid-write
  if (lines[lines.length - 1] !== "") {
    console.warn(`Journal ${path}: dropping a last line cut off by an interrupted run`);
    await writeTextFileAtomic(path, complete.map((l) => l + "\n").join(""));
  }
  const previous: T[] = [];
  complete.forEach((line, k) => {
    if (line.trim() === "") return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      throw new Error(
        `Cannot resume from ${path}:${k + 1}: not valid JSON (${(err as Error).message}); ` +
          `fix or delete that line`,
        { cause: err },
      );
    }
    if (k === 0) {
      if (canonicalJson(value) !== want) {
        throw new Error(
          `Cannot resume from ${path}: it was written by another run (header ${
            line.slice(0, 200)
          }, ` +
            `this run ${want.slice(0, 200)}); delete the file or pass another journal path`,
        );
      }
      return;
    }
    previous.push(value as T);
  });
  if (complete.length === 0) await writeTextFileAtomic(path, want + "\n");
  let queue: Promise<void> = Promise.resolve();
  return {
    previous,
    append(record: T): Promise<void> {
      const line = JSON.stringify(record) + "\n";
      const write = async () => {
        const file = await Deno.open(path, { append: true, create: true });
        try {
          const bytes = new TextEncoder().encode(line);
          for (let off = 0; off < bytes.length;) off += await file.write(bytes.subarray(off));
          await file.syncData();
        } finally {
          file.close();
        }
      };
      queue = queue.then(write);
      return queue;
    },
  };
}

/** One row of a resumable run: an id, a prompt and optional forced tokens or text. */
export interface ResumableRow {
  /** Unique per row: the journal's key. */
  id: string | number;
  /** The user prompt (chat template applied by the model, as in `generate`). */
  prompt: string;
  /** Forced token spans (prefill at step 0, injection at step t). */
  force?: ForcedSpan[];
  /** Forced texts (remote models without a local tokenizer). */
  forceText?: ForcedText[];
}

/** One finished generation, as journaled (NaN log-probs are stored as null). */
export interface GenerationRecord {
  /** The row's id, as a string. */
  id: string;
  /** The row's prompt. */
  prompt: string;
  /** Decoded new text (forced text included). */
  text: string;
  /** New token ids (`[]` for a remote model without a local tokenizer). */
  tokenIds: number[];
  /** Log-probs per new token (NaN where unknown, `[]` when the server returns none). */
  logprobs: number[];
  /** Which new tokens were forced. */
  forced: boolean[];
  /** The seed this row was generated with: `(seed * 1000003 + row index) >>> 0`. */
  seed: number;
  /**
   * Why the row failed (never journaled: a rerun asks for it again); its text is then "".
   * Set only in what `onRowError: "keep"` returns.
   */
  error?: string;
}

/** A row that failed in {@linkcode generateResumable}. */
export interface GenerationFailure {
  /** The row's id. */
  id: string;
  /** Its position in the rows. */
  index: number;
  /** Why it failed. */
  error: string;
}

/**
 * Rows of {@linkcode generateResumable} that failed; the others are journaled and in
 * `records` (failed rows empty, with `error` set).
 */
export class ResumableGenerationError extends Error {
  /** Creates the error. */
  constructor(
    message: string,
    readonly records: GenerationRecord[],
    readonly failures: GenerationFailure[],
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "ResumableGenerationError";
  }
}

/** What {@linkcode generateResumable} needs of a model (local `Model`s fit too). */
export interface TextGenerator {
  /** Generates for `opts.prompts` (one prompt per call here). */
  generate(opts: RemoteGenerateOptions): Promise<GenerateResult>;
  /** Recorded in the journal header. */
  source?: string;
  /** Rows generated at once by default. */
  concurrency?: number;
}

/** Options of {@linkcode generateResumable}. */
export type ResumableOptions =
  & Omit<RemoteGenerateOptions, "prompts" | "inputIds" | "force" | "forceText">
  & {
    /** Rows generated at once. @default the model's `concurrency`, else 1 */
    concurrency?: number;
    /**
     * After every row has been tried: `"throw"` a {@linkcode ResumableGenerationError}
     * when rows failed, or `"keep"` (return the records, failed rows empty with `error`).
     * Either way failed rows are not journaled, so a rerun asks only for them. @default "throw"
     */
    onRowError?: "throw" | "keep";
  };

/** True for errors that every row would meet (a 4xx other than 408/429: URL, key, model). */
function isConfigError(err: unknown): boolean {
  const e = err instanceof HttpError ? err : (err as Error)?.cause;
  return e instanceof HttpError && e.status >= 400 && e.status < 500 &&
    !isRetryableStatus(e.status);
}

/**
 * Generates every row, appending each finished one to the JSONL journal at `journalPath`
 * (flushed per row); rows already there are skipped on restart, so an interrupted evaluation
 * resumes where it stopped and ends with the same results. Each row is seeded by its index,
 * so resumed and uninterrupted runs agree. Returns the records in row order.
 *
 * A row that fails (its retries spent) does not stop the others; a client error every row
 * would meet (HTTP 4xx other than 408/429: a wrong URL, key or model name) stops the workers
 * after their current row. Failed rows are not journaled: see `onRowError`.
 *
 * @example
 * ```ts
 * import { generateResumable, type TextGenerator } from "./remote_journal.ts";
 * async function evaluate(model: TextGenerator) {
 *   const rows = [{ id: "q1", prompt: "How do I bake bread?" }];
 *   // Rerun after a crash or failed rows: only the rows missing from the journal are asked.
 *   return await generateResumable(model, rows, { maxNewTokens: 64 }, "runs/gen.jsonl");
 * }
 * ```
 */
export async function generateResumable(
  model: TextGenerator,
  rows: readonly ResumableRow[],
  opts: ResumableOptions,
  journalPath: string,
): Promise<GenerationRecord[]> {
  const ids = rows.map((r) => String(r.id));
  const dup = ids.find((id, k) => ids.indexOf(id) !== k);
  if (dup !== undefined) throw new Error(`Cannot journal rows: id '${dup}' occurs twice`);
  const { onProgress: _p, progress, concurrency, onRowError = "throw", ...rest } = opts;
  const journal = await openJournal<GenerationRecord>(journalPath, {
    journal: "safety-compass.generations",
    version: 1,
    source: model.source ?? "local",
    options: JSON.parse(JSON.stringify(rest)),
  });
  const done = new Map(journal.previous.map((r) => [r.id, r]));
  rows.forEach((row, k) => {
    const old = done.get(ids[k]);
    if (old && old.prompt !== row.prompt) {
      throw new Error(
        `Cannot resume from ${journalPath}: row '${ids[k]}' was journaled with another prompt; ` +
          `delete the journal or pass another path`,
      );
    }
  });
  const todo = rows.map((_, k) => k).filter((k) => !done.has(ids[k]));
  const bar = new Progress({ total: rows.length, label: "generate (resumable)", mode: progress });
  bar.tick(rows.length - todo.length);
  const seed = opts.seed ?? 0;
  const failures: GenerationFailure[] = [];
  let next = 0, stop: unknown;
  const worker = async () => {
    while (next < todo.length && stop === undefined) {
      const k = todo[next++], row = rows[k], rowSeed = (seed * 1_000_003 + k) >>> 0;
      let g;
      try {
        g = await model.generate({
          ...rest,
          prompts: [row.prompt],
          force: row.force ? [row.force] : undefined,
          forceText: row.forceText ? [row.forceText] : undefined,
          seed: rowSeed,
          progress: "silent",
        });
      } catch (err) {
        failures.push({ id: ids[k], index: k, error: (err as Error)?.message ?? String(err) });
        if (isConfigError(err)) stop = err; // the other workers stop after their current row
        continue;
      }
      const rec: GenerationRecord = {
        id: ids[k],
        prompt: row.prompt,
        text: g.text[0],
        tokenIds: g.tokenIds[0],
        logprobs: g.logprobs[0],
        forced: g.forced[0],
        seed: rowSeed,
      };
      await journal.append(rec);
      done.set(rec.id, rec);
      bar.tick();
      opts.onProgress?.(done.size, rows.length);
    }
  };
  const n = Math.max(1, concurrency ?? model.concurrency ?? 1);
  const settled = await Promise.allSettled(
    Array.from({ length: Math.min(n, todo.length) }, worker),
  );
  bar.done();
  const crashed = settled.find((r) => r.status === "rejected");
  if (crashed) throw (crashed as PromiseRejectedResult).reason; // the journal could not be written
  const failedAt = new Map(failures.map((f) => [f.id, f.error]));
  const records = ids.map((id, k): GenerationRecord => {
    const r = done.get(id);
    if (r) return { ...r, logprobs: r.logprobs.map((v) => v ?? NaN) };
    const error = failedAt.get(id) ?? `not tried: the run stopped at a client error`;
    const rowSeed = (seed * 1_000_003 + k) >>> 0;
    const empty = { text: "", tokenIds: [], logprobs: [], forced: [] };
    return { id, prompt: rows[k].prompt, ...empty, seed: rowSeed, error };
  });
  const missing = records.filter((r) => r.error !== undefined).length;
  if (missing === 0 || (onRowError === "keep" && stop === undefined)) {
    if (missing) console.warn(`generateResumable: ${missing} of ${rows.length} rows failed`);
    return records;
  }
  failures.sort((a, b) => a.index - b.index);
  throw new ResumableGenerationError(
    `Cannot finish ${journalPath}: ${missing} of ${rows.length} rows failed or were not ` +
      `tried (first: row '${failures[0].id}': ${failures[0].error}); the journal holds the ` +
      `${rows.length - missing} that succeeded, so a rerun asks only for the others` +
      (stop === undefined ? "" : "; fix the client error (URL, API key, model name) first"),
    records,
    failures,
    { cause: stop },
  );
}
