#include "graft/tensor.h"

#include <fmt/format.h>

#include <cmath>

#include <cstdlib>
#include <cstring>

#include "graft/autograd.h"
#include "graft/error.h"
#include "tensor/bf16_rounding.h"
#include "tensor/block_cache.h"

namespace graft {

std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::f32: return 4;
    case DType::bf16: return 2;
    case DType::i32: return 4;
    case DType::i64: return 8;
  }
  return 0;
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::f32: return "f32";
    case DType::bf16: return "bf16";
    case DType::i32: return "i32";
    case DType::i64: return "i64";
  }
  return "?";
}

bool is_floating(DType dtype) { return dtype == DType::f32 || dtype == DType::bf16; }

std::int64_t shape_numel(const Shape& shape) {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

std::string shape_str(const Shape& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

std::uint16_t f32_to_bf16(float value) { return round_to_bf16(value); }

float bf16_to_f32(std::uint16_t value) {
  std::uint32_t bits = static_cast<std::uint32_t>(value) << 16;
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

namespace {

// What to do about a tensor too large to allocate: sizes come from files and options.
constexpr const char* kTooLargeHint =
    "a size read from a file or an option is probably far too large: check the config.json, adapter_config.json or "
    "graft_adapter.json named above (vocab_size, hidden_size, num_labels, r, num_virtual_tokens) and --batch-size / "
    "--max-length";

std::shared_ptr<Storage> allocate(std::size_t bytes, const Shape& shape, DType dtype) {
  auto storage = std::make_shared<Storage>();
  std::size_t rounded = ((bytes + 63) / 64) * 64;
  if (rounded == 0) rounded = 64;
  std::size_t capacity = 0;
  void* p = rounded >= bytes ? block_cache::acquire(rounded, capacity) : nullptr;
  if (!p)
    throw Error("tensor",
                fmt::format("out of memory allocating a {} tensor of shape {}: {} bytes ({:.1f} GiB)", dtype_name(dtype),
                            shape_str(shape), bytes, static_cast<double>(bytes) / (1ull << 30)),
                kTooLargeHint);
  storage->data = p;
  storage->bytes = bytes;
  storage->owner = std::shared_ptr<void>(p, [capacity](void* block) { block_cache::release(block, capacity); });
  return storage;
}

void check_shape(const Shape& shape) {
  for (auto d : shape)
    if (d < 0) throw ShapeError("tensor", fmt::format("negative dimension in shape {}", shape_str(shape)));
}

}  // namespace

Tensor Tensor::empty(Shape shape, DType dtype) {
  check_shape(shape);
  auto impl = std::make_shared<TensorImpl>();
  std::uint64_t bytes = dtype_size(dtype);
  for (auto d : shape)
    if (__builtin_mul_overflow(bytes, static_cast<std::uint64_t>(d), &bytes))
      throw ShapeError("tensor", fmt::format("a {} tensor of shape {} is too large to allocate", dtype_name(dtype), shape_str(shape)),
                       kTooLargeHint);
  impl->storage = allocate(static_cast<std::size_t>(bytes), shape, dtype);
  impl->shape = std::move(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::zeros(Shape shape, DType dtype) {
  Tensor t = empty(std::move(shape), dtype);
  std::memset(t.raw(), 0, t.nbytes());
  return t;
}

Tensor Tensor::full(Shape shape, float value, DType dtype) {
  Tensor t = empty(std::move(shape), dtype);
  const std::int64_t n = t.numel();
  switch (dtype) {
    case DType::f32: std::fill_n(t.data<float>(), n, value); break;
    case DType::bf16: std::fill_n(t.data<std::uint16_t>(), n, f32_to_bf16(value)); break;
    case DType::i32: std::fill_n(t.data<std::int32_t>(), n, static_cast<std::int32_t>(value)); break;
    case DType::i64: std::fill_n(t.data<std::int64_t>(), n, static_cast<std::int64_t>(value)); break;
  }
  return t;
}

Tensor Tensor::from_floats(const std::vector<float>& values, Shape shape, DType dtype) {
  if (static_cast<std::int64_t>(values.size()) != shape_numel(shape))
    throw ShapeError("tensor", fmt::format("{} values do not fill shape {}", values.size(), shape_str(shape)));
  if (!is_floating(dtype))
    throw ShapeError("tensor", fmt::format("from_floats wants f32 or bf16, not {}", dtype_name(dtype)));
  Tensor t = empty(std::move(shape), dtype);
  if (dtype == DType::f32) {
    std::memcpy(t.raw(), values.data(), t.nbytes());
  } else {
    auto* out = t.data<std::uint16_t>();
    for (std::size_t i = 0; i < values.size(); ++i) out[i] = f32_to_bf16(values[i]);
  }
  return t;
}

Tensor Tensor::from_ints(const std::vector<std::int64_t>& values, Shape shape, DType dtype) {
  if (static_cast<std::int64_t>(values.size()) != shape_numel(shape))
    throw ShapeError("tensor", fmt::format("{} values do not fill shape {}", values.size(), shape_str(shape)));
  Tensor t = empty(std::move(shape), dtype);
  for (std::size_t i = 0; i < values.size(); ++i) {
    switch (dtype) {
      case DType::i64: t.data<std::int64_t>()[i] = values[i]; break;
      case DType::i32: t.data<std::int32_t>()[i] = static_cast<std::int32_t>(values[i]); break;
      case DType::f32: t.data<float>()[i] = static_cast<float>(values[i]); break;
      case DType::bf16: t.data<std::uint16_t>()[i] = f32_to_bf16(static_cast<float>(values[i])); break;
    }
  }
  return t;
}

Tensor Tensor::borrow(void* data, Shape shape, DType dtype, std::shared_ptr<void> owner) {
  check_shape(shape);
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>();
  impl->storage->data = data;
  impl->storage->bytes = static_cast<std::size_t>(shape_numel(shape)) * dtype_size(dtype);
  impl->storage->owner = std::move(owner);
  impl->shape = std::move(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

static TensorImpl& checked(const std::shared_ptr<TensorImpl>& impl) {
  if (!impl) throw Error("tensor", "use of an undefined tensor", "a Tensor() handle holds no data; create it first");
  return *impl;
}

const Shape& Tensor::shape() const { return checked(impl_).shape; }
DType Tensor::dtype() const { return checked(impl_).dtype; }

std::int64_t Tensor::dim(int axis) const {
  const int n = ndim();
  const int a = axis < 0 ? axis + n : axis;
  if (a < 0 || a >= n) throw ShapeError("tensor", fmt::format("axis {} out of range for shape {}", axis, shape_str(shape())));
  return shape()[a];
}

void* Tensor::raw() const {
  auto& impl = checked(impl_);
  return static_cast<char*>(impl.storage->data) + impl.offset;
}

Tensor Tensor::view(Shape new_shape) const {
  if (shape_numel(new_shape) != numel())
    throw ShapeError("tensor", fmt::format("cannot view {} as {}", shape_str(shape()), shape_str(new_shape)));
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = std::move(new_shape);
  impl->dtype = impl_->dtype;
  impl->storage = impl_->storage;
  impl->offset = impl_->offset;
  return Tensor(std::move(impl));
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), dtype());
  std::memcpy(out.raw(), raw(), nbytes());
  return out;
}

Tensor Tensor::detach() const { return view(shape()); }

std::vector<float> Tensor::to_floats() const {
  const std::int64_t n = numel();
  std::vector<float> out(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    switch (dtype()) {
      case DType::f32: out[i] = data<float>()[i]; break;
      case DType::bf16: out[i] = bf16_to_f32(data<std::uint16_t>()[i]); break;
      case DType::i32: out[i] = static_cast<float>(data<std::int32_t>()[i]); break;
      case DType::i64: out[i] = static_cast<float>(data<std::int64_t>()[i]); break;
    }
  }
  return out;
}

std::vector<std::int64_t> Tensor::to_ints() const {
  const std::int64_t n = numel();
  std::vector<std::int64_t> out(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    switch (dtype()) {
      case DType::i64: out[i] = data<std::int64_t>()[i]; break;
      case DType::i32: out[i] = data<std::int32_t>()[i]; break;
      case DType::f32: out[i] = static_cast<std::int64_t>(data<float>()[i]); break;
      case DType::bf16: out[i] = static_cast<std::int64_t>(bf16_to_f32(data<std::uint16_t>()[i])); break;
    }
  }
  return out;
}

float Tensor::item() const {
  if (numel() != 1) throw ShapeError("tensor", fmt::format("item() of a tensor with shape {}", shape_str(shape())));
  return to_floats()[0];
}

bool Tensor::requires_grad() const { return checked(impl_).requires_grad; }

Tensor& Tensor::set_requires_grad(bool value) {
  auto& impl = checked(impl_);
  if (value && !is_floating(impl.dtype))
    throw ShapeError("autograd", fmt::format("a {} tensor cannot require a gradient", dtype_name(impl.dtype)));
  impl.requires_grad = value;
  return *this;
}

Tensor Tensor::grad() const { return Tensor(checked(impl_).grad); }
void Tensor::set_grad(const Tensor& grad) const { checked(impl_).grad = grad.impl_ptr(); }
void Tensor::zero_grad() const { checked(impl_).grad.reset(); }
const std::shared_ptr<Node>& Tensor::node() const { return checked(impl_).node; }

void Tensor::backward(const Tensor& seed) const { autograd::backward(*this, seed); }

std::int64_t count_non_finite(const Tensor& t) {
  if (!t.defined()) return 0;
  const std::int64_t n = t.numel();
  std::int64_t bad = 0;
  if (t.dtype() == DType::f32) {
    const float* v = static_cast<const float*>(t.raw());
    for (std::int64_t i = 0; i < n; ++i) bad += !std::isfinite(v[i]);
  } else if (t.dtype() == DType::bf16) {
    const auto* v = static_cast<const std::uint16_t*>(t.raw());
    for (std::int64_t i = 0; i < n; ++i) bad += (v[i] & 0x7f80u) == 0x7f80u;  // exponent all ones
  }
  return bad;
}

}  // namespace graft
