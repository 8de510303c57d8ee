#include "text/wordpiece.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <utility>

#include "graft/error.h"
#include "text/text_segments.h"
#include "text/tokenizer_json.h"
#include "text/unicode.h"

namespace graft::text {
namespace fs = std::filesystem;
using nlohmann::json;
using tokenizer_json::bad_key;
using tokenizer_json::get_bool;
using tokenizer_json::token_text;
using tokenizer_json::type_of;
using text_segments::replace_all;

namespace {

constexpr const char* kComponent = "tokenizer";

// transformers' clean_up_tokenization (and the WordPiece decoder's per-token variant,
// which also turns " do not" into " don't").
std::string clean_up(std::string text, bool per_token) {
  static constexpr std::pair<std::string_view, std::string_view> kRules[] = {
      {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"},
      {" 'm", "'m"}, {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kRules) {
    if (!per_token && from == " do not") continue;
    text = replace_all(std::move(text), from, to);
  }
  return text;
}

}  // namespace

WordPieceTokenizer::WordPieceTokenizer(std::vector<std::string> vocab, WordPieceConfig config,
                                       std::vector<std::string> added, std::string source)
    : config_(std::move(config)), vocab_(std::move(vocab)) {
  ids_.reserve(vocab_.size());
  for (std::size_t i = 0; i < vocab_.size(); ++i)
    if (!vocab_[i].empty()) ids_.insert_or_assign(vocab_[i], static_cast<std::int64_t>(i));  // last wins, as HF

  auto require = [&](const std::string& token, const char* role) {
    const std::int64_t id = token_id(token);
    if (id < 0)
      throw FormatError(kComponent,
                        source + ": the vocabulary has no " + role + " \"" + token + "\"",
                        "a BERT vocabulary needs [UNK], [CLS], [SEP] and [PAD]; if it names them "
                        "differently, set them in WordPieceConfig or tokenizer_config.json");
    return id;
  };
  unk_id_ = require(config_.unk_token, "unk_token");
  cls_id_ = require(config_.cls_token, "cls_token");
  sep_id_ = require(config_.sep_token, "sep_token");
  pad_id_ = require(config_.pad_token, "pad_token");
  mask_id_ = token_id(config_.mask_token);

  for (const auto* special : {&config_.unk_token, &config_.cls_token, &config_.sep_token,
                              &config_.pad_token, &config_.mask_token})
    added.push_back(*special);
  special_.assign(vocab_.size(), false);
  for (const auto& token : added) {
    const std::int64_t id = token_id(token);
    if (id < 0 || token.empty()) continue;  // e.g. a [MASK] the vocab lacks
    if (special_[static_cast<std::size_t>(id)]) continue;  // listed twice
    special_[static_cast<std::size_t>(id)] = true;
    text_segments::AddedToken entry;
    entry.content = unicode::decode_utf8(token, source + " special token");
    entry.id = id;
    added_.push_back(std::move(entry));
  }
}

WordPieceTokenizer WordPieceTokenizer::from_vocab_file(const fs::path& vocab_txt,
                                                       WordPieceConfig config) {
  std::error_code ec;
  if (fs::is_directory(vocab_txt, ec))
    throw IoError(kComponent, "cannot read '" + vocab_txt.string() + "': it is a folder, not a file",
                  "a BERT model folder holds vocab.txt as a file, one token per line");
  std::ifstream in(vocab_txt, std::ios::binary);
  if (!in)
    throw IoError(kComponent, "cannot open vocabulary file " + vocab_txt.string(),
                  "pass the vocab.txt of a BERT model folder; `make models` fetches all-MiniLM-L6-v2");
  std::vector<std::string> vocab;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    vocab.push_back(std::move(line));
  }
  return WordPieceTokenizer(std::move(vocab), std::move(config), {}, vocab_txt.string());
}

// A function-try-block: a value of an unexpected JSON type deep inside becomes a
// FormatError naming the file rather than a bare nlohmann exception.
WordPieceTokenizer WordPieceTokenizer::from_tokenizer_json(const fs::path& path) try {
  const json root = tokenizer_json::read(path);
  if (!root.is_object()) bad_key(path, "(top level)", "is not a JSON object", "expected a tokenizer.json");
  const std::string hint_model = "expected the tokenizer.json of a BERT-style (WordPiece) fast tokenizer";

  if (!root.contains("model") || !root["model"].is_object())
    bad_key(path, "model", "is missing or not an object", hint_model);
  const json& model = root["model"];
  const std::string type = type_of(model);
  if (type != "WordPiece")
    bad_key(path, "model.type", "is \"" + type + "\", not \"WordPiece\"",
            hint_model + "; BPE or Unigram models need their own tokenizer");
  if (!model.contains("vocab") || !model["vocab"].is_object() || model["vocab"].empty())
    bad_key(path, "model.vocab", "is missing, empty or not an object of token -> id", hint_model);

  WordPieceConfig config;
  if (model.contains("unk_token")) config.unk_token = token_text(model["unk_token"], path, "model.unk_token");
  if (model.contains("continuing_subword_prefix") && model["continuing_subword_prefix"].is_string())
    config.continuing_prefix = model["continuing_subword_prefix"].get<std::string>();
  if (model.contains("max_input_chars_per_word")) {
    if (!model["max_input_chars_per_word"].is_number_unsigned() ||
        model["max_input_chars_per_word"].get<std::uint64_t>() > static_cast<std::uint64_t>(INT32_MAX))  // read as an int
      bad_key(path, "model.max_input_chars_per_word", "is not a positive integer", hint_model);
    config.max_input_chars_per_word = model["max_input_chars_per_word"].get<int>();
  }

  // Normaliser: absent means none at all; anything but BertNormalizer would differ.
  const json normalizer = root.value("normalizer", json());
  if (normalizer.is_null()) {
    config.lowercase = config.strip_accents = config.tokenize_chinese_chars = config.clean_text = false;
  } else if (type_of(normalizer) == "BertNormalizer") {
    config.clean_text = get_bool(normalizer, "clean_text", true, path, "normalizer.");
    config.tokenize_chinese_chars = get_bool(normalizer, "handle_chinese_chars", true, path, "normalizer.");
    config.lowercase = get_bool(normalizer, "lowercase", true, path, "normalizer.");
    config.strip_accents = get_bool(normalizer, "strip_accents", config.lowercase, path, "normalizer.");
  } else {
    bad_key(path, "normalizer.type", "is not \"BertNormalizer\"", hint_model);
  }
  const json pre = root.value("pre_tokenizer", json());
  if (type_of(pre) != "BertPreTokenizer")
    bad_key(path, "pre_tokenizer.type", "is not \"BertPreTokenizer\"", hint_model);

  // [CLS]/[SEP]: the first and last special token of the single-sequence template.
  const json post = root.value("post_processor", json());
  if (post.is_object()) {
    const std::string post_type = type_of(post);
    if (post_type == "TemplateProcessing" && post.contains("single") && post["single"].is_array()) {
      std::vector<std::string> specials;
      for (const auto& piece : post["single"])
        if (piece.contains("SpecialToken")) specials.push_back(piece["SpecialToken"].value("id", ""));
      if (specials.size() >= 2) {
        config.cls_token = specials.front();
        config.sep_token = specials.back();
      }
    } else if (post_type == "BertProcessing" || post_type == "RobertaProcessing") {
      // ["[CLS]", 101]; anything else (an empty array once read past its end) is refused.
      for (const auto& [key, token] : {std::pair{"cls", &config.cls_token}, std::pair{"sep", &config.sep_token}}) {
        if (!post.contains(key)) continue;
        const json& v = post[key];
        if (!v.is_array() || v.size() != 2 || !v[0].is_string())
          bad_key(path, std::string("post_processor.") + key, "is not a [token, id] pair", hint_model);
        *token = v[0].get<std::string>();
      }
    }
  }
  const json padding = root.value("padding", json());
  if (padding.is_object() && padding.contains("pad_token") && padding["pad_token"].is_string())
    config.pad_token = padding["pad_token"].get<std::string>();

  // The vocabulary by id; added tokens may sit past the model's vocabulary.
  std::vector<std::pair<std::string, std::int64_t>> entries;
  for (const auto& [token, id] : model["vocab"].items()) {
    // Below 2^31 (ids are read as int64 and index vectors: 2^63 and up would wrap negative).
    if (!id.is_number_unsigned() || id.get<std::uint64_t>() >= (std::uint64_t{1} << 31))
      bad_key(path, "model.vocab." + token, "is not an id in [0, 2^31)", hint_model);
    entries.emplace_back(token, id.get<std::int64_t>());
  }
  std::vector<std::string> added;
  const json added_tokens = root.value("added_tokens", json::array());
  for (const auto& entry : added_tokens) {
    if (!entry.is_object() || !entry.contains("content") || !entry.contains("id") ||
        !entry["id"].is_number_unsigned())
      bad_key(path, "added_tokens", "has an entry without \"content\" and \"id\"", hint_model);
    if (entry["id"].get<std::uint64_t>() >= (std::uint64_t{1} << 31))
      bad_key(path, "added_tokens", "has an id " + entry["id"].dump() + ", not in [0, 2^31)", hint_model);
    entries.emplace_back(entry["content"].get<std::string>(), entry["id"].get<std::int64_t>());
    added.push_back(entry["content"].get<std::string>());
  }
  std::int64_t max_id = 0;
  for (const auto& entry : entries) max_id = std::max(max_id, entry.second);
  if (max_id >= static_cast<std::int64_t>(entries.size()) * 4 + 1024)
    bad_key(path, "model.vocab", "has ids far beyond its size (max id " + std::to_string(max_id) + ")", hint_model);
  std::vector<std::string> vocab(static_cast<std::size_t>(max_id) + 1);
  for (auto& [token, id] : entries) vocab[static_cast<std::size_t>(id)] = std::move(token);
  return WordPieceTokenizer(std::move(vocab), std::move(config), std::move(added), path.string());
} catch (const json::exception& e) {
  throw FormatError(kComponent, path.string() + ": unexpected structure (" + e.what() + ")",
                    "expected the tokenizer.json of a BERT-style (WordPiece) fast tokenizer");
}

WordPieceTokenizer WordPieceTokenizer::from_folder(const fs::path& folder) {
  const std::string hint = "pass a Hugging Face model folder; `make models` fetches all-MiniLM-L6-v2";
  if (!fs::is_directory(folder)) throw IoError(kComponent, "model folder " + folder.string() + " not found", hint);
  if (fs::exists(folder / "tokenizer.json")) return from_tokenizer_json(folder / "tokenizer.json");
  if (!fs::exists(folder / "vocab.txt"))
    throw IoError(kComponent, folder.string() + " has neither tokenizer.json nor vocab.txt", hint);

  WordPieceConfig config;
  const fs::path config_path = folder / "tokenizer_config.json";
  if (fs::exists(config_path)) {
    const json cfg = tokenizer_json::read(config_path);
    if (!cfg.is_object()) bad_key(config_path, "(top level)", "is not a JSON object", hint);
    config.lowercase = get_bool(cfg, "do_lower_case", true, config_path);
    config.strip_accents = get_bool(cfg, "strip_accents", config.lowercase, config_path);
    config.tokenize_chinese_chars = get_bool(cfg, "tokenize_chinese_chars", true, config_path);
    const std::pair<const char*, std::string*> tokens[] = {
        {"unk_token", &config.unk_token}, {"cls_token", &config.cls_token}, {"sep_token", &config.sep_token},
        {"pad_token", &config.pad_token}, {"mask_token", &config.mask_token}};
    for (const auto& [key, field] : tokens)
      if (cfg.contains(key) && !cfg[key].is_null()) *field = token_text(cfg[key], config_path, key);
  }
  return from_vocab_file(folder / "vocab.txt", std::move(config));
}

void WordPieceTokenizer::run(std::string_view text, std::vector<std::int64_t>* ids,
                             std::vector<std::string>* pieces) const {
  for (const auto& segment : text_segments::split_on_added(unicode::decode_utf8(text), added_)) {
    if (segment.added < 0) {
      run_segment(segment.text, ids, pieces);
      continue;
    }
    const auto& token = added_[static_cast<std::size_t>(segment.added)];
    if (ids) ids->push_back(token.id);
    if (pieces) pieces->push_back(unicode::encode_utf8(token.content));
  }
}

void WordPieceTokenizer::run_segment(std::u32string_view segment, std::vector<std::int64_t>* ids,
                                     std::vector<std::string>* pieces) const {
  // BertNormalizer, in its order: clean, pad CJK, strip accents, lower-case.
  std::u32string text;
  text.reserve(segment.size());
  for (char32_t cp : segment) {
    if (config_.clean_text) {
      if (cp == 0 || cp == 0xFFFD || unicode::is_control(cp)) continue;
      if (unicode::is_whitespace(cp)) cp = U' ';
    }
    if (config_.tokenize_chinese_chars && unicode::is_chinese_char(cp)) {
      text += U' ';
      text += cp;
      text += U' ';
    } else {
      text += cp;
    }
  }
  if (config_.strip_accents) text = unicode::strip_accents(text);
  if (config_.lowercase) text = unicode::lowercase(text);

  // BertPreTokenizer: split on whitespace (dropped) and punctuation (kept, one per word).
  std::u32string word;
  for (char32_t cp : text) {
    const bool space = unicode::is_whitespace(cp);
    if (space || unicode::is_punctuation(cp)) {
      if (!word.empty()) word_pieces(word, ids, pieces);
      word.clear();
      if (!space) word_pieces(std::u32string(1, cp), ids, pieces);
    } else {
      word += cp;
    }
  }
  if (!word.empty()) word_pieces(word, ids, pieces);
}

void WordPieceTokenizer::word_pieces(const std::u32string& word, std::vector<std::int64_t>* ids,
                                     std::vector<std::string>* pieces) const {
  auto unknown = [&] {
    if (ids) ids->push_back(unk_id_);
    if (pieces) pieces->push_back(config_.unk_token);
  };
  if (word.size() > static_cast<std::size_t>(config_.max_input_chars_per_word)) return unknown();

  // Byte offset of every character boundary, so candidates are whole characters.
  std::string utf8;
  std::vector<std::size_t> bounds{0};
  for (char32_t cp : word) {
    unicode::append_utf8(utf8, cp);
    bounds.push_back(utf8.size());
  }
  // Greedy longest-match-first; one unmatched remainder makes the whole word [UNK].
  std::vector<std::int64_t> found;
  std::vector<std::string> found_pieces;
  std::string candidate;
  for (std::size_t start = 0; start < word.size();) {
    std::size_t end = word.size();
    std::int64_t id = -1;
    for (; end > start; --end) {
      candidate.assign(start > 0 ? config_.continuing_prefix : std::string());
      candidate.append(utf8, bounds[start], bounds[end] - bounds[start]);
      if (const auto it = ids_.find(candidate); it != ids_.end()) {
        id = it->second;
        break;
      }
    }
    if (id < 0) return unknown();
    found.push_back(id);
    if (pieces) found_pieces.push_back(candidate);
    start = end;
  }
  if (ids) ids->insert(ids->end(), found.begin(), found.end());
  if (pieces) pieces->insert(pieces->end(), found_pieces.begin(), found_pieces.end());
}

std::vector<std::string> WordPieceTokenizer::tokenize(std::string_view text) const {
  std::vector<std::string> pieces;
  run(text, nullptr, &pieces);
  return pieces;
}

std::vector<std::int64_t> WordPieceTokenizer::encode_tokens(std::string_view text) const {
  std::vector<std::int64_t> ids;
  run(text, &ids, nullptr);
  return ids;
}

Encoding WordPieceTokenizer::encode_words(const std::vector<std::string>& words, std::vector<std::int64_t>& word_starts,
                                          std::size_t max_length) const {
  Encoding out;
  out.ids.push_back(cls_id_);
  word_starts.assign(1, -1);
  for (std::size_t w = 0; w < words.size(); ++w) {
    const std::vector<std::int64_t> pieces = encode_tokens(words[w]);
    if (out.ids.size() + pieces.size() + 1 > max_length) break;  // the word would not fit with [SEP]
    for (std::size_t p = 0; p < pieces.size(); ++p) {
      out.ids.push_back(pieces[p]);
      word_starts.push_back(p == 0 ? static_cast<std::int64_t>(w) : -1);
    }
  }
  out.ids.push_back(sep_id_);
  word_starts.push_back(-1);
  out.token_type_ids.assign(out.ids.size(), 0);
  out.attention_mask.assign(out.ids.size(), 1);
  return out;
}

Encoding WordPieceTokenizer::encode(std::string_view text, std::string_view pair, bool has_pair,
                                    std::size_t max_length) const {
  std::vector<std::int64_t> a = encode_tokens(text), b;
  if (has_pair) b = encode_tokens(pair);
  const std::size_t specials = has_pair ? 3 : 2;
  if (max_length < specials)
    throw ConfigError(kComponent, "max_length " + std::to_string(max_length) + " leaves no room for the " +
                                      std::to_string(specials) + " special tokens",
                      "use a max_length of at least " + std::to_string(specials + 1));
  text_segments::truncate_longest_first(a, has_pair ? &b : nullptr, max_length - specials);

  Encoding out;
  out.ids.reserve(a.size() + b.size() + specials);
  out.ids.push_back(cls_id_);
  out.ids.insert(out.ids.end(), a.begin(), a.end());
  out.ids.push_back(sep_id_);
  out.token_type_ids.assign(out.ids.size(), 0);
  if (has_pair) {
    out.ids.insert(out.ids.end(), b.begin(), b.end());
    out.ids.push_back(sep_id_);
    out.token_type_ids.resize(out.ids.size(), 1);
  }
  out.attention_mask.assign(out.ids.size(), 1);
  return out;
}

BatchEncoding WordPieceTokenizer::encode_batch(const std::vector<std::string>& texts,
                                               const std::vector<std::string>& pairs,
                                               std::size_t max_length) const {
  if (!pairs.empty() && pairs.size() != texts.size())
    throw ConfigError(kComponent, "encode_batch got " + std::to_string(texts.size()) + " texts but " +
                                      std::to_string(pairs.size()) + " pairs",
                      "pass one pair per text, or none");
  std::vector<Encoding> rows;
  BatchEncoding out;
  for (std::size_t i = 0; i < texts.size(); ++i) {
    rows.push_back(pairs.empty() ? encode(texts[i], {}, false, max_length)
                                 : encode(texts[i], pairs[i], true, max_length));
    out.length = std::max(out.length, rows.back().ids.size());
  }
  out.batch = rows.size();
  for (const auto& row : rows) {
    const std::size_t pad = out.length - row.ids.size();
    out.ids.insert(out.ids.end(), row.ids.begin(), row.ids.end());
    out.ids.insert(out.ids.end(), pad, pad_id_);
    out.token_type_ids.insert(out.token_type_ids.end(), row.token_type_ids.begin(), row.token_type_ids.end());
    out.token_type_ids.insert(out.token_type_ids.end(), pad, 0);
    out.attention_mask.insert(out.attention_mask.end(), row.attention_mask.begin(), row.attention_mask.end());
    out.attention_mask.insert(out.attention_mask.end(), pad, 0);
  }
  return out;
}

std::string WordPieceTokenizer::decode(const std::vector<std::int64_t>& ids, bool skip_special) const {
  std::string out;
  bool first = true;
  const std::string& prefix = config_.continuing_prefix;
  for (const std::int64_t id : ids) {
    const std::string& token = id_token(id);
    if (skip_special && special_[static_cast<std::size_t>(id)]) continue;
    std::string piece;
    if (first)
      piece = token;
    else if (token.compare(0, prefix.size(), prefix) == 0)
      piece = token.substr(prefix.size());
    else
      piece = " " + token;
    out += clean_up(std::move(piece), true);
    first = false;
  }
  return clean_up(std::move(out), false);
}

std::int64_t WordPieceTokenizer::token_id(std::string_view token) const {
  const auto it = ids_.find(std::string(token));
  return it == ids_.end() ? -1 : it->second;
}

const std::string& WordPieceTokenizer::id_token(std::int64_t id) const {
  if (id < 0 || static_cast<std::size_t>(id) >= vocab_.size())
    throw ConfigError(kComponent,
                      "token id " + std::to_string(id) + " is outside the vocabulary (size " +
                          std::to_string(vocab_.size()) + ")",
                      "the ids come from another tokenizer or were corrupted");
  return vocab_[static_cast<std::size_t>(id)];
}

}  // namespace graft::text
