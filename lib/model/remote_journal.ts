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

import { canonicalJson } from "../net/http.ts";
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
  };

/**
 * Generates every row, appending each finished one to the JSONL journal at `journalPath`
 * (flushed per row); rows already there are skipped on restart, so an interrupted evaluation
 * resumes where it stopped and ends with the same results. Each row is seeded by its index,
 * so resumed and uninterrupted runs agree. Returns the records in row order.
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
  const { onProgress: _p, progress, concurrency, ...rest } = opts;
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
  let next = 0, failed = false;
  const worker = async () => {
    while (next < todo.length && !failed) {
      const k = todo[next++], row = rows[k], rowSeed = (seed * 1_000_003 + k) >>> 0;
      const g = await model.generate({
        ...rest,
        prompts: [row.prompt],
        force: row.force ? [row.force] : undefined,
        forceText: row.forceText ? [row.forceText] : undefined,
        seed: rowSeed,
        progress: "silent",
      }).catch((err) => {
        failed = true; // the other workers stop after their current row
        throw err;
      });
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
  const results = await Promise.allSettled(
    Array.from({ length: Math.min(n, todo.length) }, worker),
  );
  bar.done();
  const err = results.find((r) => r.status === "rejected");
  if (err) throw (err as PromiseRejectedResult).reason;
  return ids.map((id) => {
    const r = done.get(id)!;
    return { ...r, logprobs: r.logprobs.map((v) => v ?? NaN) };
  });
}
