#include "data/batching.h"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>
#include <random>

#include "graft/error.h"

namespace graft::data {

// Sequence lengths are rounded up to a multiple of this (see text::make_batch).
constexpr std::size_t kPadMultiple = 16;
// Rows are sorted by length within windows of this many batches before batching.
constexpr std::size_t kGroupBatches = 32;

namespace {

std::size_t rough_length(const Example& ex) {
  std::size_t chars = ex.text.size() + ex.text_pair.size();
  for (const auto& w : ex.words) chars += w.size() + 1;
  return chars;
}

// A shuffled order in which each batch holds rows of similar length (as Hugging Face's
// group_by_length): shuffle, sort windows of kGroupBatches batches by length, cut into
// batches, shuffle the batches. Less padding, the same randomness across epochs.
std::vector<std::size_t> length_grouped_order(const Dataset& data, std::uint64_t seed, std::size_t batch_size) {
  std::vector<std::size_t> order(data.examples.size());
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(order.begin(), order.end(), rng);
  const std::size_t window = batch_size * kGroupBatches;
  for (std::size_t start = 0; start < order.size(); start += window) {
    const auto end = order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), start + window));
    std::stable_sort(order.begin() + static_cast<std::ptrdiff_t>(start), end, [&](std::size_t a, std::size_t b) {
      return rough_length(data.examples[a]) > rough_length(data.examples[b]);
    });
  }
  std::vector<std::vector<std::size_t>> batches;
  for (std::size_t start = 0; start < order.size(); start += batch_size)
    batches.emplace_back(order.begin() + static_cast<std::ptrdiff_t>(start),
                         order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), start + batch_size)));
  std::shuffle(batches.begin(), batches.end(), rng);
  std::vector<std::size_t> out;
  for (const auto& b : batches) out.insert(out.end(), b.begin(), b.end());
  return out;
}

}  // namespace

std::vector<LabeledBatch> make_batches(const Dataset& data, const text::Tokenizer& tokenizer, std::size_t batch_size,
                                       std::size_t max_length, bool shuffle, std::uint64_t seed) {
  if (batch_size == 0) throw ConfigError("data", "batch size must be at least 1");
  std::vector<std::size_t> order(data.examples.size());
  std::iota(order.begin(), order.end(), 0);
  if (shuffle) order = length_grouped_order(data, seed, batch_size);
  std::vector<LabeledBatch> out;
  for (std::size_t start = 0; start < order.size(); start += batch_size) {
    const std::size_t end = std::min(order.size(), start + batch_size);
    std::vector<text::Encoding> encodings;
    std::vector<std::int64_t> class_labels;
    std::vector<float> targets;
    std::vector<std::vector<std::int64_t>> piece_labels;  // token classification
    LabeledBatch lb;
    for (std::size_t i = start; i < end; ++i) {
      const Example& ex = data.examples[order[i]];
      if (data.kind == TaskKind::token_classification) {
        // Each word's label goes on its first piece; other pieces are ignored (-100).
        std::vector<std::int64_t> starts;
        encodings.push_back(tokenizer.encode_words(ex.words, starts, max_length));
        auto& labels = piece_labels.emplace_back(starts.size(), -100);
        for (std::size_t t = 0; t < starts.size(); ++t)
          if (starts[t] >= 0) labels[t] = ex.word_labels[static_cast<std::size_t>(starts[t])];
      } else {
        encodings.push_back(tokenizer.encode(ex.text, ex.text_pair, ex.has_pair, max_length));
      }
      lb.tokens += encodings.back().ids.size();
      // A regression target (any finite f32) is no class index: casting it would be UB.
      class_labels.push_back(data.kind == TaskKind::regression ? 0 : static_cast<std::int64_t>(ex.label));
      targets.push_back(static_cast<float>(ex.label));
    }
    lb.batch = text::make_batch(encodings, tokenizer.pad_id(), kPadMultiple, max_length);
    const auto B = static_cast<std::int64_t>(encodings.size());
    switch (data.kind) {
      case TaskKind::classification: lb.labels = Tensor::from_ints(class_labels, {B}); break;
      case TaskKind::regression: lb.labels = Tensor::from_floats(targets, {B}); break;
      case TaskKind::causal_lm: {
        std::vector<std::int64_t> ids = lb.batch.input_ids.to_ints();
        const std::vector<std::int64_t> mask = lb.batch.attention_mask.to_ints();
        for (std::size_t i = 0; i < ids.size(); ++i)
          if (mask[i] == 0) ids[i] = -100;
        lb.labels = Tensor::from_ints(ids, lb.batch.input_ids.shape());
        break;
      }
      case TaskKind::token_classification: {
        const std::int64_t T = lb.batch.input_ids.dim(1);
        std::vector<std::int64_t> labels(static_cast<std::size_t>(B * T), -100);
        for (std::int64_t r = 0; r < B; ++r)
          std::copy(piece_labels[r].begin(), piece_labels[r].end(), labels.begin() + r * T);
        lb.labels = Tensor::from_ints(labels, {B, T});
        break;
      }
    }
    out.push_back(std::move(lb));
  }
  return out;
}

}  // namespace graft::data
