#!/usr/bin/env python3
"""Hugging Face referee for the toolkit's tokenizer (lib/model/tokenizer.ts, lib/model/chat.ts).

Two subcommands:

    python3 tests/ref/hf_tokenizers.py build OUT_DIR
        Builds five tokenizer folders with the `tokenizers` package (trained on a small fixed
        corpus, so they are deterministic) and writes them, as `save_pretrained` lays them out:
          OUT_DIR/llama  a Llama-2-style SentencePiece-like BPE: normalizer Prepend("▁") +
                         Replace(" ", "▁"), byte fallback to <0xNN> tokens, fuse_unk, a
                         TemplateProcessing post-processor adding <s>, the Llama decoder
                         (Replace, ByteFallback, Fuse, Strip), and a Llama-2 [INST] chat
                         template in tokenizer_config.json.
          OUT_DIR/llama_flags  the same tokenizer.json with `add_bos_token: false,
                         add_eos_token: true` in tokenizer_config.json (flags that
                         transformers 5 drops when a tokenizer.json exists).
          OUT_DIR/llama_metaspace  the same vocabulary in the non-legacy layout: Metaspace
                         pre-tokenizer and decoder (prepend_scheme "first"), no normalizer.
          OUT_DIR/llama3 a Llama-3-style byte-level BPE: the Llama-3 split regex, a
                         Sequence(ByteLevel, TemplateProcessing) post-processor adding
                         <|begin_of_text|>, header/eot special tokens and the Llama-3 chat
                         template (`content | trim`, BOS on the first turn).
          OUT_DIR/qwen3  a Qwen2/Qwen3-style byte-level BPE (NFC, the Qwen split regex,
                         ByteLevel without prefix space, no BOS), ChatML special tokens
                         <|endoftext|> <|im_start|> <|im_end|>, <think> and </think> as added
                         special tokens, and a Qwen3-style chat template with the
                         `enable_thinking` switch.

    python3 tests/ref/hf_tokenizers.py reference TOKENIZER_DIR CASES.json OUT.json
        Loads TOKENIZER_DIR with transformers.AutoTokenizer.from_pretrained and answers every
        case of CASES.json ({"texts": [str], "chats": [{"messages", "add_generation_prompt",
        "kwargs"}]}) as HF does:
          encode:   tokenizer(text)["input_ids"] and tokenizer(text, add_special_tokens=False)
          decode:   tokenizer.decode(ids, skip_special_tokens=True / False) of the default ids
          chat:     apply_chat_template(messages, add_generation_prompt=..., tokenize=False)
                    and (tokenize=True, return_dict=False), with the case's extra kwargs
                    (e.g. enable_thinking) passed to the template.
        OUT.json: {"texts": [{"ids", "ids_plain", "decoded", "decoded_special"}],
                   "chats": [{"text", "ids"} or {"error"}]}.

Written for transformers 5 / tokenizers 0.2x; exits with status 3 and a message when either
package is missing (the Deno test then skips).
"""

import json
import os
import sys

try:
    import tokenizers
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from tokenizers.trainers import BpeTrainer
    import transformers  # noqa: F401
    from transformers import AutoTokenizer
except ImportError as err:  # pragma: no cover - environment dependent
    print(f"hf_tokenizers.py: missing python package ({err})", file=sys.stderr)
    sys.exit(3)

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello world, how are you today? I am fine, thank you!",
    "Safety research on reasoning models: refusals, jailbreaks and monitors.",
    "def main():\n    print('hello')\n    return 0\n",
    "Tabs\tand  double  spaces, newlines\n\nand more newlines.",
    "Numbers 12345 and 2024-12-06, prices $3.50 or 4,000 euros.",
    "Café, naïve, jalapeño, Ünïcödé — dashes and “quotes”.",
    "user assistant system think answer question reasoning step first then so",
] * 4

LLAMA2_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}"
    "{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}"
    "{% else %}"
    "{% set loop_messages = messages %}"
    "{% set system_message = false %}"
    "{% endif %}"
    "{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}"
    "{% set content = message['content'] %}"
    "{% endif %}"
    "{% if message['role'] == 'user' %}"
    "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ ' '  + content.strip() + ' ' + eos_token }}"
    "{% endif %}"
    "{% endfor %}"
)

# Qwen3's template, reduced to what does not involve tools (same whitespace handling:
# `{%-`/`-%}` everywhere, trim_blocks/lstrip_blocks as HF renders it).
QWEN3_TEMPLATE = """{%- if messages[0].role == 'system' %}
    {{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}
{%- endif %}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == "user" and message.content is string and not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}
        {%- set ns.multi_step_tool = false %}
        {%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if message.content is string %}
        {%- set content = message.content %}
    {%- else %}
        {%- set content = '' %}
    {%- endif %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {%- set reasoning_content = '' %}
        {%- if message.reasoning_content is string %}
            {%- set reasoning_content = message.reasoning_content %}
        {%- else %}
            {%- if '</think>' in content %}
                {%- set reasoning_content = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}
                {%- set content = content.split('</think>')[-1].lstrip('\\n') %}
            {%- endif %}
        {%- endif %}
        {%- if loop.index0 > ns.last_query_index %}
            {%- if loop.last or (not loop.last and reasoning_content) %}
                {{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content.strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') }}
            {%- else %}
                {{- '<|im_start|>' + message.role + '\\n' + content }}
            {%- endif %}
        {%- else %}
            {{- '<|im_start|>' + message.role + '\\n' + content }}
        {%- endif %}
        {{- '<|im_end|>\\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\\n\\n</think>\\n\\n' }}
    {%- endif %}
{%- endif %}"""

LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}"
)

LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

QWEN_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def write_json(path, value):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, ensure_ascii=False, indent=2)


def build_llama(out):
    specials = ["<unk>", "<s>", "</s>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence(
        [normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    trainer = BpeTrainer(vocab_size=400, special_tokens=specials, show_progress=False,
                         limit_alphabet=60)
    tok.train_from_iterator(CORPUS, trainer)
    spec = json.loads(tok.to_str())
    # Llama's layout: specials 0-2, the 256 byte tokens <0x00>..<0xFF>, then the pieces.
    trained = sorted(spec["model"]["vocab"].items(), key=lambda kv: kv[1])
    vocab = {s: i for i, s in enumerate(specials)}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for piece, _ in trained:
        if piece not in vocab:
            vocab[piece] = len(vocab)
    spec["model"]["vocab"] = vocab
    spec["added_tokens"] = [
        {"id": vocab[s], "content": s, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True} for s in specials
    ]
    spec["pre_tokenizer"] = None
    spec["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
        {"type": "ByteFallback"},
        {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0},
    ]}
    spec["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                   {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                 {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": "<s>", "type_id": 1}},
                 {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [vocab["<s>"]], "tokens": ["<s>"]}},
    }
    Tokenizer.from_str(json.dumps(spec))  # validates
    os.makedirs(out, exist_ok=True)
    write_json(os.path.join(out, "tokenizer.json"), spec)
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "clean_up_tokenization_spaces": False,
        "chat_template": LLAMA2_TEMPLATE,
    }
    write_json(os.path.join(out, "tokenizer_config.json"), config)
    # The same file under tokenizer_config flags asking for no BOS and an EOS after every
    # text: transformers 5 ignores them when tokenizer.json exists (the file decides).
    flags = out + "_flags"
    os.makedirs(flags, exist_ok=True)
    write_json(os.path.join(flags, "tokenizer.json"), spec)
    write_json(os.path.join(flags, "tokenizer_config.json"),
               {**config, "add_bos_token": False, "add_eos_token": True})
    # The non-legacy layout of newer conversions (Llama-2 re-saved, Mistral, Gemma): no
    # normalizer, a Metaspace pre-tokenizer prepending "▁" to the first piece only, and the
    # Metaspace decoder.
    meta = dict(spec)
    meta["normalizer"] = None
    meta["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁",
                             "prepend_scheme": "first", "split": False}
    meta["decoder"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first",
                       "split": False}
    Tokenizer.from_str(json.dumps(meta))
    os.makedirs(out + "_metaspace", exist_ok=True)
    write_json(os.path.join(out + "_metaspace", "tokenizer.json"), meta)
    write_json(os.path.join(out + "_metaspace", "tokenizer_config.json"), config)


def byte_level_bpe(split, specials, normalizer=None):
    """A byte-level BPE trained on CORPUS (GPT-2/Llama-3/Qwen layout), specials added."""
    tok = Tokenizer(models.BPE())
    if normalizer is not None:
        tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(tokenizers.Regex(split), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = BpeTrainer(vocab_size=500, show_progress=False,
                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    tok.add_special_tokens(specials)
    return tok


def build_llama3(out):
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                "<|end_header_id|>", "<|eot_id|>"]
    tok = byte_level_bpe(LLAMA3_SPLIT, specials)
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(
            single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|>:1 $B:1",
            special_tokens=[("<|begin_of_text|>", bos)]),
    ])
    os.makedirs(out, exist_ok=True)
    tok.save(os.path.join(out, "tokenizer.json"))
    write_json(os.path.join(out, "tokenizer_config.json"), {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<|begin_of_text|>",
        "eos_token": "<|eot_id|>",
        "clean_up_tokenization_spaces": True,
        "chat_template": LLAMA3_TEMPLATE,
    })
    write_json(os.path.join(out, "generation_config.json"), {
        "bos_token_id": bos,
        "eos_token_id": [tok.token_to_id("<|end_of_text|>"), tok.token_to_id("<|eot_id|>")],
    })


def build_qwen3(out):
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
    tok = byte_level_bpe(QWEN_SPLIT, specials, normalizers.NFC())
    os.makedirs(out, exist_ok=True)
    tok.save(os.path.join(out, "tokenizer.json"))
    write_json(os.path.join(out, "tokenizer_config.json"), {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>", "<think>", "</think>"],
        "clean_up_tokenization_spaces": False,
        "chat_template": QWEN3_TEMPLATE,
    })
    write_json(os.path.join(out, "generation_config.json"), {
        "bos_token_id": tok.token_to_id("<|endoftext|>"),
        "eos_token_id": [tok.token_to_id("<|im_end|>"), tok.token_to_id("<|endoftext|>")],
        "pad_token_id": tok.token_to_id("<|endoftext|>"),
    })


def ids_of(out):
    """apply_chat_template(tokenize=True) returns a list (return_dict=False) or a mapping."""
    if isinstance(out, list):
        return out
    return list(out["input_ids"])


def reference(tok_dir, cases_path, out_path):
    tok = AutoTokenizer.from_pretrained(tok_dir)
    with open(cases_path, encoding="utf-8") as f:
        cases = json.load(f)
    texts = []
    for text in cases["texts"]:
        ids = tok(text)["input_ids"]
        texts.append({
            "ids": ids,
            "ids_plain": tok(text, add_special_tokens=False)["input_ids"],
            "decoded": tok.decode(ids, skip_special_tokens=True),
            "decoded_special": tok.decode(ids, skip_special_tokens=False),
        })
    chats = []
    for case in cases["chats"]:
        kwargs = dict(case.get("kwargs") or {})
        gen = case["add_generation_prompt"]
        try:
            text = tok.apply_chat_template(case["messages"], add_generation_prompt=gen,
                                           tokenize=False, **kwargs)
            ids = tok.apply_chat_template(case["messages"], add_generation_prompt=gen,
                                          tokenize=True, return_dict=False, **kwargs)
            chats.append({"text": text, "ids": ids_of(ids)})
        except Exception as err:  # noqa: BLE001 - the template's raise_exception
            chats.append({"error": str(err)})
    write_json(out_path, {"texts": texts, "chats": chats})


def main(argv):
    if len(argv) == 3 and argv[1] == "build":
        build_llama(os.path.join(argv[2], "llama"))
        build_llama3(os.path.join(argv[2], "llama3"))
        build_qwen3(os.path.join(argv[2], "qwen3"))
    elif len(argv) == 5 and argv[1] == "reference":
        reference(argv[2], argv[3], argv[4])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
