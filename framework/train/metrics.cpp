#include "train/metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <tuple>

namespace graft::train {

double accuracy(const std::vector<std::int64_t>& predicted, const std::vector<std::int64_t>& gold) {
  if (gold.empty()) return 0;
  std::size_t right = 0;
  for (std::size_t i = 0; i < gold.size(); ++i) right += predicted[i] == gold[i];
  return static_cast<double>(right) / static_cast<double>(gold.size());
}

double f1_binary(const std::vector<std::int64_t>& predicted, const std::vector<std::int64_t>& gold) {
  double tp = 0, fp = 0, fn = 0;
  for (std::size_t i = 0; i < gold.size(); ++i) {
    tp += predicted[i] == 1 && gold[i] == 1;
    fp += predicted[i] == 1 && gold[i] != 1;
    fn += predicted[i] != 1 && gold[i] == 1;
  }
  return tp == 0 ? 0 : 2 * tp / (2 * tp + fp + fn);
}

double matthews(const std::vector<std::int64_t>& predicted, const std::vector<std::int64_t>& gold) {
  double tp = 0, tn = 0, fp = 0, fn = 0;
  for (std::size_t i = 0; i < gold.size(); ++i) {
    const bool p = predicted[i] == 1, g = gold[i] == 1;
    tp += p && g, tn += !p && !g, fp += p && !g, fn += !p && g;
  }
  const double denominator = std::sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn));
  return denominator == 0 ? 0 : (tp * tn - fp * fn) / denominator;
}

double pearson(const std::vector<double>& x, const std::vector<double>& y) {
  const double n = static_cast<double>(x.size());
  if (x.size() < 2) return 0;
  const double mx = std::accumulate(x.begin(), x.end(), 0.0) / n, my = std::accumulate(y.begin(), y.end(), 0.0) / n;
  double sxy = 0, sxx = 0, syy = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
  }
  return sxx == 0 || syy == 0 ? 0 : sxy / std::sqrt(sxx * syy);
}

namespace {

std::vector<double> ranks(const std::vector<double>& v) {
  std::vector<std::size_t> order(v.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](auto a, auto b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (std::size_t i = 0; i < order.size();) {
    std::size_t j = i;
    while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
    const double average = (static_cast<double>(i) + static_cast<double>(j)) / 2.0 + 1.0;
    for (std::size_t k = i; k <= j; ++k) r[order[k]] = average;
    i = j + 1;
  }
  return r;
}

// (type, start, end) of every entity in an IOB1 or IOB2 sequence: an entity starts at
// B-X, or at I-X after a tag of another type or O (IOB1).
std::vector<std::tuple<std::string, std::size_t, std::size_t>> entities(const std::vector<std::string>& tags) {
  std::vector<std::tuple<std::string, std::size_t, std::size_t>> out;
  std::string type;
  std::size_t start = 0;
  auto close = [&](std::size_t end) {
    if (!type.empty()) out.emplace_back(type, start, end);
    type.clear();
  };
  for (std::size_t i = 0; i < tags.size(); ++i) {
    const std::string& t = tags[i];
    if (t == "O" || t.size() < 3) {
      close(i);
      continue;
    }
    const std::string kind = t.substr(2);
    if (t[0] == 'B' || kind != type) {
      close(i);
      type = kind;
      start = i;
    }
  }
  close(tags.size());
  return out;
}

}  // namespace

double spearman(const std::vector<double>& x, const std::vector<double>& y) { return pearson(ranks(x), ranks(y)); }

double entity_f1(const std::vector<std::vector<std::string>>& predicted, const std::vector<std::vector<std::string>>& gold) {
  double found = 0, expected = 0, correct = 0;
  for (std::size_t s = 0; s < gold.size(); ++s) {
    const auto p = entities(predicted[s]), g = entities(gold[s]);
    found += static_cast<double>(p.size());
    expected += static_cast<double>(g.size());
    for (const auto& e : p) correct += std::find(g.begin(), g.end(), e) != g.end();
  }
  const double precision = found ? correct / found : 0, recall = expected ? correct / expected : 0;
  return precision + recall == 0 ? 0 : 2 * precision * recall / (precision + recall);
}

double perplexity(double mean_token_loss) { return std::exp(mean_token_loss); }

}  // namespace graft::train
