/**
 * The row shapes every loader in the toolkit returns (as arquero tables of these rows):
 * SafetyWorld, the standard benchmark files and user JSONL/CSV all meet here, so attacks,
 * judges, the compass and the RL loop can take any of them.
 *
 * Vocabulary (SCIENCE.md section 0): prompts are `harmful`, `benign`, or `borderline`
 * (benign but looks dangerous); traces are `safe`, `unsafe`, or `rethink`.
 *
 * @module
 */

/** What a prompt asks for. `borderline` = benign but shares surface words with harmful ones. */
export type PromptLabel = "harmful" | "benign" | "borderline";

/** What a trace (a response, optionally with reasoning) does. */
export type TraceLabel = "safe" | "unsafe" | "rethink";

/** Dataset split. */
export type Split = "train" | "validation" | "test";

/** Response templates: `think` = `<think>…</think>answer`; `alphaalign` = AlphaAlign's. */
export type TraceTemplate = "plain" | "think" | "alphaalign";

/** One prompt, from any source. Extra columns of the source file are kept as-is. */
export interface PromptRow {
  /** Stable identifier, unique within its source. */
  id: string;
  /** The user request. */
  prompt: string;
  /** harmful / benign / borderline. */
  label: PromptLabel;
  /** Hazard category, task domain, or the benchmark's own category column. */
  category: string;
  /** Where the row came from: "safetyworld", "advbench", "xstest", a file name, ... */
  source: string;
  /** Split, where the source defines one. */
  split?: Split;
  /** An affirmative target completion (AdvBench/HarmBench/JBB "target"), if any. */
  target?: string;
  /** The verifiable reference answer, where one exists. */
  answer?: string;
  /** Any other metadata columns. */
  [extra: string]: unknown;
}

/** One trace: a prompt plus a response with its label. */
export interface TraceRow extends PromptRow {
  /** The full response text (reasoning part included, if any). */
  trace: string;
  /** safe / unsafe / rethink. */
  traceLabel: TraceLabel;
  /** The template the trace is written in. */
  template: TraceTemplate;
}
