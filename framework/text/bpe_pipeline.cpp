#include "text/bpe_pipeline.h"

#include <functional>
#include <unordered_map>

#include "graft/error.h"
#include "text/text_segments.h"
#include "text/tokenizer_json.h"
#include "text/unicode.h"

namespace graft::text {
namespace fs = std::filesystem;
using nlohmann::json;
using Pipeline = BpeTokenizer::Pipeline;
namespace tj = tokenizer_json;
using text_segments::replace_all;

std::size_t Pipeline::specials(bool with_pair) const {
  std::size_t n = 0;
  for (const Item& item : with_pair ? pair : single)
    if (item.special) n += item.ids.size();
  return n;
}

namespace bpe_pipeline {
namespace {

const std::string kHint = "graft reads byte-level BPE (RoBERTa, GPT-2) and SentencePiece-style BPE (LLaMA) "
                          "tokenizer.json files; see docs/architecture.md for the supported components";

std::string string_key(const json& obj, const char* key, const fs::path& file, const std::string& where) {
  if (!obj.contains(key) || !obj[key].is_string()) tj::bad_key(file, where + "." + key, "is missing or not a string", kHint);
  return obj[key].get<std::string>();
}

// A Replace component's pattern: only {"String": ...} (a regex would need a regex engine).
std::string replace_pattern(const json& obj, const fs::path& file, const std::string& where) {
  if (!obj.contains("pattern") || !obj["pattern"].is_object() || !obj["pattern"].contains("String") ||
      !obj["pattern"]["String"].is_string())
    tj::bad_key(file, where + ".pattern", "is not a {\"String\": ...} pattern", kHint + " (regex patterns are not)");
  return obj["pattern"]["String"].get<std::string>();
}

// A Sequence component: each element of its `key` array through `parse`, named by index.
template <typename Parse>
void parse_sequence(const json& n, const char* key, const fs::path& file, const std::string& where, Parse parse) {
  if (!n.contains(key) || !n[key].is_array()) tj::bad_key(file, where + "." + key, "is missing or not an array", kHint);
  for (std::size_t i = 0; i < n[key].size(); ++i) parse(n[key][i], where + "." + key + "[" + std::to_string(i) + "]");
}

void parse_normalizer(const json& n, const fs::path& file, const std::string& where, Pipeline& p) {
  if (n.is_null()) return;
  const std::string type = tj::type_of(n);
  if (type == "Sequence") {
    parse_sequence(n, "normalizers", file, where, [&](const json& step, const std::string& at) { parse_normalizer(step, file, at, p); });
  } else if (type == "Prepend") {
    p.normalizer.push_back({Pipeline::Normalize::Prepend, "", string_key(n, "prepend", file, where)});
  } else if (type == "Replace") {
    p.normalizer.push_back({Pipeline::Normalize::Replace, replace_pattern(n, file, where), string_key(n, "content", file, where)});
  } else if (type == "NFC") {
    p.normalizer.push_back({Pipeline::Normalize::NFC, "", ""});
  } else if (type == "NFKC") {
    p.normalizer.push_back({Pipeline::Normalize::NFKC, "", ""});
  } else if (type == "Lowercase") {
    p.normalizer.push_back({Pipeline::Normalize::Lowercase, "", ""});
  } else {
    tj::bad_key(file, where + ".type", "is \"" + type + "\", which graft does not support",
                kHint + " (normalisers: Sequence, Prepend, Replace, NFC, NFKC, Lowercase)");
  }
}

// The split regexes graft knows, written out by hand in gpt2_split / cl100k_split.
constexpr const char* kGpt2Regex = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr const char* kCl100kRegex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// Sequence [Split(known regex, Isolated), ByteLevel(use_regex false)]: Llama 3, Qwen2, ...
void parse_split_then_byte_level(const json& n, const fs::path& file, Pipeline& p) {
  const std::string hint = kHint + " (a Sequence pre-tokenizer must be Split with the GPT-2, Llama 3 or Qwen2 "
                                   "regex, then ByteLevel without its own regex)";
  const json list = n.value("pretokenizers", json());
  if (!list.is_array() || list.size() != 2 || tj::type_of(list[0]) != "Split" || tj::type_of(list[1]) != "ByteLevel")
    tj::bad_key(file, "pre_tokenizer.pretokenizers", "is not [Split, ByteLevel]", hint);
  const json& split = list[0];
  if (!split.contains("pattern") || !split["pattern"].is_object() || !split["pattern"].contains("Regex") ||
      !split["pattern"]["Regex"].is_string())
    tj::bad_key(file, "pre_tokenizer.pretokenizers[0].pattern", "is not a {\"Regex\": ...} pattern", hint);
  if (split.value("behavior", std::string()) != "Isolated" || split.value("invert", false))
    tj::bad_key(file, "pre_tokenizer.pretokenizers[0].behavior", "is not \"Isolated\" (without invert)", hint);
  const std::string regex = split["pattern"]["Regex"].get<std::string>();
  if (regex == kGpt2Regex) {
    p.split_regex = Pipeline::Split::Gpt2;
  } else if (regex == kCl100kRegex || regex == kQwen2Regex) {
    p.split_regex = Pipeline::Split::Cl100k;
    p.max_digits = regex == kCl100kRegex ? 3 : 1;
  } else {
    tj::bad_key(file, "pre_tokenizer.pretokenizers[0].pattern.Regex", "is a regex graft does not know", hint);
  }
  if (tj::get_bool(list[1], "use_regex", true, file, "pre_tokenizer.pretokenizers[1]."))
    tj::bad_key(file, "pre_tokenizer.pretokenizers[1].use_regex", "is true after a Split", hint);
  p.pre = Pipeline::Pre::ByteLevel;
  p.add_prefix_space = tj::get_bool(list[1], "add_prefix_space", false, file, "pre_tokenizer.pretokenizers[1].");
  p.use_regex = true;
}

void parse_pre_tokenizer(const json& n, const fs::path& file, Pipeline& p) {
  if (n.is_null()) return;
  const std::string type = tj::type_of(n);
  if (type == "Sequence") {
    parse_split_then_byte_level(n, file, p);
  } else if (type == "ByteLevel") {
    p.pre = Pipeline::Pre::ByteLevel;
    p.add_prefix_space = tj::get_bool(n, "add_prefix_space", true, file, "pre_tokenizer.");
    p.use_regex = tj::get_bool(n, "use_regex", true, file, "pre_tokenizer.");
  } else if (type == "Metaspace") {
    p.pre = Pipeline::Pre::Metaspace;
    p.replacement = string_key(n, "replacement", file, "pre_tokenizer");
    p.add_prefix_space = tj::get_bool(n, "add_prefix_space", true, file, "pre_tokenizer.");
    p.split = tj::get_bool(n, "split", true, file, "pre_tokenizer.");
    const std::string scheme = n.value("prepend_scheme", std::string("always"));
    if (scheme == "never") p.add_prefix_space = false;
    else if (scheme == "first") p.prepend_first_only = true;
    else if (scheme != "always")
      tj::bad_key(file, "pre_tokenizer.prepend_scheme", "is \"" + scheme + "\"", "use always, first or never");
  } else {
    tj::bad_key(file, "pre_tokenizer.type", "is \"" + type + "\", which graft does not support",
                kHint + " (pre-tokenizers: ByteLevel, Metaspace, Sequence[Split, ByteLevel], or none)");
  }
}

std::vector<Pipeline::Item> parse_template(const json& items, const fs::path& file, const std::string& where,
                                           const json& specials) {
  if (!items.is_array()) tj::bad_key(file, where, "is not an array", kHint);
  std::vector<Pipeline::Item> out;
  for (const auto& item : items) {
    Pipeline::Item it;
    if (item.contains("SpecialToken")) {
      const json& s = item["SpecialToken"];
      const std::string name = string_key(s, "id", file, where + ".SpecialToken");
      if (!specials.is_object() || !specials.contains(name) || !specials[name].contains("ids"))
        tj::bad_key(file, "post_processor.special_tokens." + name, "is missing", kHint);
      it.special = true;
      it.ids = specials[name]["ids"].get<std::vector<std::int64_t>>();
      it.type_id = s.value("type_id", 0);
    } else if (item.contains("Sequence")) {
      const std::string id = string_key(item["Sequence"], "id", file, where + ".Sequence");
      it.sequence = id == "B" ? 1 : 0;
      it.type_id = item["Sequence"].value("type_id", 0);
    } else {
      tj::bad_key(file, where, "has an item that is neither SpecialToken nor Sequence", kHint);
    }
    out.push_back(std::move(it));
  }
  return out;
}

// RobertaProcessing / BertProcessing: {"cls": [token, id], "sep": [token, id]}.
std::int64_t processing_id(const json& n, const char* key, const fs::path& file) {
  if (!n.contains(key) || !n[key].is_array() || n[key].size() != 2 || !n[key][1].is_number_unsigned())
    tj::bad_key(file, std::string("post_processor.") + key, "is not a [token, id] pair", kHint);
  return n[key][1].get<std::int64_t>();
}

void parse_post_processor(const json& n, const fs::path& file, Pipeline& p) {
  using Item = Pipeline::Item;
  const std::string type = tj::type_of(n);
  if (n.is_null() || type == "ByteLevel") {
    p.single = {Item{false, {}, 0, 0}};
    p.pair = {Item{false, {}, 0, 0}, Item{false, {}, 1, 1}};
  } else if (type == "Sequence") {
    p.single = {Item{false, {}, 0, 0}};
    p.pair = {Item{false, {}, 0, 0}, Item{false, {}, 1, 1}};
    for (const auto& step : n.value("processors", json::array()))
      if (tj::type_of(step) != "ByteLevel") parse_post_processor(step, file, p);  // offsets only
  } else if (type == "TemplateProcessing") {
    const json specials = n.value("special_tokens", json::object());
    p.single = parse_template(n.value("single", json()), file, "post_processor.single", specials);
    p.pair = parse_template(n.value("pair", json()), file, "post_processor.pair", specials);
  } else if (type == "RobertaProcessing" || type == "BertProcessing") {
    const std::int64_t cls = processing_id(n, "cls", file), sep = processing_id(n, "sep", file);
    const std::int64_t b_type = type == "BertProcessing" ? 1 : 0;  // RoBERTa: all 0
    p.single = {Item{true, {cls}, 0, 0}, Item{false, {}, 0, 0}, Item{true, {sep}, 0, 0}};
    p.pair = p.single;
    if (type == "RobertaProcessing") p.pair.push_back(Item{true, {sep}, 0, 0});
    p.pair.push_back(Item{false, {}, 1, b_type});
    p.pair.push_back(Item{true, {sep}, 0, b_type});
  } else {
    tj::bad_key(file, "post_processor.type", "is \"" + type + "\", which graft does not support",
                kHint + " (post-processors: TemplateProcessing, RobertaProcessing, BertProcessing, ByteLevel)");
  }
}

void parse_decoder(const json& n, const fs::path& file, const std::string& where, Pipeline& p) {
  using D = Pipeline::Decode;
  if (n.is_null()) return;
  p.has_decoder = true;
  const std::string type = tj::type_of(n);
  if (type == "Sequence") {
    parse_sequence(n, "decoders", file, where, [&](const json& step, const std::string& at) { parse_decoder(step, file, at, p); });
  } else if (type == "ByteLevel") {
    p.decoder.push_back({D::ByteLevel, "", ""});
  } else if (type == "Replace") {
    p.decoder.push_back({D::Replace, replace_pattern(n, file, where), string_key(n, "content", file, where)});
  } else if (type == "ByteFallback") {
    p.decoder.push_back({D::ByteFallback, "", ""});
  } else if (type == "Fuse") {
    p.decoder.push_back({D::Fuse, "", ""});
  } else if (type == "Strip") {
    D d{D::Strip, string_key(n, "content", file, where), ""};
    d.start = n.value("start", 0);
    d.stop = n.value("stop", 0);
    p.decoder.push_back(d);
  } else if (type == "Metaspace") {
    D d{D::Metaspace, string_key(n, "replacement", file, where), ""};
    d.prefix = tj::get_bool(n, "add_prefix_space", true, file, where + ".") &&
               n.value("prepend_scheme", std::string("always")) != "never";
    p.decoder.push_back(d);
  } else {
    tj::bad_key(file, where + ".type", "is \"" + type + "\", which graft does not support",
                kHint + " (decoders: Sequence, ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace)");
  }
}

// Rust's String::from_utf8_lossy: each maximal invalid sequence becomes U+FFFD.
std::string utf8_lossy(const std::string& bytes) {
  std::string out;
  for (std::size_t pos = 0; pos < bytes.size();) {
    const auto c = static_cast<unsigned char>(bytes[pos]);
    const std::size_t need = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    bool ok = need > 0 && pos + need <= bytes.size();
    for (std::size_t k = 1; ok && k < need; ++k) ok = (static_cast<unsigned char>(bytes[pos + k]) & 0xC0) == 0x80;
    if (ok && need > 1) {
      try {
        unicode::decode_utf8(std::string_view(bytes).substr(pos, need));  // overlong, surrogate, range
      } catch (const FormatError&) {
        ok = false;
      }
    }
    if (ok) {
      out.append(bytes, pos, need);
      pos += need;
      continue;
    }
    out += "\xEF\xBF\xBD";
    // Skip the longest prefix of a valid sequence (at least one byte), as Rust does.
    std::size_t skip = 1;
    while (need > 1 && skip < need && pos + skip < bytes.size() &&
           (static_cast<unsigned char>(bytes[pos + skip]) & 0xC0) == 0x80)
      ++skip;
    pos += skip;
  }
  return out;
}

int byte_token(const std::string& token) {  // "<0xAB>" -> 0xAB, else -1
  if (token.size() != 6 || token.compare(0, 3, "<0x") != 0 || token[5] != '>') return -1;
  auto hex = [](char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1; };
  const int hi = hex(token[3]), lo = hex(token[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

}  // namespace

Pipeline parse(const json& root, const fs::path& file) {
  Pipeline p;
  parse_normalizer(root.value("normalizer", json()), file, "normalizer", p);
  parse_pre_tokenizer(root.value("pre_tokenizer", json()), file, p);
  parse_post_processor(root.value("post_processor", json()), file, p);
  parse_decoder(root.value("decoder", json()), file, "decoder", p);
  return p;
}

std::string normalize(const Pipeline& p, std::string text) {
  for (const auto& step : p.normalizer) {
    switch (step.kind) {
      case Pipeline::Normalize::Prepend:
        if (!text.empty()) text = step.to + text;
        break;
      case Pipeline::Normalize::Replace: text = replace_all(std::move(text), step.from, step.to); break;
      case Pipeline::Normalize::NFC: text = unicode::nfc(text); break;
      case Pipeline::Normalize::NFKC: text = unicode::nfkc(text); break;
      case Pipeline::Normalize::Lowercase:
        text = unicode::encode_utf8(unicode::lowercase(unicode::decode_utf8(text)));
        break;
    }
  }
  return text;
}

const std::array<char32_t, 256>& byte_to_char() {
  static const std::array<char32_t, 256> table = [] {
    std::array<char32_t, 256> t{};
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      t[static_cast<std::size_t>(b)] = printable ? static_cast<char32_t>(b) : next++;
    }
    return t;
  }();
  return table;
}

std::vector<std::u32string> gpt2_split(std::u32string_view s) {
  auto space = [](char32_t c) { return unicode::is_whitespace(c); };
  auto letter = [](char32_t c) { return unicode::is_letter(c); };
  auto number = [](char32_t c) { return unicode::is_number(c); };
  auto other = [&](char32_t c) { return !space(c) && !letter(c) && !number(c); };
  std::vector<std::u32string> out;
  const std::size_t n = s.size();
  for (std::size_t i = 0; i < n;) {
    std::size_t end = i;
    // 's 't 're 've 'm 'll 'd
    if (s[i] == U'\'' && i + 1 < n) {
      for (std::u32string_view suffix : {U"s", U"t", U"re", U"ve", U"m", U"ll", U"d"})
        if (s.substr(i + 1, suffix.size()) == suffix) {
          end = i + 1 + suffix.size();
          break;
        }
    }
    // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`
    if (end == i) {
      const std::size_t start = s[i] == U' ' ? i + 1 : i;
      for (const auto& cls : {std::function<bool(char32_t)>(letter), std::function<bool(char32_t)>(number),
                              std::function<bool(char32_t)>(other)}) {
        std::size_t j = start;
        while (j < n && cls(s[j])) ++j;
        if (j > start) {
          end = j;
          break;
        }
      }
    }
    // `\s+(?!\S)` then `\s+`: a run of spaces leaves its last one to the next word.
    if (end == i) {
      std::size_t j = i;
      while (j < n && space(s[j])) ++j;
      end = (j < n && j - i > 1) ? j - 1 : j;
    }
    out.emplace_back(s.substr(i, end - i));
    i = end;
  }
  return out;
}

std::vector<std::u32string> cl100k_split(std::u32string_view s, int max_digits) {
  auto space = [](char32_t c) { return unicode::is_whitespace(c); };
  auto letter = [](char32_t c) { return unicode::is_letter(c); };
  auto number = [](char32_t c) { return unicode::is_number(c); };
  auto newline = [](char32_t c) { return c == U'\r' || c == U'\n'; };
  auto other = [&](char32_t c) { return !space(c) && !letter(c) && !number(c); };
  std::vector<std::u32string> out;
  const std::size_t n = s.size();
  for (std::size_t i = 0; i < n;) {
    std::size_t end = i;
    // (?i:'s|'t|'re|'ve|'m|'ll|'d)
    if (s[i] == U'\'' && i + 1 < n) {
      auto lower = [](char32_t c) { return c >= U'A' && c <= U'Z' ? c + 32 : c; };
      for (std::u32string_view suffix : {U"s", U"t", U"re", U"ve", U"m", U"ll", U"d"}) {
        bool match = i + 1 + suffix.size() <= n;
        for (std::size_t k = 0; match && k < suffix.size(); ++k) match = lower(s[i + 1 + k]) == suffix[k];
        if (match) {
          end = i + 1 + suffix.size();
          break;
        }
      }
    }
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (end == i) {
      std::size_t start = i;
      if (!letter(s[i]) && !newline(s[i]) && !number(s[i]) && i + 1 < n && letter(s[i + 1])) start = i + 1;
      std::size_t j = start;
      while (j < n && letter(s[j])) ++j;
      if (j > start) end = j;
    }
    // \p{N}{1,max}
    if (end == i && number(s[i])) {
      std::size_t j = i;
      while (j < n && number(s[j]) && (max_digits == 0 || j - i < static_cast<std::size_t>(max_digits))) ++j;
      end = j;
    }
    //  ?[^\s\p{L}\p{N}]+[\r\n]*
    if (end == i) {
      const std::size_t start = s[i] == U' ' ? i + 1 : i;
      std::size_t j = start;
      while (j < n && other(s[j])) ++j;
      if (j > start) {
        while (j < n && newline(s[j])) ++j;
        end = j;
      }
    }
    // \s*[\r\n]+ : the whitespace run up to its last newline
    if (end == i) {
      std::size_t j = i;
      while (j < n && space(s[j])) ++j;
      for (std::size_t k = j; k > i; --k)
        if (newline(s[k - 1])) {
          end = k;
          break;
        }
      // \s+(?!\S) then \s+
      if (end == i) end = (j < n && j - i > 1) ? j - 1 : j;
    }
    out.emplace_back(s.substr(i, end - i));
    i = end;
  }
  return out;
}

std::vector<std::string> pre_tokenize(const Pipeline& p, const std::string& segment, bool first) {
  std::vector<std::string> words;
  if (p.pre == Pipeline::Pre::None) {
    if (!segment.empty()) words.push_back(segment);
    return words;
  }
  if (p.pre == Pipeline::Pre::ByteLevel) {
    std::u32string text = unicode::decode_utf8(segment);
    if (p.add_prefix_space && !text.empty() && text.front() != U' ') text.insert(text.begin(), U' ');
    std::vector<std::u32string> pieces;
    if (p.use_regex)
      pieces = p.split_regex == Pipeline::Split::Gpt2 ? gpt2_split(text) : cl100k_split(text, p.max_digits);
    else if (!text.empty()) pieces.push_back(text);
    const auto& map = byte_to_char();
    for (const auto& piece : pieces) {
      std::string word;
      for (unsigned char byte : unicode::encode_utf8(piece)) unicode::append_utf8(word, map[byte]);
      words.push_back(std::move(word));
    }
    return words;
  }
  // Metaspace: spaces become the replacement, which then starts each word.
  std::string text = replace_all(segment, " ", p.replacement);
  if (p.add_prefix_space && !text.empty() && text.compare(0, p.replacement.size(), p.replacement) != 0 &&
      (!p.prepend_first_only || first))
    text = p.replacement + text;
  if (!p.split) {
    if (!text.empty()) words.push_back(text);
    return words;
  }
  std::size_t begin = 0;
  for (std::size_t pos = text.find(p.replacement, 1); pos != std::string::npos; pos = text.find(p.replacement, pos + 1)) {
    if (pos > begin) words.push_back(text.substr(begin, pos - begin));
    begin = pos;
  }
  if (begin < text.size()) words.push_back(text.substr(begin));
  return words;
}

std::string decode(const Pipeline& p, std::vector<std::string> tokens) {
  using D = Pipeline::Decode;
  if (!p.has_decoder) {
    std::string out;
    for (std::size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
    return out;
  }
  for (const D& step : p.decoder) {
    std::vector<std::string> next;
    switch (step.kind) {
      case D::ByteLevel: {
        static const std::unordered_map<char32_t, unsigned char> to_byte = [] {
          std::unordered_map<char32_t, unsigned char> inverse;
          for (int b = 0; b < 256; ++b) inverse[byte_to_char()[static_cast<std::size_t>(b)]] = static_cast<unsigned char>(b);
          return inverse;
        }();
        std::string bytes;
        for (const auto& token : tokens) {
          std::string mapped;
          bool all = true;
          for (char32_t c : unicode::decode_utf8(token)) {
            const auto it = to_byte.find(c);
            if (it == to_byte.end()) {
              all = false;
              break;
            }
            mapped.push_back(static_cast<char>(it->second));
          }
          bytes += all ? mapped : token;
        }
        next.push_back(utf8_lossy(bytes));
        break;
      }
      case D::Replace:
        for (auto& token : tokens) next.push_back(replace_all(token, step.from, step.to));
        break;
      case D::ByteFallback: {
        std::string pending;
        auto flush = [&] {
          if (pending.empty()) return;
          bool valid = true;
          try {
            unicode::decode_utf8(pending);
          } catch (const FormatError&) {
            valid = false;
          }
          if (valid) next.push_back(pending);
          else
            for (std::size_t k = 0; k < pending.size(); ++k) next.push_back("\xEF\xBF\xBD");
          pending.clear();
        };
        for (auto& token : tokens) {
          const int byte = byte_token(token);
          if (byte >= 0) {
            pending.push_back(static_cast<char>(byte));
          } else {
            flush();
            next.push_back(token);
          }
        }
        flush();
        break;
      }
      case D::Fuse: {
        std::string all;
        for (const auto& token : tokens) all += token;
        next.push_back(all);
        break;
      }
      case D::Strip:
        for (auto& token : tokens) {
          std::size_t begin = 0, end = token.size();
          for (int k = 0; k < step.start && token.compare(begin, step.from.size(), step.from) == 0; ++k)
            begin += step.from.size();
          for (int k = 0; k < step.stop && end >= begin + step.from.size() &&
                          token.compare(end - step.from.size(), step.from.size(), step.from) == 0;
               ++k)
            end -= step.from.size();
          next.push_back(token.substr(begin, end - begin));
        }
        break;
      case D::Metaspace:
        for (std::size_t i = 0; i < tokens.size(); ++i)
          next.push_back(replace_all(tokens[i], step.from, i == 0 && step.prefix ? "" : " "));
        break;
    }
    tokens = std::move(next);
  }
  std::string out;
  for (const auto& token : tokens) out += token;
  return out;
}

}  // namespace bpe_pipeline
}  // namespace graft::text
