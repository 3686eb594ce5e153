/**
 * Where `@huggingface/tokenizers` (0.2.0, the JavaScript port) differs from the Rust
 * `tokenizers` library that Hugging Face `transformers` runs, and the patch applied here so
 * that the toolkit decodes as HF does. Each difference was found by tests/tokenizer_hf_test.ts.
 *
 * - Metaspace decoder (SentencePiece-style tokenizers: Llama-2 re-saved, Mistral, Gemma).
 *   Rust turns every "▁" of a token into a space, except in the first token, where it drops
 *   every "▁" unless `prepend_scheme` is "never" (so a first token "▁▁" decodes to "" and
 *   "▁Hello▁wor" to "Hellowor"). The port strips one leading space of the first token,
 *   whatever the scheme.
 *
 * @module
 */

/** A decoder object of the port: a callable with its JSON `config` (and `decoders`). */
type PortDecoder = {
  config?: Record<string, unknown>;
  decoders?: unknown[];
  decode_chain?: (tokens: string[]) => string[];
};

function isDecoder(v: unknown): v is PortDecoder {
  return (typeof v === "object" || typeof v === "function") && v !== null;
}

/**
 * The Rust Metaspace decoder step (tokenizers' `Metaspace::decode_chain`).
 *
 * @example
 * ```ts
 * import { metaspaceDecodeChain } from "./tokenizer_fixes.ts";
 * metaspaceDecodeChain(["▁▁", "▁a", "▁b"], "▁", "first"); // ["", " a", " b"]
 * metaspaceDecodeChain(["▁a", "▁b"], "▁", "never"); // [" a", " b"]
 * ```
 */
export function metaspaceDecodeChain(
  tokens: string[],
  replacement: string,
  prependScheme: string,
): string[] {
  const dropFirst = prependScheme !== "never";
  return tokens.map((t, i) => t.replaceAll(replacement, i === 0 && dropFirst ? "" : " "));
}

/**
 * Replaces the port's Metaspace decoders (also inside a Sequence) under `decoder` by the
 * Rust behaviour, in place. Older files give `add_prefix_space` instead of `prepend_scheme`
 * (true = "always", false = "never"), as Rust reads them.
 *
 * @example
 * ```ts ignore
 * const tok = new Tokenizer(tokenizerJson, tokenizerConfig); // @huggingface/tokenizers
 * patchDecoder((tok as unknown as { decoder?: unknown }).decoder);
 * ```
 */
export function patchDecoder(decoder: unknown): void {
  if (!isDecoder(decoder)) return;
  for (const d of decoder.decoders ?? []) patchDecoder(d);
  const c = decoder.config;
  if (c?.type !== "Metaspace") return;
  const replacement = typeof c.replacement === "string" ? c.replacement : "\u2581";
  const scheme = typeof c.prepend_scheme === "string"
    ? c.prepend_scheme
    : c.add_prefix_space === false
    ? "never"
    : "always";
  decoder.decode_chain = (tokens) => metaspaceDecodeChain(tokens, replacement, scheme);
}
