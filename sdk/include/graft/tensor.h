// Tensor: a cheap handle (shared pointer) to a shape, a dtype, contiguous row-major
// storage, and — when autograd recorded it — the node that produced it. The graph is
// the tensors themselves: a tensor keeps its producer alive, which keeps its inputs.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace graft {

enum class DType : std::uint8_t { f32, bf16, i32, i64 };

std::size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);
bool is_floating(DType dtype);

using Shape = std::vector<std::int64_t>;
std::int64_t shape_numel(const Shape& shape);
std::string shape_str(const Shape& shape);

// bf16 <-> f32, round to nearest even (as PyTorch and oneDNN do).
std::uint16_t f32_to_bf16(float value);
float bf16_to_f32(std::uint16_t value);

// Tensor memory of this process: bytes held by live tensors, the most ever held at once,
// and freed large blocks kept for reuse by the next step (at most the live peak).
struct MemoryStats {
  std::size_t live_bytes = 0, peak_live_bytes = 0, cached_bytes = 0;
};
MemoryStats memory_stats();
// Gives the cached blocks back to the system (a server after a burst of long inputs).
void release_cached_memory();

// Bytes a tensor points into. Owned (aligned heap) or borrowed (an mmap'd file),
// in which case `owner` keeps the mapping alive.
struct Storage {
  void* data = nullptr;
  std::size_t bytes = 0;
  std::shared_ptr<void> owner;
};

struct Node;

struct TensorImpl {
  Shape shape;
  DType dtype = DType::f32;
  std::shared_ptr<Storage> storage;
  std::size_t offset = 0;  // bytes into storage
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;
  std::shared_ptr<Node> node;  // the op that produced this tensor, if recorded
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // Uninitialised, zero-filled or constant-filled storage.
  static Tensor empty(Shape shape, DType dtype = DType::f32);
  static Tensor zeros(Shape shape, DType dtype = DType::f32);
  static Tensor full(Shape shape, float value, DType dtype = DType::f32);
  // Copies `values` (f32 in; converted to bf16 when asked).
  static Tensor from_floats(const std::vector<float>& values, Shape shape,
                            DType dtype = DType::f32);
  static Tensor from_ints(const std::vector<std::int64_t>& values, Shape shape,
                          DType dtype = DType::i64);
  // Borrows `data`; `owner` keeps it alive for as long as the tensor lives.
  static Tensor borrow(void* data, Shape shape, DType dtype, std::shared_ptr<void> owner);

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  int ndim() const { return static_cast<int>(shape().size()); }
  std::int64_t dim(int axis) const;  // negative axes count from the end
  std::int64_t numel() const { return shape_numel(shape()); }
  DType dtype() const;
  std::size_t nbytes() const { return static_cast<std::size_t>(numel()) * dtype_size(dtype()); }

  void* raw() const;
  template <class T> T* data() const { return static_cast<T*>(raw()); }

  // A tensor sharing this one's storage under another shape (no autograd edge;
  // ops::reshape is the differentiable form).
  Tensor view(Shape shape) const;
  // A fresh copy with its own storage, detached from the graph.
  Tensor clone() const;
  // Same storage, no producer, no grad: a leaf.
  Tensor detach() const;
  // Values as f32 / i64, converting from the stored dtype.
  std::vector<float> to_floats() const;
  std::vector<std::int64_t> to_ints() const;
  float item() const;

  bool requires_grad() const;
  Tensor& set_requires_grad(bool value);
  Tensor grad() const;
  void set_grad(const Tensor& grad) const;
  void zero_grad() const;
  const std::shared_ptr<Node>& node() const;

  // Reverse-mode autodiff from this tensor (a scalar unless `seed` is given).
  void backward(const Tensor& seed = Tensor()) const;

  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// How many elements of a floating tensor are NaN or ±inf (0 for integer tensors): a
// weight read from a file or produced by an optimiser step is checked before use.
std::int64_t count_non_finite(const Tensor& t);

}  // namespace graft
