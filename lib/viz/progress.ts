/**
 * Progress bars for long loops (training steps, generation batches, sweeps), in the three
 * places the toolkit runs: a terminal (one line redrawn with `\r`), a log file or CI
 * (a full line at most every 2 s, plus the last), and Jupyter (one output updated in place
 * through the messaging protocol's `display_data` / `update_display_data` with a
 * `transient.display_id`, sent by `Deno.jupyter.broadcast`). `SAFETY_COMPASS_QUIET=1`
 * silences all of them.
 *
 * @module
 */

import { escapeHtml, formatNumber, jupyterRuntime } from "./display.ts";

/** Where a progress bar draws. */
export type ProgressMode = "auto" | "tty" | "lines" | "jupyter" | "silent";

/** Sends one Jupyter iopub message (the shape of `Deno.jupyter.broadcast`). */
export type Broadcast = (msgType: string, content: Record<string, unknown>) => Promise<void>;

/** Options of {@link Progress}. */
export interface ProgressOptions {
  /** Number of units the loop will do. */
  total: number;
  /** Text in front of the bar. @default "" */
  label?: string;
  /** Unit name in the rate. @default "it" */
  unit?: string;
  /**
   * Where to draw. "auto" picks silent when `SAFETY_COMPASS_QUIET=1`, else jupyter inside
   * Deno's kernel, else tty when stderr is a terminal, else lines. @default "auto"
   */
  mode?: ProgressMode;
  /** Where terminal text goes. @default synchronous writes to stderr */
  write?: (text: string) => void;
  /** Clock in milliseconds (tests pass a fake one). @default performance.now */
  now?: () => number;
  /** Jupyter message sender. @default Deno.jupyter.broadcast */
  broadcast?: Broadcast;
}

/** Minimum milliseconds between two draws, per mode. */
const INTERVAL_MS: Record<Exclude<ProgressMode, "auto">, number> = {
  tty: 100,
  lines: 2000,
  jupyter: 250,
  silent: Infinity,
};

const session = `${Date.now().toString(36)}-${Deno.pid.toString(36)}`;
let displayCount = 0;

function quietEnv(): boolean {
  try {
    return Deno.env.get("SAFETY_COMPASS_QUIET") === "1";
  } catch {
    return false; // no --allow-env: the variable cannot be read, so it is not set for us
  }
}

function writeStderr(text: string): void {
  const bytes = new TextEncoder().encode(text);
  let off = 0;
  while (off < bytes.length) off += Deno.stderr.writeSync(bytes.subarray(off));
}

function resolveMode(mode: ProgressMode): Exclude<ProgressMode, "auto"> {
  if (mode !== "auto") return mode;
  if (quietEnv()) return "silent";
  if (jupyterRuntime()) return "jupyter";
  return Deno.stderr.isTerminal() ? "tty" : "lines";
}

/** Seconds as `mm:ss` or `h:mm:ss`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  const s = Math.max(0, Math.round(seconds));
  const two = (n: number) => String(n).padStart(2, "0");
  const h = Math.floor(s / 3600);
  const body = `${two(Math.floor((s % 3600) / 60))}:${two(s % 60)}`;
  return h > 0 ? `${h}:${body}` : body;
}

/** A progress bar: `tick()` after each unit of work, `done()` at the end. */
export class Progress {
  /** Units done so far. */
  count = 0;
  readonly #total: number;
  readonly #label: string;
  readonly #unit: string;
  readonly #mode: Exclude<ProgressMode, "auto">;
  readonly #write: (text: string) => void;
  readonly #now: () => number;
  readonly #broadcast?: Broadcast;
  readonly #start: number;
  #lastDraw: number;
  #info: Record<string, number | string> = {};
  #finished = false;
  #displayId?: string;
  #queue: Promise<void> = Promise.resolve();
  #warned = false;

  /** Creates a bar (nothing is drawn until the first tick). */
  constructor(opts: ProgressOptions) {
    if (!Number.isFinite(opts.total) || opts.total < 0) {
      throw new Error(`Cannot create Progress: total must be a number >= 0, got ${opts.total}`);
    }
    this.#total = opts.total;
    this.#label = opts.label ?? "";
    this.#unit = opts.unit ?? "it";
    this.#mode = resolveMode(opts.mode ?? "auto");
    this.#write = opts.write ?? writeStderr;
    this.#now = opts.now ?? (() => performance.now());
    const jupyter = this.#mode === "jupyter" ? jupyterRuntime() : undefined;
    this.#broadcast = opts.broadcast ??
      (jupyter ? (type, content) => jupyter.broadcast(type, content) : undefined);
    this.#start = this.#now();
    this.#lastDraw = this.#mode === "lines" ? this.#start : -Infinity;
  }

  /** The mode this bar draws in (after resolving "auto"). */
  get mode(): Exclude<ProgressMode, "auto"> {
    return this.#mode;
  }

  /** Resolves when every Jupyter message sent so far has been handed to the kernel. */
  get settled(): Promise<void> {
    return this.#queue;
  }

  /** Records `n` more units (and optional live metrics such as `{loss: 0.31}`), redrawing when due. */
  tick(n = 1, info?: Record<string, number | string>): void {
    this.count += n;
    if (info) this.#info = { ...this.#info, ...info };
    if (this.#finished || this.#mode === "silent") return;
    const t = this.#now();
    if (t - this.#lastDraw < INTERVAL_MS[this.#mode]) return;
    this.#lastDraw = t;
    this.#draw(false);
  }

  /** Draws the final state (always, unless silent) and ends the line; later calls do nothing. */
  done(): void {
    if (this.#finished) return;
    this.#finished = true;
    if (this.#mode !== "silent") this.#draw(true);
  }

  /** The status line, e.g. `train  45% |█████▍      | 45/100 [00:12<00:15, 3.71 it/s] loss=0.12`. */
  text(): string {
    const elapsed = (this.#now() - this.#start) / 1000;
    const rate = elapsed > 0 ? this.count / elapsed : NaN;
    const frac = this.#total > 0 ? Math.min(1, this.count / this.#total) : 1;
    const width = 20;
    const eighths = Math.round(frac * width * 8);
    const bar = ("█".repeat(Math.floor(eighths / 8)) +
      (eighths % 8 ? " ▏▎▍▌▋▊▉"[eighths % 8] : "")).padEnd(width);
    const eta = rate > 0 ? (this.#total - this.count) / rate : NaN;
    const info = Object.entries(this.#info)
      .map(([k, v]) => `${k}=${typeof v === "number" ? formatNumber(v, 4) : v}`).join(" ");
    const pct = `${Math.floor(frac * 100)}%`.padStart(4);
    const rateText = Number.isFinite(rate) ? formatNumber(rate, 3) : "?";
    return `${this.#label ? this.#label + " " : ""}${pct} |${bar}| ${this.count}/${this.#total} ` +
      `[${formatDuration(elapsed)}<${formatDuration(eta)}, ${rateText} ${this.#unit}/s]` +
      (info ? ` ${info}` : "");
  }

  /** The Jupyter HTML of the current state: a native `<progress>` element and the status line. */
  html(): string {
    return `<div style="font:12px ui-monospace,monospace;white-space:pre">` +
      `<progress value="${this.count}" max="${this.#total}" ` +
      `style="width:220px;vertical-align:middle"></progress> ` +
      `${escapeHtml(this.text().replace(/\|[^|]*\| /, ""))}</div>`;
  }

  #draw(final: boolean): void {
    if (this.#mode === "tty") this.#write(`\r${this.text()}\x1b[K${final ? "\n" : ""}`);
    else if (this.#mode === "lines") this.#write(this.text() + "\n");
    else if (this.#mode === "jupyter") this.#send();
  }

  #send(): void {
    const broadcast = this.#broadcast;
    if (!broadcast) return;
    const first = this.#displayId === undefined;
    this.#displayId ??= `sc-progress-${session}-${displayCount++}`;
    const content = {
      data: { "text/html": this.html(), "text/plain": this.text() },
      metadata: {},
      transient: { display_id: this.#displayId },
    };
    const type = first ? "display_data" : "update_display_data";
    this.#queue = this.#queue.then(() => broadcast(type, content)).catch((err) => {
      if (!this.#warned) console.error(`Progress: cannot update the Jupyter display: ${err}`);
      this.#warned = true;
    });
  }
}

/** Shorthand for `new Progress({ total, label })`. */
export function progress(total: number, label?: string): Progress {
  return new Progress({ total, label });
}
