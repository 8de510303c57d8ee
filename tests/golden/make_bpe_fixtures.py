#!/usr/bin/env python3
"""Writes tests/golden/bpe/: Hugging Face BPE tokenizers (tokenizer.json) and what
Hugging Face's own `tokenizers` library makes of hard strings with them, for
tests/unit/test_bpe.cpp; plus two tiny random models that pair with them, for the
text -> ids -> model test of tests/golden/test_backbones.cpp.

The tokenizers are trained here (tokenizers' BpeTrainer, on the first 20,000 sentences
of SST-2's training set) in the two layouts real checkpoints use:
  roberta/tokenizer.json        byte-level BPE as RoBERTa and GPT-2 ship it: ByteLevel
                                pre-tokenizer (GPT-2 regex, add_prefix_space), merges,
                                RobertaProcessing (<s> A </s></s> B </s>), <mask> lstrip.
  llama/tokenizer.json          LLaMA-2's layout as transformers converts it: normaliser
                                Prepend("▁") + Replace(" ", "▁"), no pre-tokenizer, BPE
                                with byte_fallback (<0x00>..<0xFF>) and fuse_unk, template
                                "<s> $A", decoder Replace/ByteFallback/Fuse/Strip.
  llama_metaspace.tokenizer.json  the same vocabulary behind a Metaspace pre-tokenizer
                                (newer conversions): split on ▁, prefix ▁ on the first word.
  llama3.tokenizer.json         Llama 3's layout: Split with tiktoken's cl100k regex, then
                                ByteLevel without its regex or prefix space.
  qwen2.tokenizer.json          the same vocabulary behind Qwen2's regex (one digit each).
  roberta_vocab_merges/         the RoBERTa vocabulary as vocab.json + merges.txt (older
                                folders), encoded by transformers' RobertaTokenizerFast.
Each model folder also holds a random RobertaModel / LlamaForCausalLM whose vocabulary
is the tokenizer's, and reference.json with its output on texts tokenised by HF.

    /work/.venv-ref/bin/python tests/golden/make_bpe_fixtures.py   (see
    make_backbone_fixtures.py for the environment; tokenizers 0.15.2)
"""
import json
import os
import sys

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
import tokenizers  # noqa: E402
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM, RobertaConfig, RobertaModel  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_backbone_fixtures import dumps, enc, reinit, save_model, versions, write_json  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))
SST2 = os.path.join(REPO, "..", "shared", "data", "glue", "SST-2", "train.tsv")
OUT = os.path.join(HERE, "bpe")
VOCAB = 700

SINGLES = [
    ("plain", "The quick brown fox jumps over the lazy dog."),
    ("film", "a gorgeous , witty , seductive movie ."),
    ("contractions", "it's don't I'm we'll they've she'd you're IT'S"),
    ("spaces", "  two  leading,   three   inner and trailing   "),
    ("tabs_newlines", "line one\nline two\r\n\ttabbed\n\n"),
    ("numbers", "1,234,567.89 and 3.14159 or 42% $9.99 1234567 ٣٤٥"),
    ("cl100k_edges", "(hello) 'S 'LL \tword\r\n\n  \n x\n\n"),
    ("punct_runs", "Hello!!!...? What?!?! (yes) [no] {maybe} --- ~^_`|"),
    ("accents", "café naïve Ångström résumé façade jalapeño"),
    ("cjk", "中文字符测试 日本語のテキスト 한국어"),
    ("emoji", "I love it 😀👍🏽 🥲 ❤️"),
    ("nbsp", "non\u00a0breaking\u2003em space"),
    ("specials_inline", "before <s> middle </s> after"),
    ("mask", "The capital of France is <mask>."),
    ("unknown_word", "zzyzx qwxv pneumonoultramicroscopic"),
    ("single_char", "a"),
    ("leading_space", " starts with a space"),
    ("empty", ""),
]
PAIRS = [
    ("pair", "How old are you?", "What is your age?"),
    ("pair_long", "the film is " * 12, "a remarkable , often funny look at " * 6),
]
TRUNCATED = [  # (name, text, pair or None, max_length): HF truncation, longest_first
    ("trunc_single", "the movie is a gorgeous , witty , seductive piece of work that lingers", None, 8),
    ("trunc_pair", "one two three four five six seven eight nine", "alpha beta gamma", 10),
    ("trunc_pair_tie", "one two three four five", "six seven eight nine ten", 9),
]
WORDS = ["The", "movie", "isn't", "good", "😀", "<s>", "at", "all"]  # encode_words
MODEL_TEXTS = ["a gorgeous, witty movie.", "It's not funny at all — 😀"]


def sst2_sentences(n=20000):
    rows = []
    with open(SST2, encoding="utf-8") as f:
        next(f)
        for line in f:
            rows.append(line.split("\t")[0])
            if len(rows) == n:
                break
    return rows


def byte_level(corpus):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    tok.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=VOCAB - 1, special_tokens=specials, min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True)])
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    return tok


def llama(corpus):
    """LLaMA-2's layout: <unk> <s> </s>, then the 256 byte tokens, then merges."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", add_prefix_space=False)  # training only
    byte_tokens = ["<0x%02X>" % b for b in range(256)]
    tok.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=VOCAB, special_tokens=["<unk>", "<s>", "</s>"] + byte_tokens,
        show_progress=False))
    spec = json.loads(tok.to_str())
    spec["added_tokens"] = [t for t in spec["added_tokens"] if t["content"] in ("<unk>", "<s>", "</s>")]
    spec["pre_tokenizer"] = None
    spec["post_processor"] = json.loads(processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s>:1 $B:1", special_tokens=[("<s>", 1)]).__getstate__())
    spec["decoder"] = json.loads(decoders.Sequence([
        decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
        decoders.Strip(" ", 1, 0)]).__getstate__())
    return Tokenizer.from_str(json.dumps(spec))


CL100K = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2 = CL100K.replace(r"\p{N}{1,3}", r"\p{N}")


def split_byte_level(pattern):
    return pre_tokenizers.Sequence([pre_tokenizers.Split(tokenizers.Regex(pattern), behavior="isolated"),
                                    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])


def llama3(corpus):
    """Llama 3's layout: tiktoken-style split regex, then byte-level BPE without a prefix
    space; <|begin_of_text|> template inside a Sequence post-processor."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = split_byte_level(CL100K)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=VOCAB, special_tokens=["<|begin_of_text|>", "<|end_of_text|>"], min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    spec = json.loads(tok.to_str())
    spec["post_processor"] = {"type": "Sequence", "processors": [
        json.loads(processors.ByteLevel(trim_offsets=False).__getstate__()),
        json.loads(processors.TemplateProcessing(
            single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|>:1 $B:1",
            special_tokens=[("<|begin_of_text|>", 0)]).__getstate__())]}
    return Tokenizer.from_str(json.dumps(spec))


def qwen2_variant(tok):
    spec = json.loads(tok.to_str())
    spec["pre_tokenizer"] = json.loads(split_byte_level(QWEN2).__getstate__())
    return Tokenizer.from_str(json.dumps(spec))


def metaspace_variant(tok):
    spec = json.loads(tok.to_str())
    spec["normalizer"] = None
    spec["pre_tokenizer"] = json.loads(pre_tokenizers.Metaspace(
        replacement="▁", add_prefix_space=True, prepend_scheme="first").__getstate__())
    spec["decoder"] = json.loads(decoders.Metaspace(replacement="▁", add_prefix_space=True).__getstate__())
    return Tokenizer.from_str(json.dumps(spec))


def cases(tok):
    out = []

    def record(name, text, pair, max_length=None):
        tok.no_truncation()
        if max_length:
            tok.enable_truncation(max_length, strategy="longest_first")
        e = tok.encode(text, pair) if pair is not None else tok.encode(text)
        c = {"name": name, "text": text}
        if pair is not None:
            c["pair"] = pair
        if max_length:
            c["max_length"] = max_length
        c.update({"ids": e.ids, "type_ids": e.type_ids, "tokens": e.tokens,
                  "decoded": tok.decode(e.ids, skip_special_tokens=True),
                  "decoded_with_specials": tok.decode(e.ids, skip_special_tokens=False)})
        out.append(c)

    for name, text in SINGLES:
        record(name, text, None)
    for name, a, b in PAIRS:
        record(name, a, b)
    for name, a, b, n in TRUNCATED:
        record(name, a, b, n)
    tok.no_truncation()
    e = tok.encode(WORDS, is_pretokenized=True)
    out.append({"name": "words", "words": WORDS, "ids": e.ids, "word_ids": [-1 if w is None else w for w in e.word_ids]})
    return out


def save_tokenizer(tok, path):
    with open(path, "w", encoding="utf-8") as f:
        f.write(tok.to_str(pretty=True) + "\n")
    print(f"  wrote {os.path.relpath(path, REPO)} ({os.path.getsize(path):,} bytes)")


def model_reference(model, tok, pad_id, kind):
    rows = [tok.encode(t).ids for t in MODEL_TEXTS]
    L = max(map(len, rows))
    ids = torch.tensor([r + [pad_id] * (L - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (L - len(r)) for r in rows])
    with torch.no_grad():
        if kind == "encoder":
            out = model(input_ids=ids, attention_mask=mask).last_hidden_state
            return {"texts": MODEL_TEXTS, "input_ids": enc(ids), "attention_mask": enc(mask),
                    "last_hidden_state": enc(out), "tolerance": {"f32_abs": 1e-5}}
        rows_logits = [model(input_ids=torch.tensor([r])).logits[0] for r in rows]
    return {"texts": MODEL_TEXTS, "input_ids": [r for r in rows],
            "logits": [enc(x) for x in rows_logits], "tolerance": {"f32_abs": 1e-5}}


def main():
    torch.set_num_threads(1)
    corpus = sst2_sentences()
    os.makedirs(os.path.join(OUT, "roberta"), exist_ok=True)
    os.makedirs(os.path.join(OUT, "llama"), exist_ok=True)
    bl, ll = byte_level(corpus), llama(corpus)
    ms = metaspace_variant(ll)
    l3 = llama3(corpus)
    q2 = qwen2_variant(l3)
    assert bl.get_vocab_size() == VOCAB and ll.get_vocab_size() == VOCAB, (bl.get_vocab_size(), ll.get_vocab_size())
    save_tokenizer(bl, os.path.join(OUT, "roberta", "tokenizer.json"))
    save_tokenizer(ll, os.path.join(OUT, "llama", "tokenizer.json"))
    save_tokenizer(ms, os.path.join(OUT, "llama_metaspace.tokenizer.json"))
    save_tokenizer(l3, os.path.join(OUT, "llama3.tokenizer.json"))
    save_tokenizer(q2, os.path.join(OUT, "qwen2.tokenizer.json"))
    # The older folder layout: vocab.json + merges.txt, read by transformers' RobertaConverter.
    legacy = os.path.join(OUT, "roberta_vocab_merges")
    os.makedirs(legacy, exist_ok=True)
    bl.model.save(legacy)
    from transformers import RobertaTokenizerFast
    rv = RobertaTokenizerFast(vocab_file=os.path.join(legacy, "vocab.json"),
                              merges_file=os.path.join(legacy, "merges.txt")).backend_tokenizer
    write_json(os.path.join(OUT, "cases.json"), {
        "description": "tokenizers.Tokenizer.from_file(<file>).encode(text[, pair]) with "
                       "truncation (longest_first) only where max_length is given; decode with "
                       "and without skip_special_tokens.",
        "generator": {"tokenizers": tokenizers.__version__},
        "roberta/tokenizer.json": cases(bl),
        "llama/tokenizer.json": cases(ll),
        "llama_metaspace.tokenizer.json": cases(ms),
        "llama3.tokenizer.json": cases(l3),
        "qwen2.tokenizer.json": cases(q2),
        "roberta_vocab_merges": cases(rv)})

    cfg = RobertaConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=40, type_vocab_size=1,
                        layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(11)
    roberta = RobertaModel(cfg, add_pooling_layer=False).eval()
    reinit(roberta, 11)
    save_model(roberta, os.path.join(OUT, "roberta"))
    ref = {"description": "HF tokenizer.json -> ids (padded with <pad>=1) -> RobertaModel, f32.",
           "generator": versions()}
    ref.update(model_reference(roberta, bl, 1, "encoder"))
    write_json(os.path.join(OUT, "roberta", "reference.json"), ref)

    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=40,
                      tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(12)
    lm = LlamaForCausalLM(cfg).eval()
    reinit(lm, 12)
    save_model(lm, os.path.join(OUT, "llama"))
    ref = {"description": "HF tokenizer.json -> ids (each text alone, no padding) -> LlamaForCausalLM logits, f32.",
           "generator": versions()}
    ref.update(model_reference(lm, ll, 0, "decoder"))
    prompt = ll.encode(MODEL_TEXTS[0]).ids
    with torch.no_grad():
        lm.generation_config.eos_token_id = None  # exactly 8 tokens
        gen = lm.generate(torch.tensor([prompt]), max_new_tokens=8, do_sample=False, pad_token_id=0)[0].tolist()
    ref["greedy"] = {"prompt": MODEL_TEXTS[0], "max_new_tokens": 8, "ids": gen,
                     "text": ll.decode(gen, skip_special_tokens=True)}
    write_json(os.path.join(OUT, "llama", "reference.json"), ref)


if __name__ == "__main__":
    main()
