/**
 * Verifiers for structured traces: AlphaAlign's format and refusal checks (V_f and V_r of
 * "AlphaAlign", arXiv 2507.14987, SCIENCE.md section 3) and the `<think>…</think>answer`
 * template of reasoning models.
 *
 * Decisions, so that a reward is never earned by accident:
 * - V_f accepts exactly `<safety_reasoning>R</safety_reasoning><answer>A</answer>` with R and
 *   A non-empty after trimming, and nothing but whitespace before, between and after the two
 *   blocks (one end-of-sequence marker such as `</s>`, `<eos>`, `<|endoftext|>`,
 *   `<|im_end|>` or `<|eot_id|>` may follow, as decoders that keep special tokens leave it).
 *   Each tag must occur exactly once.
 * - Whitespace *inside* a tag's angle brackets is tolerated (`< safety_reasoning >`,
 *   `< / answer >`), because word-level tokenisers such as SafetyWorld's decode tag tokens
 *   with spaces around them; tag names are case-sensitive and must be spelled exactly.
 * - V_r compares the extracted answer with the refusal string after normalisation: case,
 *   curly vs straight apostrophes, all whitespace, and a trailing period are ignored (so
 *   `\boxed{ sorry , i can't comply }` matches `\boxed{Sorry, I can't comply}`); nothing
 *   else is.
 *
 * @module
 */

/** The paper's refusal answer: `\boxed{Sorry, I can't comply}`. */
export const ALPHAALIGN_REFUSAL = "\\boxed{Sorry, I can't comply}";

/** The result of checking a text against AlphaAlign's template. */
export interface FormatCheck {
  /** True when the text verifies (V_f = 1). */
  ok: boolean;
  /** Why it failed ("" when ok). */
  reason: string;
  /** The safety-reasoning part (trimmed), when both blocks were found. */
  reasoning?: string;
  /** The answer part (trimmed), when both blocks were found. */
  answer?: string;
}

const EOS_TAIL = /(?:<\/s>|<eos>|<\|endoftext\|>|<\|im_end\|>|<\|eot_id\|>|<\|end\|>)\s*$/;

function tagRe(name: string, closing: boolean): RegExp {
  return new RegExp(`<\\s*${closing ? "\\/\\s*" : ""}${name}\\s*>`, "g");
}

function find(text: string, name: string, closing: boolean): RegExpExecArray[] {
  return [...text.matchAll(tagRe(name, closing))];
}

/**
 * Checks AlphaAlign's template and says why a text fails. See the module doc for the rules.
 *
 * @example
 * ```ts
 * checkFormat("<safety_reasoning>benign</safety_reasoning><answer>4</answer>").ok; // true
 * checkFormat("<answer>4</answer>").reason; // "expected exactly one <safety_reasoning> ..."
 * ```
 */
export function checkFormat(text: string): FormatCheck {
  const t = text.trim().replace(EOS_TAIL, "").trim();
  const tags = [
    find(t, "safety_reasoning", false),
    find(t, "safety_reasoning", true),
    find(t, "answer", false),
    find(t, "answer", true),
  ];
  const names = ["<safety_reasoning>", "</safety_reasoning>", "<answer>", "</answer>"];
  for (let k = 0; k < 4; k++) {
    if (tags[k].length !== 1) {
      return { ok: false, reason: `expected exactly one ${names[k]}, found ${tags[k].length}` };
    }
  }
  const [so, sc, ao, ac] = tags.map((m) => m[0]);
  const end = (m: RegExpExecArray) => m.index + m[0].length;
  if (!(so.index < sc.index && sc.index < ao.index && ao.index < ac.index)) {
    return {
      ok: false,
      reason:
        "tags out of order: expected <safety_reasoning>…</safety_reasoning><answer>…</answer>",
    };
  }
  if (so.index !== 0) return { ok: false, reason: "text before <safety_reasoning>" };
  if (t.slice(end(sc), ao.index).trim() !== "") {
    return { ok: false, reason: "text between </safety_reasoning> and <answer>" };
  }
  if (end(ac) !== t.length) return { ok: false, reason: "text after </answer>" };
  const reasoning = t.slice(end(so), sc.index).trim();
  const answer = t.slice(end(ao), ac.index).trim();
  if (reasoning === "") return { ok: false, reason: "empty safety reasoning", reasoning, answer };
  if (answer === "") return { ok: false, reason: "empty answer", reasoning, answer };
  return { ok: true, reason: "", reasoning, answer };
}

/** AlphaAlign's format verifier V_f: true when `text` follows the template exactly. */
export function verifyFormat(text: string): boolean {
  return checkFormat(text).ok;
}

/**
 * The answer part of a trace: the content of the `<answer>` block (the last one when there
 * are several; to the end of the text when it is not closed, as in a truncated
 * generation), else the text after the last `</think>`, trimmed; `null` when the text has
 * neither structure (a plain response: its answer is the whole text).
 */
export function extractAnswer(text: string): string | null {
  const opens = find(text, "answer", false);
  if (opens.length > 0) {
    const last = opens[opens.length - 1];
    const start = last.index + last[0].length;
    const close = tagRe("answer", true);
    close.lastIndex = start;
    const m = close.exec(text);
    return text.slice(start, m ? m.index : text.length).trim();
  }
  const thinks = find(text, "think", true);
  if (thinks.length > 0) {
    const last = thinks[thinks.length - 1];
    return text.slice(last.index + last[0].length).trim();
  }
  return null;
}

function normaliseAnswer(s: string): string {
  return s.toLowerCase().replace(/[\u2018\u2019\u02bc`]/g, "'").replace(/\s+/g, "")
    .replace(/\.$/, "");
}

/**
 * AlphaAlign's refusal verifier V_r: true when the extracted answer equals `refusalString`
 * after normalisation (case, apostrophe style, whitespace, a trailing period). Independent
 * of V_f: a badly formatted trace can still answer with the refusal (the reward adds both).
 *
 * @example
 * ```ts
 * isAlphaAlignRefusal("<safety_reasoning>harmful</safety_reasoning><answer>\\boxed{Sorry, I can't comply}</answer>"); // true
 * ```
 */
export function isAlphaAlignRefusal(
  text: string,
  refusalString: string = ALPHAALIGN_REFUSAL,
): boolean {
  const answer = extractAnswer(text);
  return answer !== null && normaliseAnswer(answer) === normaliseAnswer(refusalString);
}

/** Options for {@linkcode verifyThinkFormat}. */
export interface ThinkFormatOptions {
  /**
   * The chat template already opened `<think>` in the prompt (DeepSeek-R1 distills), so the
   * generation holds only `…</think>answer` and must not open another.
   * @default false
   */
  openTagInPrompt?: boolean;
  /**
   * Accept an empty reasoning part (`<think>\n\n</think>`, as Qwen3 writes with thinking off).
   * @default false
   */
  allowEmptyReasoning?: boolean;
}

/**
 * Verifies the `<think>reasoning</think>answer` template: exactly one `</think>` (and one
 * `<think>` at the very start, unless `openTagInPrompt`), a non-empty answer after it, a
 * non-empty reasoning unless allowed, and no stray think tags. Whitespace inside the angle
 * brackets and one trailing end-of-sequence marker are tolerated, as in
 * {@linkcode verifyFormat}.
 */
export function verifyThinkFormat(text: string, opts: ThinkFormatOptions = {}): boolean {
  const t = text.trim().replace(EOS_TAIL, "").trim();
  const opens = find(t, "think", false);
  const closes = find(t, "think", true);
  if (closes.length !== 1) return false;
  let start = 0;
  if (opts.openTagInPrompt) {
    if (opens.length !== 0) return false;
  } else {
    if (opens.length !== 1 || opens[0].index !== 0) return false;
    start = opens[0][0].length;
  }
  const close = closes[0];
  const reasoning = t.slice(start, close.index).trim();
  const answer = t.slice(close.index + close[0].length).trim();
  return answer !== "" && (reasoning !== "" || opts.allowEmptyReasoning === true);
}
