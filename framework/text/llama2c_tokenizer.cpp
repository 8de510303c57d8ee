#include "text/llama2c_tokenizer.h"

#include <fmt/format.h>

#include <cstring>
#include <fstream>

#include "graft/error.h"

namespace graft::text {

Llama2cTokenizer Llama2cTokenizer::load(const std::filesystem::path& path, std::int64_t vocab_size) {
  std::ifstream in(path, std::ios::binary);
  const std::string file = path.string();
  if (!in) throw IoError("tokenizer", fmt::format("cannot read '{}'", file), "pass the tokenizer .bin of this model");
  auto fail = [&](const std::string& what) -> void {
    throw FormatError("tokenizer", fmt::format("'{}': {}", file, what),
                      "the file is truncated or is not a llama2.c tokenizer for this model's vocabulary");
  };
  std::int32_t max_len = 0;
  if (!in.read(reinterpret_cast<char*>(&max_len), 4) || max_len <= 0 || max_len > 4096)
    fail("bad max_token_length header");
  Llama2cTokenizer tok;
  tok.pieces_.reserve(static_cast<std::size_t>(vocab_size));
  for (std::int64_t i = 0; i < vocab_size; ++i) {
    float score = 0;
    std::int32_t len = 0;
    if (!in.read(reinterpret_cast<char*>(&score), 4) || !in.read(reinterpret_cast<char*>(&len), 4))
      fail(fmt::format("ends at token {} of {}", i, vocab_size));
    if (len < 0 || len > max_len) fail(fmt::format("token {} has length {} (max {})", i, len, max_len));
    std::string piece(static_cast<std::size_t>(len), '\0');
    if (!in.read(piece.data(), len)) fail(fmt::format("ends inside token {}", i));
    tok.ids_.emplace(piece, i);  // first occurrence wins, as llama2.c's sorted lookup does
    tok.pieces_.push_back(std::move(piece));
    tok.scores_.push_back(score);
  }
  if (in.peek() != std::char_traits<char>::eof())
    fail(fmt::format("has bytes after the {} tokens the model expects", vocab_size));
  return tok;
}

std::vector<std::int64_t> Llama2cTokenizer::encode_ids(std::string_view text, bool bos, bool eos) const {
  std::vector<std::int64_t> tokens;
  if (bos) tokens.push_back(bos_id());
  if (!text.empty()) {
    auto space = ids_.find(" ");
    if (space != ids_.end()) tokens.push_back(space->second);
  }
  // Whole code points first; the ones the vocabulary lacks fall back to bytes (id = byte + 3).
  for (std::size_t i = 0; i < text.size();) {
    std::size_t len = 1;
    while (i + len < text.size() && len < 4 && (static_cast<unsigned char>(text[i + len]) & 0xC0) == 0x80) ++len;
    auto found = ids_.find(std::string(text.substr(i, len)));
    if (found != ids_.end()) {
      tokens.push_back(found->second);
    } else {
      for (std::size_t b = 0; b < len; ++b) tokens.push_back(static_cast<unsigned char>(text[i + b]) + 3);
    }
    i += len;
  }
  // Merge the best-scoring adjacent pair until no pair is in the vocabulary.
  const std::size_t first = bos ? 1 : 0;
  while (true) {
    float best = -1e10f;
    std::int64_t best_id = -1;
    std::size_t best_at = 0;
    for (std::size_t i = first; i + 1 < tokens.size(); ++i) {
      auto found = ids_.find(pieces_[tokens[i]] + pieces_[tokens[i + 1]]);
      if (found != ids_.end() && scores_[found->second] > best) {
        best = scores_[found->second];
        best_id = found->second;
        best_at = i;
      }
    }
    if (best_id < 0) break;
    tokens[best_at] = best_id;
    tokens.erase(tokens.begin() + static_cast<std::ptrdiff_t>(best_at) + 1);
  }
  if (eos) tokens.push_back(eos_id());
  return tokens;
}

std::string Llama2cTokenizer::decode(std::int64_t previous, std::int64_t token) const {
  if (token < 0 || token >= static_cast<std::int64_t>(pieces_.size()))
    throw FormatError("tokenizer", fmt::format("token id {} is outside the vocabulary of {}", token, pieces_.size()));
  std::string piece = pieces_[token];
  if (previous == bos_id() && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
  unsigned int byte = 0;
  if (piece.size() == 6 && std::sscanf(piece.c_str(), "<0x%02X>", &byte) == 1) return std::string(1, static_cast<char>(byte));
  return piece;
}

Encoding Llama2cTokenizer::encode(std::string_view text, std::string_view pair, bool has_pair, std::size_t max_length) const {
  Encoding e;
  e.ids = has_pair ? encode_ids(std::string(text) + " " + std::string(pair), true, false) : encode_ids(text, true, false);
  if (e.ids.size() > max_length) e.ids.resize(max_length);
  e.token_type_ids.assign(e.ids.size(), 0);
  e.attention_mask.assign(e.ids.size(), 1);
  return e;
}

std::string Llama2cTokenizer::decode(const std::vector<std::int64_t>& ids) const {
  std::string out;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] == bos_id() || ids[i] == eos_id()) continue;
    out += decode(i ? ids[i - 1] : bos_id(), ids[i]);
  }
  return out;
}

}  // namespace graft::text
