#include "text/unicode.h"

#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>
#include <cstdint>
#include <iterator>
#include <string>

#include "graft/error.h"

namespace graft::text::unicode {

std::u32string decode_utf8(std::string_view text, std::string_view what) {
  std::u32string out;
  out.reserve(text.size());
  const auto* bytes = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
  std::size_t pos = 0;
  while (pos < text.size()) {
    utf8proc_int32_t cp = 0;
    // utf8proc_iterate rejects overlong forms, surrogates and code points past U+10FFFF.
    const utf8proc_ssize_t n = utf8proc_iterate(bytes + pos, static_cast<utf8proc_ssize_t>(text.size() - pos), &cp);
    if (n <= 0 || cp < 0)
      throw FormatError("tokenizer",
                        std::string(what) + " is not valid UTF-8: bad byte sequence at byte offset " +
                            std::to_string(pos),
                        "the input must be UTF-8; convert it first (e.g. iconv -f latin1 -t utf-8)");
    out.push_back(static_cast<char32_t>(cp));
    pos += static_cast<std::size_t>(n);
  }
  return out;
}

void append_utf8(std::string& out, char32_t cp) {
  utf8proc_uint8_t buf[4];
  const auto n = utf8proc_encode_char(static_cast<utf8proc_int32_t>(cp), buf);
  out.append(reinterpret_cast<const char*>(buf), static_cast<std::size_t>(n));
}

std::string encode_utf8(std::u32string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t cp : text) append_utf8(out, cp);
  return out;
}

namespace {

utf8proc_category_t category(char32_t cp) {
  return utf8proc_category(static_cast<utf8proc_int32_t>(cp));
}

// Hugging Face's fast tokenizer classifies characters with older Unicode tables than
// utf8proc's: it does not know characters added since (mostly marks and punctuation
// of minor scripts), and a few changed category. These rows give its classes where
// they differ; an overridden code point is never decomposed.
enum : std::uint8_t { kControl = 1, kPunct = 2, kMark = 4 };
struct Override {
  char32_t first, last;
  std::uint8_t flags;
};
constexpr Override kOverrides[] = {
// Generated for utf8proc (Unicode 15.0.0) and tokenizers 0.15.2 by tests/golden/make_tokenizer_fixtures.py --unicode-overrides: 118 ranges.
    {0x0061D, 0x0061D, 0}, {0x007FD, 0x007FD, 0}, {0x00890, 0x00891, 0}, {0x00898, 0x0089F, 0},
    {0x008CA, 0x008E2, 0}, {0x009FD, 0x009FE, 0}, {0x00A76, 0x00A76, 0}, {0x00AFA, 0x00AFF, 0},
    {0x00B55, 0x00B55, 0}, {0x00C04, 0x00C04, 0}, {0x00C3C, 0x00C3C, 0}, {0x00C77, 0x00C77, 0},
    {0x00C84, 0x00C84, 0}, {0x00D00, 0x00D00, 0}, {0x00D3B, 0x00D3C, 0}, {0x00D81, 0x00D81, 0},
    {0x00EBA, 0x00EBA, 0}, {0x00ECE, 0x00ECE, 0}, {0x0166D, 0x0166D, 2}, {0x01734, 0x01734, 4},
    {0x0180F, 0x0180F, 0}, {0x01885, 0x01886, 0}, {0x01ABF, 0x01ACE, 0}, {0x01B7D, 0x01B7E, 0},
    {0x01DF6, 0x01DFB, 0}, {0x02E43, 0x02E4F, 0}, {0x02E52, 0x02E5D, 0}, {0x0A82C, 0x0A82C, 0},
    {0x0A8C5, 0x0A8C5, 0}, {0x0A8FF, 0x0A8FF, 0}, {0x0A9BD, 0x0A9BD, 0}, {0x10D24, 0x10D27, 0},
    {0x10EAB, 0x10EAD, 0}, {0x10EFD, 0x10EFF, 0}, {0x10F46, 0x10F50, 0}, {0x10F55, 0x10F59, 0},
    {0x10F82, 0x10F89, 0}, {0x11070, 0x11070, 0}, {0x11073, 0x11074, 0}, {0x110C2, 0x110C2, 0},
    {0x110CD, 0x110CD, 0}, {0x111C9, 0x111C9, 2}, {0x111CF, 0x111CF, 0}, {0x1123E, 0x1123E, 0},
    {0x11241, 0x11241, 0}, {0x1133B, 0x1133B, 0}, {0x11438, 0x1143F, 0}, {0x11442, 0x11444, 0},
    {0x11446, 0x11446, 0}, {0x1144B, 0x1144F, 0}, {0x1145A, 0x1145B, 0}, {0x1145D, 0x1145E, 0},
    {0x11660, 0x1166C, 0}, {0x116B9, 0x116B9, 0}, {0x1182F, 0x11837, 0}, {0x11839, 0x1183B, 0},
    {0x11938, 0x11938, 0}, {0x1193B, 0x1193C, 0}, {0x1193E, 0x1193E, 0}, {0x11943, 0x11946, 0},
    {0x119D4, 0x119D7, 0}, {0x119DA, 0x119DB, 0}, {0x119E0, 0x119E0, 0}, {0x119E2, 0x119E2, 0},
    {0x11A01, 0x11A0A, 0}, {0x11A33, 0x11A38, 0}, {0x11A3B, 0x11A47, 0}, {0x11A51, 0x11A56, 0},
    {0x11A59, 0x11A5B, 0}, {0x11A8A, 0x11A96, 0}, {0x11A98, 0x11A9C, 0}, {0x11A9E, 0x11AA2, 0},
    {0x11B00, 0x11B09, 0}, {0x11C30, 0x11C36, 0}, {0x11C38, 0x11C3D, 0}, {0x11C3F, 0x11C3F, 0},
    {0x11C41, 0x11C45, 0}, {0x11C70, 0x11C71, 0}, {0x11C92, 0x11CA7, 0}, {0x11CAA, 0x11CB0, 0},
    {0x11CB2, 0x11CB3, 0}, {0x11CB5, 0x11CB6, 0}, {0x11D31, 0x11D36, 0}, {0x11D3A, 0x11D3A, 0},
    {0x11D3C, 0x11D3D, 0}, {0x11D3F, 0x11D45, 0}, {0x11D47, 0x11D47, 0}, {0x11D90, 0x11D91, 0},
    {0x11D95, 0x11D95, 0}, {0x11D97, 0x11D97, 0}, {0x11EF3, 0x11EF4, 0}, {0x11EF7, 0x11EF8, 0},
    {0x11F00, 0x11F01, 0}, {0x11F36, 0x11F3A, 0}, {0x11F40, 0x11F40, 0}, {0x11F42, 0x11F4F, 0},
    {0x11FFF, 0x11FFF, 0}, {0x12FF1, 0x12FF2, 0}, {0x13430, 0x13440, 0}, {0x13447, 0x13455, 0},
    {0x16E97, 0x16E9A, 0}, {0x16F4F, 0x16F4F, 0}, {0x16FE2, 0x16FE2, 0}, {0x16FE4, 0x16FE4, 0},
    {0x1CF00, 0x1CF2D, 0}, {0x1CF30, 0x1CF46, 0}, {0x1E000, 0x1E006, 0}, {0x1E008, 0x1E018, 0},
    {0x1E01B, 0x1E021, 0}, {0x1E023, 0x1E024, 0}, {0x1E026, 0x1E02A, 0}, {0x1E08F, 0x1E08F, 0},
    {0x1E130, 0x1E136, 0}, {0x1E2AE, 0x1E2AE, 0}, {0x1E2EC, 0x1E2EF, 0}, {0x1E4EC, 0x1E4EF, 0},
    {0x1E944, 0x1E94A, 0}, {0x1E95E, 0x1E95F, 0},
};

const Override* find_override(char32_t cp) {
  const auto* end = std::end(kOverrides);
  const auto* it = std::upper_bound(std::begin(kOverrides), end, cp,
                                    [](char32_t value, const Override& o) { return value < o.first; });
  if (it == std::begin(kOverrides)) return nullptr;
  --it;
  return cp <= it->last ? it : nullptr;
}

bool is_mark(char32_t cp) {
  if (const auto* o = find_override(cp)) return o->flags & kMark;
  return category(cp) == UTF8PROC_CATEGORY_MN;
}

}  // namespace

bool is_control(char32_t cp) {
  if (cp == U'\t' || cp == U'\n' || cp == U'\r') return false;
  if (const auto* o = find_override(cp)) return o->flags & kControl;
  // Unassigned code points (Cn) are kept: the fast tokenizer keeps them (the slow one
  // drops them); they end up as [UNK].
  switch (category(cp)) {
    case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF: case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CS:
      return true;
    default:
      return false;
  }
}

bool is_whitespace(char32_t cp) {
  // The White_Space property, listed: it is small and stable across Unicode versions.
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

bool is_punctuation(char32_t cp) {
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) ||
      (cp >= 123 && cp <= 126))
    return true;  // ASCII symbols such as $ + < = > ^ ` | ~ count as punctuation in BERT
  if (const auto* o = find_override(cp)) return o->flags & kPunct;
  const auto c = category(cp);
  return c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_PO;
}

bool is_chinese_char(char32_t cp) {
  // HF tokenizers' ranges: note 0x2B920 where BERT's original (and the slow tokenizer)
  // has 0x2B820, so 2B820–2B91F is not padded.
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
         (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

static int combining_class(char32_t cp) {
  return utf8proc_get_property(static_cast<utf8proc_int32_t>(cp))->combining_class;
}

std::u32string strip_accents(std::u32string_view text) {
  std::u32string nfd;
  nfd.reserve(text.size() + text.size() / 4);
  utf8proc_int32_t buf[32];  // the longest canonical decomposition is 4 code points
  for (char32_t cp : text) {
    if (find_override(cp)) {  // unknown to HF's tables: no decomposition there
      nfd.push_back(cp);
      continue;
    }
    int boundclass = 0;
    const auto n = utf8proc_decompose_char(static_cast<utf8proc_int32_t>(cp), buf, 32,
                                           UTF8PROC_DECOMPOSE, &boundclass);
    if (n <= 0 || n > 32) {
      nfd.push_back(cp);
      continue;
    }
    nfd.append(buf, buf + n);
  }
  // Canonical ordering: a run of combining marks is stably sorted by combining class.
  // Only marks move, and most are then dropped, but a kept spacing mark (Mc) may move.
  for (std::size_t i = 0; i < nfd.size();) {
    if (combining_class(nfd[i]) == 0) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < nfd.size() && combining_class(nfd[j]) != 0) ++j;
    std::stable_sort(nfd.begin() + static_cast<std::ptrdiff_t>(i), nfd.begin() + static_cast<std::ptrdiff_t>(j),
                     [](char32_t a, char32_t b) { return combining_class(a) < combining_class(b); });
    i = j;
  }
  std::u32string out;
  out.reserve(nfd.size());
  for (char32_t cp : nfd)
    if (!is_mark(cp)) out.push_back(cp);
  return out;
}

std::u32string lowercase(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  for (char32_t cp : text) {
    if (cp == 0x130) {  // the one unconditional multi-code-point lower-case mapping
      out += U"i\u0307";
      continue;
    }
    out.push_back(static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp))));
  }
  return out;
}

bool is_letter(char32_t cp) {
  switch (category(cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: return true;
    default: return false;
  }
}

bool is_number(char32_t cp) {
  const auto c = category(cp);
  return c == UTF8PROC_CATEGORY_ND || c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_NO;
}

namespace {
std::string normalise(std::string_view text, int options) {
  utf8proc_uint8_t* out = nullptr;
  const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                              static_cast<utf8proc_ssize_t>(text.size()), &out,
                              static_cast<utf8proc_option_t>(options));
  if (n < 0)
    throw FormatError("tokenizer", std::string("cannot normalise text: ") + utf8proc_errmsg(n),
                      "the input must be valid UTF-8");
  std::string result(reinterpret_cast<const char*>(out), static_cast<std::size_t>(n));
  std::free(out);
  return result;
}
}  // namespace

std::string nfc(std::string_view text) { return normalise(text, UTF8PROC_STABLE | UTF8PROC_COMPOSE); }
std::string nfkc(std::string_view text) {
  return normalise(text, UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
}

}  // namespace graft::text::unicode
