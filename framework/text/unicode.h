// Unicode helpers for the BERT tokenizers, on top of utf8proc. The predicates follow
// Hugging Face's BertNormalizer / BertPreTokenizer (tokenizers, Rust) character classes,
// including where its older Unicode tables differ from utf8proc's (an override table).
#pragma once
#include <string>
#include <string_view>

namespace graft::text::unicode {

// Decodes UTF-8 into code points; invalid input throws graft::FormatError naming the
// byte offset of the first bad sequence (`what` names the input in the message).
std::u32string decode_utf8(std::string_view text, std::string_view what = "text");
void append_utf8(std::string& out, char32_t cp);
std::string encode_utf8(std::u32string_view text);

// Removed by clean_text: Cc, Cf, Co, Cs except \t \n \r (unassigned code points stay).
bool is_control(char32_t cp);
// Unicode White_Space plus \t \n \r (as Rust's char::is_whitespace).
bool is_whitespace(char32_t cp);
// ASCII punctuation (33–47, 58–64, 91–96, 123–126) or any Unicode P* category.
bool is_punctuation(char32_t cp);
// Unicode letters (L*) and numbers (N*): the \p{L} and \p{N} of GPT-2's split regex.
bool is_letter(char32_t cp);
bool is_number(char32_t cp);
// The CJK ideograph blocks BERT pads with spaces (not Hangul, not kana), as HF tokenizers.
bool is_chinese_char(char32_t cp);

// NFD (canonical decomposition and ordering) then drop nonspacing marks (Mn).
std::u32string strip_accents(std::u32string_view text);
// Full lower-case mapping per code point (U+0130 becomes "i" + U+0307, as in Rust).
std::u32string lowercase(std::u32string_view text);
// Unicode normalisation forms C and KC (utf8proc); the input must be valid UTF-8.
std::string nfc(std::string_view text);
std::string nfkc(std::string_view text);

}  // namespace graft::text::unicode
