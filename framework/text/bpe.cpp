#include "text/bpe.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <queue>

#include "graft/error.h"
#include "text/bpe_pipeline.h"
#include "text/tokenizer_json.h"
#include "text/unicode.h"

namespace graft::text {
namespace fs = std::filesystem;
using nlohmann::json;
namespace tj = tokenizer_json;

namespace {

constexpr const char* kComponent = "tokenizer";
const std::string kHint = "expected the tokenizer.json of a BPE fast tokenizer (RoBERTa, GPT-2, LLaMA)";

std::uint64_t pair_key(std::int64_t left, std::int64_t right) {
  return (static_cast<std::uint64_t>(left) << 32) | static_cast<std::uint32_t>(right);
}

}  // namespace

BpeTokenizer::BpeTokenizer() = default;
BpeTokenizer::BpeTokenizer(BpeTokenizer&&) noexcept = default;
BpeTokenizer::~BpeTokenizer() = default;

bool BpeTokenizer::is_bpe(const fs::path& path) {
  const json root = tj::read(path);
  return root.is_object() && root.contains("model") && tj::type_of(root["model"]) == "BPE";
}

// A function-try-block: a value of an unexpected JSON type deep inside becomes a
// FormatError naming the file rather than a bare nlohmann exception.
BpeTokenizer BpeTokenizer::from_tokenizer_json(const fs::path& path) { return from_json(tj::read(path), path); }

BpeTokenizer BpeTokenizer::from_json(const json& root, const fs::path& path) try {
  if (!root.is_object()) tj::bad_key(path, "(top level)", "is not a JSON object", kHint);
  if (!root.contains("model") || !root["model"].is_object()) tj::bad_key(path, "model", "is missing or not an object", kHint);
  const json& model = root["model"];
  const std::string type = tj::type_of(model);
  if (type != "BPE")
    tj::bad_key(path, "model.type", "is \"" + type + "\", not \"BPE\"",
                type == "WordPiece" ? "a WordPiece tokenizer.json is read by the BERT tokenizer" : kHint);
  if (!model.contains("vocab") || !model["vocab"].is_object() || model["vocab"].empty())
    tj::bad_key(path, "model.vocab", "is missing, empty or not an object of token -> id", kHint);
  if (!model.contains("merges") || !model["merges"].is_array())
    tj::bad_key(path, "model.merges", "is missing or not an array", kHint);
  if (model.contains("dropout") && !model["dropout"].is_null())
    tj::bad_key(path, "model.dropout", "is set", "BPE dropout is a training-time augmentation; set it to null");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (model.contains(key) && !model[key].is_null() && !(model[key].is_string() && model[key].get<std::string>().empty()))
      tj::bad_key(path, std::string("model.") + key, "is set", "graft's BPE supports neither affix (GPT-2, RoBERTa and LLaMA use none)");

  BpeTokenizer tok;
  tok.source_ = path.string();
  std::vector<std::pair<std::string, std::int64_t>> entries;
  for (const auto& [token, id] : model["vocab"].items()) {
    // Below 2^31 (ids are read as int64 and index vectors: 2^63 and up would wrap negative).
    if (!id.is_number_unsigned() || id.get<std::uint64_t>() >= (std::uint64_t{1} << 31))
      tj::bad_key(path, "model.vocab." + token, "is not an id in [0, 2^31)", kHint);
    entries.emplace_back(token, id.get<std::int64_t>());
  }
  const json added_tokens = root.value("added_tokens", json::array());
  if (!added_tokens.is_array()) tj::bad_key(path, "added_tokens", "is not an array", kHint);
  for (const auto& entry : added_tokens) {
    if (!entry.is_object() || !entry.contains("content") || !entry["content"].is_string() || !entry.contains("id") ||
        !entry["id"].is_number_unsigned())
      tj::bad_key(path, "added_tokens", "has an entry without a string \"content\" and an \"id\"", kHint);
    if (entry["id"].get<std::uint64_t>() >= (std::uint64_t{1} << 31))
      tj::bad_key(path, "added_tokens", "has an id " + entry["id"].dump() + ", not in [0, 2^31)", kHint);
    text_segments::AddedToken added;
    added.content = unicode::decode_utf8(entry["content"].get<std::string>(), path.string() + " added token");
    added.id = entry["id"].get<std::int64_t>();
    added.lstrip = tj::get_bool(entry, "lstrip", false, path, "added_tokens.");
    added.rstrip = tj::get_bool(entry, "rstrip", false, path, "added_tokens.");
    added.single_word = tj::get_bool(entry, "single_word", false, path, "added_tokens.");
    added.special = tj::get_bool(entry, "special", false, path, "added_tokens.");
    entries.emplace_back(entry["content"].get<std::string>(), added.id);
    tok.added_.push_back(std::move(added));
  }
  std::int64_t max_id = 0;
  for (const auto& entry : entries) max_id = std::max(max_id, entry.second);
  if (max_id >= static_cast<std::int64_t>(entries.size()) * 4 + 1024 || max_id >= (std::int64_t{1} << 31))
    tj::bad_key(path, "model.vocab", "has ids far beyond its size (max id " + std::to_string(max_id) + ")", kHint);
  tok.vocab_.resize(static_cast<std::size_t>(max_id) + 1);
  tok.ids_.reserve(entries.size());
  for (auto& [token, id] : entries) {
    tok.ids_.insert_or_assign(token, id);
    tok.vocab_[static_cast<std::size_t>(id)] = std::move(token);
  }
  tok.special_.assign(tok.vocab_.size(), false);
  for (const auto& added : tok.added_) tok.special_[static_cast<std::size_t>(added.id)] = added.special;

  // Merges: "left right" strings, or [left, right] arrays (tokenizers >= 0.20).
  const json& merges = model["merges"];
  tok.merges_.reserve(merges.size());
  for (std::size_t rank = 0; rank < merges.size(); ++rank) {
    const json& m = merges[rank];
    std::string left, right;
    if (m.is_string()) {
      const std::string text = m.get<std::string>();
      const auto space = text.find(' ');
      if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos)
        tj::bad_key(path, "model.merges[" + std::to_string(rank) + "]", "is not \"left right\"", kHint);
      left = text.substr(0, space);
      right = text.substr(space + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      left = m[0].get<std::string>();
      right = m[1].get<std::string>();
    } else {
      tj::bad_key(path, "model.merges[" + std::to_string(rank) + "]", "is neither \"left right\" nor [left, right]", kHint);
    }
    const std::int64_t l = tok.token_id(left), r = tok.token_id(right), merged = tok.token_id(left + right);
    if (l < 0 || r < 0 || merged < 0)
      tj::bad_key(path, "model.merges[" + std::to_string(rank) + "]",
                  "merges \"" + left + "\" + \"" + right + "\", which are not all in the vocabulary",
                  "the merges and the vocabulary come from different tokenizers");
    tok.merges_.try_emplace(pair_key(l, r), Merge{static_cast<std::int32_t>(rank), merged});
  }

  if (model.contains("unk_token") && !model["unk_token"].is_null()) {
    const std::string unk = tj::token_text(model["unk_token"], path, "model.unk_token");
    tok.unk_id_ = tok.token_id(unk);
    if (tok.unk_id_ < 0) tj::bad_key(path, "model.unk_token", "\"" + unk + "\" is not in the vocabulary", kHint);
  }
  tok.byte_fallback_ = tj::get_bool(model, "byte_fallback", false, path, "model.");
  tok.fuse_unk_ = tj::get_bool(model, "fuse_unk", false, path, "model.");
  tok.ignore_merges_ = tj::get_bool(model, "ignore_merges", false, path, "model.");
  tok.pipeline_ = std::make_unique<Pipeline>(bpe_pipeline::parse(root, path));
  for (const auto* items : {&tok.pipeline_->single, &tok.pipeline_->pair})
    for (const auto& item : *items)
      for (const std::int64_t id : item.ids)
        if (id < 0 || static_cast<std::size_t>(id) >= tok.vocab_.size())
          tj::bad_key(path, "post_processor", "names token id " + std::to_string(id) + ", outside the vocabulary", kHint);

  // Padding: the file's own pad token, else <pad>, else <unk>, else id 0 (LLaMA has no
  // pad token; padded positions are masked out, so any valid id serves).
  const json padding = root.value("padding", json());
  if (padding.is_object() && padding.contains("pad_id") && padding["pad_id"].is_number_unsigned())
    tok.pad_id_ = padding["pad_id"].get<std::int64_t>();
  else if (tok.token_id("<pad>") >= 0)
    tok.pad_id_ = tok.token_id("<pad>");
  else if (tok.unk_id_ >= 0)
    tok.pad_id_ = tok.unk_id_;
  if (tok.pad_id_ < 0 || static_cast<std::size_t>(tok.pad_id_) >= tok.vocab_.size())
    tj::bad_key(path, "padding.pad_id", std::to_string(tok.pad_id_) + " is outside the vocabulary", kHint);
  return tok;
} catch (const json::exception& e) {
  throw FormatError(kComponent, path.string() + ": unexpected structure (" + e.what() + ")", kHint);
}

BpeTokenizer BpeTokenizer::from_vocab_and_merges(const fs::path& folder) {
  const fs::path vocab_path = folder / "vocab.json", merges_path = folder / "merges.txt";
  const json vocab = tj::read(vocab_path);
  if (!vocab.is_object() || vocab.empty())
    tj::bad_key(vocab_path, "(top level)", "is not an object of token -> id", "expected a RoBERTa/GPT-2 vocab.json");
  std::error_code ec;
  if (fs::is_directory(merges_path, ec))
    throw IoError(kComponent, "cannot read '" + merges_path.string() + "': it is a folder, not a file",
                  "vocab.json needs the merges.txt file beside it");
  std::ifstream in(merges_path, std::ios::binary);
  if (!in) throw IoError(kComponent, "cannot open " + merges_path.string(), "vocab.json needs the merges.txt beside it");
  json merges = json::array();
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.rfind("#version", 0) == 0) continue;
    merges.push_back(line);
  }
  json config = json::object();
  if (fs::exists(folder / "tokenizer_config.json")) config = tj::read(folder / "tokenizer_config.json");
  auto name = [&](const char* key, const char* fallback) {
    return config.contains(key) && !config[key].is_null() ? tj::token_text(config[key], folder / "tokenizer_config.json", key)
                                                          : std::string(fallback);
  };
  const std::string bos = name("bos_token", "<s>"), eos = name("eos_token", "</s>"), sep = name("sep_token", "</s>"),
                    cls = name("cls_token", "<s>"), unk = name("unk_token", "<unk>"), pad = name("pad_token", "<pad>"),
                    mask = name("mask_token", "<mask>");
  const bool prefix = tj::get_bool(config, "add_prefix_space", false, folder / "tokenizer_config.json");
  // Special tokens the vocabulary lacks are added after it, in transformers' order.
  std::int64_t next_id = 0;
  for (const auto& [token, id] : vocab.items())
    if (id.is_number_unsigned() && id.get<std::uint64_t>() < (std::uint64_t{1} << 31))  // larger ids: from_json refuses them
      next_id = std::max(next_id, id.get<std::int64_t>() + 1);
  std::map<std::string, std::int64_t> special_ids;
  json added = json::array();
  for (const auto& token : {bos, eos, unk, sep, pad, cls, mask}) {
    if (special_ids.count(token)) continue;
    if (vocab.contains(token) && !vocab[token].is_number_unsigned())
      tj::bad_key(vocab_path, token, "is not a non-negative id", "expected a RoBERTa/GPT-2 vocab.json of token -> id");
    const std::int64_t id = vocab.contains(token) ? vocab[token].get<std::int64_t>() : next_id++;
    special_ids[token] = id;
    added.push_back({{"id", static_cast<std::uint64_t>(id)}, {"content", token}, {"lstrip", token == mask}, {"special", true}});
  }
  const json spec = {
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", prefix}, {"use_regex", true}}},
      {"post_processor", {{"type", "RobertaProcessing"}, {"sep", {sep, static_cast<std::uint64_t>(special_ids.at(sep))}}, {"cls", {cls, static_cast<std::uint64_t>(special_ids.at(cls))}}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}, {"unk_token", unk}}}};
  return from_json(spec, vocab_path);
}

std::string BpeTokenizer::kind() const {
  if (pipeline_->pre == Pipeline::Pre::ByteLevel) return "byte-level BPE";
  return std::string("SentencePiece-style BPE") + (byte_fallback_ ? " (byte fallback)" : "");
}

std::int64_t BpeTokenizer::token_id(std::string_view token) const {
  const auto it = ids_.find(std::string(token));
  return it == ids_.end() ? -1 : it->second;
}

void BpeTokenizer::bpe_word(const std::string& word, std::vector<std::int64_t>& ids) const {
  if (ignore_merges_)
    if (const std::int64_t id = token_id(word); id >= 0) return ids.push_back(id);

  // The word's characters as symbols (tokenizers' BPE::merge_word): unknown characters
  // become <0xXX> byte tokens (byte_fallback) or <unk>, consecutive ones fused (fuse_unk).
  std::vector<std::int64_t> symbols;
  bool pending_unk = false;
  const std::u32string chars = unicode::decode_utf8(word);
  std::string ch;
  for (const char32_t c : chars) {
    ch.clear();
    unicode::append_utf8(ch, c);
    if (const std::int64_t id = token_id(ch); id >= 0) {
      if (pending_unk) symbols.push_back(unk_id_);
      pending_unk = false;
      symbols.push_back(id);
      continue;
    }
    if (byte_fallback_) {
      std::vector<std::int64_t> bytes;
      for (const unsigned char b : ch) {
        static constexpr char kHex[] = "0123456789ABCDEF";
        const std::int64_t id = token_id(std::string("<0x") + kHex[b >> 4] + kHex[b & 15] + ">");
        if (id < 0) break;
        bytes.push_back(id);
      }
      if (bytes.size() == ch.size()) {
        symbols.insert(symbols.end(), bytes.begin(), bytes.end());
        continue;
      }
    }
    if (unk_id_ < 0) continue;  // no <unk>: the character is dropped, as tokenizers does
    if (pending_unk && !fuse_unk_) symbols.push_back(unk_id_);
    pending_unk = true;
  }
  if (pending_unk) symbols.push_back(unk_id_);

  // Merge the lowest-ranked adjacent pair, leftmost first, until none is in the table.
  const auto n = static_cast<int>(symbols.size());
  std::vector<int> prev(static_cast<std::size_t>(n)), next(static_cast<std::size_t>(n));
  std::vector<bool> alive(static_cast<std::size_t>(n), true);
  for (int i = 0; i < n; ++i) {
    prev[static_cast<std::size_t>(i)] = i - 1;
    next[static_cast<std::size_t>(i)] = i + 1 < n ? i + 1 : -1;
  }
  struct Candidate {
    std::int32_t rank;
    int pos;
    std::int64_t merged;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  auto consider = [&](int left) {
    const int right = next[static_cast<std::size_t>(left)];
    if (right < 0) return;
    const auto it = merges_.find(pair_key(symbols[static_cast<std::size_t>(left)], symbols[static_cast<std::size_t>(right)]));
    if (it != merges_.end()) queue.push({it->second.rank, left, it->second.merged});
  };
  for (int i = 0; i + 1 < n; ++i) consider(i);
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    const auto pos = static_cast<std::size_t>(top.pos);
    if (!alive[pos] || next[pos] < 0) continue;
    const auto right = static_cast<std::size_t>(next[pos]);
    const auto it = merges_.find(pair_key(symbols[pos], symbols[right]));
    if (it == merges_.end() || it->second.merged != top.merged) continue;  // stale entry
    symbols[pos] = top.merged;
    alive[right] = false;
    next[pos] = next[right];
    if (next[right] >= 0) prev[static_cast<std::size_t>(next[right])] = top.pos;
    if (prev[pos] >= 0) consider(prev[pos]);
    consider(top.pos);
  }
  for (int i = n > 0 ? 0 : -1; i >= 0; i = next[static_cast<std::size_t>(i)]) ids.push_back(symbols[static_cast<std::size_t>(i)]);
}

void BpeTokenizer::run_segment(std::u32string_view text, bool first, std::vector<std::int64_t>& ids) const {
  const std::string normalized = bpe_pipeline::normalize(*pipeline_, unicode::encode_utf8(text));
  for (const auto& word : bpe_pipeline::pre_tokenize(*pipeline_, normalized, first)) bpe_word(word, ids);
}

void BpeTokenizer::run(std::string_view text, std::vector<std::int64_t>& ids) const {
  const auto segments = text_segments::split_on_added(unicode::decode_utf8(text), added_);
  for (std::size_t i = 0; i < segments.size(); ++i) {
    if (segments[i].added >= 0) ids.push_back(added_[static_cast<std::size_t>(segments[i].added)].id);
    else run_segment(segments[i].text, i == 0, ids);
  }
}

std::vector<std::int64_t> BpeTokenizer::encode_tokens(std::string_view text) const {
  std::vector<std::int64_t> ids;
  run(text, ids);
  return ids;
}

std::vector<std::string> BpeTokenizer::tokenize(std::string_view text) const {
  std::vector<std::string> pieces;
  for (const std::int64_t id : encode_tokens(text)) pieces.push_back(vocab_[static_cast<std::size_t>(id)]);
  return pieces;
}

Encoding BpeTokenizer::post_process(std::vector<std::int64_t> a, std::vector<std::int64_t>* b, std::size_t max_length) const {
  const std::size_t specials = pipeline_->specials(b != nullptr);
  if (max_length <= specials)
    throw ConfigError(kComponent,
                      "max_length " + std::to_string(max_length) + " leaves no room beside the " + std::to_string(specials) +
                          " special tokens",
                      "use a max_length of at least " + std::to_string(specials + 1));
  text_segments::truncate_longest_first(a, b, max_length - specials);
  Encoding out;
  for (const auto& item : b ? pipeline_->pair : pipeline_->single) {
    const std::vector<std::int64_t>& ids = item.special ? item.ids : item.sequence == 1 && b ? *b : a;
    out.ids.insert(out.ids.end(), ids.begin(), ids.end());
    out.token_type_ids.insert(out.token_type_ids.end(), ids.size(), item.type_id);
  }
  out.attention_mask.assign(out.ids.size(), 1);
  return out;
}

Encoding BpeTokenizer::encode(std::string_view text, std::string_view pair, bool has_pair, std::size_t max_length) const {
  std::vector<std::int64_t> b;
  if (has_pair) b = encode_tokens(pair);
  return post_process(encode_tokens(text), has_pair ? &b : nullptr, max_length);
}

Encoding BpeTokenizer::encode_words(const std::vector<std::string>& words, std::vector<std::int64_t>& word_starts,
                                    std::size_t max_length) const {
  const std::size_t specials = pipeline_->specials(false);
  std::vector<std::int64_t> ids, starts;
  for (std::size_t w = 0; w < words.size(); ++w) {
    const std::vector<std::int64_t> pieces = encode_tokens(words[w]);
    if (ids.size() + pieces.size() + specials > max_length) break;  // the word would not fit
    for (std::size_t p = 0; p < pieces.size(); ++p) starts.push_back(p == 0 ? static_cast<std::int64_t>(w) : -1);
    ids.insert(ids.end(), pieces.begin(), pieces.end());
  }
  Encoding out = post_process(ids, nullptr, std::max(max_length, specials + 1));
  word_starts.clear();
  std::size_t next = 0;
  for (const auto& item : pipeline_->single) {
    if (item.special) word_starts.insert(word_starts.end(), item.ids.size(), -1);
    else {
      word_starts.insert(word_starts.end(), starts.begin() + static_cast<std::ptrdiff_t>(next), starts.end());
      next = starts.size();
    }
  }
  return out;
}

std::string BpeTokenizer::decode(const std::vector<std::int64_t>& ids, bool skip_special) const {
  std::vector<std::string> tokens;
  for (const std::int64_t id : ids) {
    if (id < 0 || static_cast<std::size_t>(id) >= vocab_.size())
      throw ConfigError(kComponent,
                        "token id " + std::to_string(id) + " is outside the vocabulary of " + source_ + " (size " +
                            std::to_string(vocab_.size()) + ")",
                        "the ids come from another tokenizer or were corrupted");
    if (skip_special && special_[static_cast<std::size_t>(id)]) continue;
    tokens.push_back(vocab_[static_cast<std::size_t>(id)]);
  }
  return bpe_pipeline::decode(*pipeline_, std::move(tokens));
}

}  // namespace graft::text
