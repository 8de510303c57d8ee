// Reference fixtures written by the scripts in tests/golden: tensors are stored as
// {"dtype", "shape", "data"} (row-major), compared with |got − want| <= abs + rel·|want|.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "graft/tensor.h"

namespace graft::testing {

using nlohmann::json;

inline json load_fixture(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    ADD_FAILURE() << "missing fixture " << path << " (regenerate with the scripts in tests/golden)";
    return json();
  }
  return json::parse(in);
}

inline DType dtype_of(const std::string& name) {
  if (name == "f32") return DType::f32;
  if (name == "bf16") return DType::bf16;
  if (name == "i64") return DType::i64;
  throw std::runtime_error("fixture dtype " + name);
}

inline Tensor tensor_of(const json& j) {
  const Shape shape = j.at("shape").get<Shape>();
  const DType dtype = dtype_of(j.at("dtype"));
  if (dtype == DType::i64) return Tensor::from_ints(j.at("data").get<std::vector<std::int64_t>>(), shape);
  return Tensor::from_floats(j.at("data").get<std::vector<float>>(), shape, dtype);
}

struct Tolerance {
  double abs, rel;
};
inline Tolerance tol_of(const json& j) { return {j.at("abs").get<double>(), j.at("rel").get<double>()}; }

// Compares elementwise; reports the first few violations and the largest deviation.
// Returns the largest |got - want| so callers can print what was measured.
inline double expect_close(const std::string& what, const Tensor& got, const json& want, Tolerance tol) {
  EXPECT_EQ(got.shape(), want.at("shape").get<Shape>()) << what << ": shape";
  const std::vector<float> g = got.to_floats();
  const auto w = want.at("data").get<std::vector<float>>();
  if (g.size() != w.size()) return INFINITY;
  double max_abs = 0, max_rel = 0;
  int reported = 0;
  for (std::size_t i = 0; i < w.size(); ++i) {
    const double d = std::fabs(static_cast<double>(g[i]) - w[i]);
    max_abs = std::max(max_abs, d);
    if (w[i] != 0) max_rel = std::max(max_rel, d / std::fabs(w[i]));
    if (!(d <= tol.abs + tol.rel * std::fabs(w[i])) && reported++ < 5)
      ADD_FAILURE() << what << "[" << i << "]: got " << g[i] << ", PyTorch " << w[i] << " (|diff| " << d
                    << " > abs " << tol.abs << " + rel " << tol.rel << ")";
  }
  std::printf("  %-48s max |diff| %.3g, max rel %.3g\n", what.c_str(), max_abs, max_rel);
  return max_abs;
}

}  // namespace graft::testing
