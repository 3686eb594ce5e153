/**
 * Chat templates rendered with limits. `@huggingface/jinja` renders a template with no bound
 * on work or output, so an untrusted `tokenizer_config.json` whose template runs
 * `{% for i in range(100000000) %}` aborts the process at the first `generate`. Here the
 * template is parsed by the library and run by the library's own `Interpreter`, with three
 * guards on that one interpreter instance (nothing global is patched):
 *
 * - a step budget: every node evaluated counts one step ({@linkcode TemplateLimits.steps});
 * - a size cap on every value produced: strings ({@linkcode TemplateLimits.chars}) and lists
 *   ({@linkcode TemplateLimits.items}), checked as each is produced, so doubling a string in
 *   a loop stops after a few steps;
 * - numeric call and filter arguments at most {@linkcode TemplateLimits.argument}, checked
 *   before the call (`range(1e8)`, `indent(1e9)`, `center(...)` never allocate).
 *
 * The globals are those `Template.render` installs (`range`, `strftime_now`, `raise_exception`,
 * `true`/`True`, ...), with `range` counting its length before building it. Normal templates
 * (Llama 3, Qwen3, Gemma, SafetyWorld's) render identically (tests/chat_template_test.ts).
 *
 * @module
 */

import { Environment, Interpreter, type Template } from "@huggingface/jinja";

/** Work and size limits of one render. */
export interface TemplateLimits {
  /** Nodes evaluated (~5 us each; Qwen3's template takes ~65 a message). @default 250_000 */
  steps: number;
  /** Characters of any string value (the output included). @default 4_000_000 */
  chars: number;
  /** Items of any list value (range results included). @default 1_000_000 */
  items: number;
  /** Largest numeric argument of a call or filter. @default 1_000_000 */
  argument: number;
}

/** The limits used when none are given (a render stays under a few seconds). */
export const DEFAULT_TEMPLATE_LIMITS: TemplateLimits = {
  steps: 250_000,
  chars: 4_000_000,
  items: 1_000_000,
  argument: 1_000_000,
};

/** A runtime value of the interpreter, as far as the guards read it. */
interface Value {
  type: string;
  value: unknown;
}

/** The interpreter methods the guards wrap (private in the library's typings). */
interface Hooks {
  evaluate(node: unknown, env: unknown): Value;
  evaluateArguments(args: unknown, env: unknown): [Value[], Map<string, Value>];
  run(program: unknown): Value;
}

/** `range` as Python and the library define it, refusing more than `max` items up front. */
function boundedRange(max: number) {
  return (start: number, stop?: number, step = 1): number[] => {
    if (stop === undefined) [start, stop] = [0, start];
    if (step === 0) throw new Error("range() step must not be zero");
    const n = Math.max(0, Math.ceil((stop - start) / step));
    if (!Number.isFinite(n) || n > max) {
      throw new Error(`range() of ${n} items exceeds the limit of ${max}`);
    }
    const out: number[] = [];
    for (let i = 0; i < n; i++) out.push(start + i * step);
    return out;
  };
}

/** strftime_now as the library implements it (%Y %m %d %b %B %H %M %%). */
function strftimeNow(format: string): string {
  const d = new Date();
  const pad = (n: number) => (n < 10 ? "0" + n : String(n));
  return String(format).replace(
    /%[YmdbBHM%]/g,
    (t) =>
      t === "%Y"
        ? String(d.getFullYear())
        : t === "%m"
        ? pad(d.getMonth() + 1)
        : t === "%d"
        ? pad(d.getDate())
        : t === "%b"
        ? new Intl.DateTimeFormat(undefined, { month: "short" }).format(d)
        : t === "%B"
        ? new Intl.DateTimeFormat(undefined, { month: "long" }).format(d)
        : t === "%H"
        ? pad(d.getHours())
        : t === "%M"
        ? pad(d.getMinutes())
        : "%",
  );
}

/**
 * Renders a parsed template with `vars`, under `limits`; throws a plain Error naming the limit
 * that was hit.
 *
 * @example
 * ```ts
 * import { Template } from "@huggingface/jinja";
 * renderTemplate(new Template("{% for i in range(3) %}{{ i }}{% endfor %}"), {}); // "012"
 * // range(100000000) throws "range() of 100000000 items exceeds the limit of 1000000"
 * ```
 */
export function renderTemplate(
  template: Template,
  vars: Record<string, unknown>,
  limits: Partial<TemplateLimits> = {},
): string {
  const lim = { ...DEFAULT_TEMPLATE_LIMITS, ...limits };
  const env = new Environment();
  const globals: Record<string, unknown> = {
    false: false,
    true: true,
    none: null,
    raise_exception: (msg: unknown) => {
      throw new Error(String(msg));
    },
    range: boundedRange(Math.min(lim.items, lim.argument)),
    strftime_now: strftimeNow,
    True: true,
    False: false,
    None: null,
  };
  for (const [k, v] of Object.entries({ ...globals, ...vars })) env.set(k, v);
  const interp = new Interpreter(env) as unknown as Hooks;
  const evaluate = interp.evaluate.bind(interp);
  const evaluateArguments = interp.evaluateArguments.bind(interp);
  let steps = 0;
  const check = (v: Value): Value => {
    if (v && typeof v.value === "string" && v.value.length > lim.chars) {
      throw new Error(`a string of ${v.value.length} characters exceeds the limit of ${lim.chars}`);
    }
    if (v && Array.isArray(v.value) && v.value.length > lim.items) {
      throw new Error(`a list of ${v.value.length} items exceeds the limit of ${lim.items}`);
    }
    return v;
  };
  interp.evaluate = (node, e) => {
    if (++steps > lim.steps) {
      throw new Error(`the template ran more than ${lim.steps} steps`);
    }
    return check(evaluate(node, e));
  };
  interp.evaluateArguments = (args, e) => {
    const out = evaluateArguments(args, e);
    for (const v of [...out[0], ...out[1].values()]) {
      if (typeof v?.value === "number" && Math.abs(v.value) > lim.argument) {
        throw new Error(`argument ${v.value} exceeds the limit of ${lim.argument}`);
      }
    }
    return out;
  };
  const result = interp.run((template as unknown as { parsed: unknown }).parsed);
  return String(result.value);
}
