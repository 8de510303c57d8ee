#!/usr/bin/env python3
"""Reference WordPiece encodings for tests/unit/test_wordpiece.cpp.

Runs Hugging Face's own tokenizers on hard strings with the real all-MiniLM-L6-v2
(BERT uncased) vocabulary and writes tests/golden/tokenizer_fixtures.json. The fast
tokenizer (`tokenizers`, what tokenizer.json describes) is the one recorded; the slow
Python BertTokenizer of transformers must agree with it (but on the FAST_ONLY cases
below), or the script stops.

Run it (only needed when the cases change; the JSON is committed):

    # the reference venv of make_backbone_fixtures.py (Debian's torch visible), or:
    /usr/bin/python3 -m venv --system-site-packages /work/.venv-ref
    /work/.venv-ref/bin/pip install tokenizers==0.15.2 transformers==4.39.3
    make models            # or any folder holding vocab.txt, tokenizer.json,
                           # tokenizer_config.json of all-MiniLM-L6-v2
    /work/.venv-ref/bin/python tests/golden/make_tokenizer_fixtures.py \
        .cache/models/all-MiniLM-L6-v2 [-o tests/golden/tokenizer_fixtures.json]

Known divergences, deliberately recorded from the fast tokenizer (cases listed in
FAST_ONLY): (1) with "longest_first" truncation, when both sequences are equally long
and an odd number of tokens must go, the fast tokenizer keeps the extra token in the
second sequence, the slow one in the first; (2) the fast tokenizer classifies characters
with older Unicode tables than Python's (and keeps unassigned code points, which the
slow one drops).

    ... make_tokenizer_fixtures.py MODEL_DIR --unicode-overrides

prints instead the table in backbones/tokenizers/unicode.cpp: the code points where
the fast tokenizer's character classes (control, punctuation, nonspacing mark,
decomposition) differ from what the system's utf8proc says. Regenerate it when
utf8proc or tokenizers change.
"""
import argparse
import ctypes
import ctypes.util
import json
import sys
from pathlib import Path

import tokenizers
import transformers
from tokenizers import Tokenizer, normalizers, pre_tokenizers
from transformers import BertTokenizer, BertTokenizerFast

LONG_WORD = "pneumono" * 14  # 112 chars > max_input_chars_per_word (100)

# (name, text): single sequences, encoded as [CLS] text [SEP] without truncation.
SINGLES = [
    ("plain", "The quick brown fox jumps over the lazy dog."),
    ("mixed_case", "HeLLo WoRLD, ThIs Is MiXeD CaSe"),
    ("accents", "café naïve Ångström résumé façade jalapeño"),
    ("accents_upper", "CAFÉ RÉSUMÉ ÉCOLE ÜBER"),
    ("punct_run", "Hello!!!...? What?!?! Wait---no..."),
    ("apostrophes", "don't won't it's I'm they're y'all ’curly’ quotes"),
    ("hyphens", "state-of-the-art well-known e-mail – en dash — em dash"),
    ("url", "Visit https://www.example.com/path?q=1&r=two#frag now"),
    ("email", "Write to john.doe+tag@example.co.uk today"),
    ("numbers", "1,234,567.89 and 3.14159 or 1e-10, 42% $9.99 €5 ¥100"),
    ("dates_times", "2024-01-15T10:30:00Z on 15/01/2024 at 10:30pm"),
    ("chinese", "中文字符测试"),
    ("japanese", "日本語のテキストです。カタカナ"),
    ("korean", "한국어 텍스트입니다"),
    ("cjk_mixed", "BERT模型在NLP中很有用"),
    ("cjk_ext_b", "𠀀𠀁 𪜀 and 〇"),
    ("cjk_compat", "豈更車 ideographs"),
    ("emoji", "I love it 😀👍🏽 🥲"),
    ("flags", "🇫🇷🇩🇪 flags and 🏳️‍🌈"),
    ("combining", "e\u0301 a\u0308 n\u0303 decomposed vs é ä ñ"),
    ("combining_stack", "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334algo text"),
    ("zwj_cf", "zero\u200bwidth\u200cnon\u200djoiner\u2060word\ufeffbom\u00adsoft"),
    ("controls", "ctrl\x00nul\x01soh\x07bel\x1bescape\x7fdel\x85nel end"),
    ("replacement_char", "bad\ufffdchar here"),
    ("tabs_newlines", "tab\tseparated\nnew line\r\ncrlf\x0bvt\x0cff"),
    ("long_word", "short " + LONG_WORD + " short"),
    ("exactly_100", "x" * 100 + " " + "y" * 101),
    ("unknown_script", "ᚠᛇᚻ runes and 𓀀𓁐 hieroglyphs ꦲꦏ javanese"),
    ("greek", "Καλημέρα κόσμε ΟΔΟΣ Ελληνικά"),
    ("cyrillic", "Привет мир, Ёлка и ЙОГУРТ"),
    ("arabic", "مرحبا بالعالم، كيف حالك؟"),
    ("hebrew", "שלום עולם עִבְרִית"),
    ("thai", "สวัสดีชาวโลก ภาษาไทย"),
    ("devanagari", "नमस्ते दुनिया हिन्दी"),
    ("math", "∀x∈ℝ: x² ≥ 0, ∑ᵢ aᵢ ≤ ∞ ± √2 ≠ π ⊂ ∅"),
    ("nbsp_spaces", "non\u00a0breaking\u2009thin\u3000ideographic\u2028line\u2029para\u202fnarrow"),
    ("turkish_dotted", "İstanbul ISTANBUL ıi"),
    ("ligatures", "ﬁne ﬂow Ⅻ ① ㎏ ＡＢＣ full-width"),
    ("private_use", "pua\ue000char \U000f0000 here"),
    ("special_in_text", "The capital of France is [MASK]. [CLS] x [SEP] [mask] [UNK]"),
    ("brackets_symbols", "(a) [b] {c} <d> @e #f ^g ~h |i \\j `k"),
    ("code", "def f(x): return x**2  # comment; a->b && c||d"),
    ("subwords", "unbelievably tokenization antidisestablishmentarianism"),
    # Characters newer than the fast tokenizer's Unicode tables (see --unicode-overrides),
    # an unassigned code point, and the CJK range 2B820–2B91F its padding skips.
    ("unicode_tables", "a\u061db \u2e52x\u2e5dy e\u0898 \U00011938 \u166dz q\u0378r \U0002b820\U0002b920"),
    ("empty", ""),
    ("only_space", "   \t\n  \u00a0 "),
    ("only_punct", "?!.,;:"),
]

# (name, a, b, max_length): pairs; max_length None means no truncation.
PAIRS = [
    ("pair_simple", "How old are you?", "I am six years old.", None),
    ("pair_accents", "Où est la bibliothèque?", "Elle est près de l'école.", None),
    ("pair_cjk", "这是第一句。", "これは二番目の文です。", None),
    ("pair_empty_b", "Only the first sentence here.", "", None),
    ("truncate_16", "The first sentence is rather long and keeps going for a while.",
     "Short one.", 16),
    ("truncate_32", "A brief opener.",
     "The second sequence, on the other hand, is much longer than the first one and "
     "must be cut down to size by the longest-first strategy.", 32),
    ("truncate_tie_odd", "one two three four five six seven eight",
     "nine ten eleven twelve thirteen fourteen fifteen sixteen", 16),
    ("truncate_single", "word " * 40, None, 16),
]

# Recorded from the fast tokenizer although the slow one differs (see the docstring).
FAST_ONLY = {"truncate_tie_odd", "unicode_tables"}

# One padded batch (pad to the longest).
BATCH = ["short", "a somewhat longer sentence here", "mid length text"]


def record(enc):
    return {"ids": enc.ids, "token_type_ids": enc.type_ids, "attention_mask": enc.attention_mask}


def unicode_overrides():
    """C++ rows {first, last, flags} where the fast tokenizer's classes differ from utf8proc's."""
    lib = ctypes.CDLL(ctypes.util.find_library("utf8proc") or "libutf8proc.so.2")
    lib.utf8proc_unicode_version.restype = ctypes.c_char_p
    buf, bound = (ctypes.c_int32 * 32)(), ctypes.c_int(0)
    CC, CF, CS, CO, MN, PC, PO = 26, 27, 28, 29, 6, 12, 18
    DECOMPOSE = 1 << 4

    def u_strip(c):  # unicode.cpp's strip_accents on one code point, before overrides
        n = lib.utf8proc_decompose_char(c, buf, 32, DECOMPOSE, ctypes.byref(bound))
        return "".join(chr(buf[i]) for i in range(n) if lib.utf8proc_category(buf[i]) != MN)

    def u_ascii_punct(c):
        return 33 <= c <= 47 or 58 <= c <= 64 or 91 <= c <= 96 or 123 <= c <= 126

    clean = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=False,
                                       strip_accents=False, lowercase=False)
    strip = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=False,
                                       strip_accents=True, lowercase=False)
    pre = pre_tokenizers.BertPreTokenizer()
    CONTROL, PUNCT, MARK = 1, 2, 4  # flags in unicode.cpp; an override never decomposes
    rows = []
    for c in range(0x110000):
        if 0xD800 <= c <= 0xDFFF or c in (0, 0xFFFD, 9, 10, 13):
            continue
        ch, cat = chr(c), lib.utf8proc_category(c)
        u = ((cat in (CC, CF, CS, CO)), u_ascii_punct(c) or PC <= cat <= PO, u_strip(c))
        h_strip = strip.normalize_str(ch)
        h = (clean.normalize_str(ch) == "",
             [p for p, _ in pre.pre_tokenize_str("a" + ch + "a")] == ["a", ch, "a"], h_strip)
        if u == h:
            continue
        if h_strip not in ("", ch):
            raise SystemExit(f"U+{c:04X}: fast tokenizer decomposes to {h_strip!r}; "
                             "unicode.cpp cannot express that")
        flags = (CONTROL if h[0] else 0) | (PUNCT if h[1] else 0) | (MARK if h_strip == "" else 0)
        if rows and rows[-1][1] == c - 1 and rows[-1][2] == flags:
            rows[-1][1] = c
        else:
            rows.append([c, c, flags])
    version = lib.utf8proc_unicode_version().decode()
    print(f"// Generated for utf8proc (Unicode {version}) and tokenizers {tokenizers.__version__} "
          f"by tests/golden/make_tokenizer_fixtures.py --unicode-overrides: {len(rows)} ranges.")
    for i in range(0, len(rows), 4):
        print("    " + " ".join("{0x%05X, 0x%05X, %d}," % tuple(r) for r in rows[i:i + 4]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("-o", "--out", type=Path,
                    default=Path(__file__).with_name("tokenizer_fixtures.json"))
    ap.add_argument("--unicode-overrides", action="store_true",
                    help="print the C++ override table of unicode.cpp instead")
    args = ap.parse_args()
    if args.unicode_overrides:
        return unicode_overrides()

    fast = Tokenizer.from_file(str(args.model_dir / "tokenizer.json"))
    fast.no_padding()
    fast.no_truncation()  # the file ships max_length 128 / pad to 128
    slow = BertTokenizer.from_pretrained(str(args.model_dir))
    # decode() as users see it: the WordPiece decoder, then transformers' clean-up of
    # spaces before punctuation and contractions (clean_up_tokenization_spaces=True).
    fast_hf = BertTokenizerFast.from_pretrained(str(args.model_dir))

    cases, disagreements = [], []
    for name, text in SINGLES:
        enc = fast.encode(text)
        case = {"name": name, "text": text, **record(enc), "tokens": enc.tokens[1:-1],
                "decoded": fast_hf.decode(enc.ids, skip_special_tokens=True)}
        if slow(text)["input_ids"] != enc.ids and name not in FAST_ONLY:
            disagreements.append((name, slow.tokenize(text), enc.tokens))
        if slow.decode(enc.ids, skip_special_tokens=True) != case["decoded"]:
            disagreements.append((name + " (decode)", slow.decode(enc.ids, skip_special_tokens=True),
                                  case["decoded"]))
        cases.append(case)

    for name, a, b, max_length in PAIRS:
        if max_length is None:
            fast.no_truncation()
        else:
            fast.enable_truncation(max_length, strategy="longest_first")
        enc = fast.encode(a, b) if b is not None else fast.encode(a)
        case = {"name": name, "text": a, **record(enc)}
        if b is not None:
            case["pair"] = b
        if max_length is not None:
            case["max_length"] = max_length
        kwargs = {"truncation": "longest_first", "max_length": max_length} if max_length else {}
        ref = slow(a, b, **kwargs)["input_ids"] if b is not None else slow(a, **kwargs)["input_ids"]
        if ref != enc.ids and name not in FAST_ONLY:
            disagreements.append((name, ref, enc.ids))
        cases.append(case)
    fast.no_truncation()

    fast.enable_padding(pad_id=fast.token_to_id("[PAD]"), pad_token="[PAD]")
    batch = [record(e) for e in fast.encode_batch(BATCH)]
    fast.no_padding()

    if disagreements:
        for d in disagreements:
            print("fast and slow tokenizers disagree:", *d, sep="\n  ", file=sys.stderr)
        sys.exit(1)

    out = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "reference": f"tokenizers {tokenizers.__version__} (fast, recorded), "
                     f"transformers {transformers.__version__} BertTokenizer (slow, agrees "
                     f"but on {sorted(FAST_ONLY)})",
        "cases": cases,
        "batch": {"texts": BATCH, "rows": batch},
    }
    text = json.dumps(out, ensure_ascii=False, separators=(",", ":"))
    # One case per line keeps diffs readable while staying compact.
    text = text.replace(',{"name"', ',\n{"name"')
    args.out.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {len(cases)} cases ({len(text)} bytes) to {args.out}")


if __name__ == "__main__":
    main()
