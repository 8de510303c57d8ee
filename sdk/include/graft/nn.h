// Trainable parameters: what a plugin needs to create and initialise its weights.
// Every parameter is an f32 leaf that requires a gradient (the f32 master copy, even
// when the frozen backbone runs in bf16).
//
// Random initialisers are deterministic and portable: values are drawn from
// std::mt19937_64(seed) — whose output sequence the C++ standard fixes — through
// graft's own transforms (Box–Muller for normals, 53-bit mantissa for uniforms),
// not std::normal_distribution, whose algorithm differs between standard libraries.
// The same (shape, std/bound, seed) gives the same bits on every platform. Derive one
// seed per tensor with graft::init_stream (graft/init.h).
#pragma once
#include <cstdint>
#include <string>

#include "graft/init.h"
#include "graft/tensor.h"

namespace graft::nn {

// A parameter with the name it is saved and optimised under, e.g.
// "layers.3.attention.query.lora_A".
struct NamedParameter {
  std::string name;
  Tensor tensor;
};

// Normal(0, init_std²) values; init_std >= 0 (0 gives zeros), else ConfigError.
Tensor parameter(Shape shape, float init_std, std::uint64_t seed);
// Uniform(-bound, bound) values, e.g. kaiming-uniform's bound = 1/sqrt(fan_in);
// bound >= 0, else ConfigError.
Tensor uniform_parameter(Shape shape, float bound, std::uint64_t seed);
// Normal(0, init_std²) truncated to ±2·init_std by rejection (PyTorch's trunc_normal_
// with a = −2·std, b = 2·std, as AdapterHub's "houlsby" init); init_std >= 0.
Tensor truncated_normal_parameter(Shape shape, float init_std, std::uint64_t seed);
Tensor zeros_parameter(Shape shape);
Tensor ones_parameter(Shape shape);

}  // namespace graft::nn
