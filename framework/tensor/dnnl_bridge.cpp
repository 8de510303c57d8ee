#include "tensor/dnnl_bridge.h"

#include <fmt/format.h>

#include "graft/error.h"

namespace graft::dnnl_bridge {

dnnl::engine& engine() {
  static dnnl::engine cpu(dnnl::engine::kind::cpu, 0);
  return cpu;
}

// One stream per thread: a oneDNN stream is not safe to share between threads, and
// concurrent Session calls each run on their own.
dnnl::stream& stream() {
  thread_local dnnl::stream s(engine());
  return s;
}

dnnl::memory::data_type to_dnnl(DType dtype) {
  using dt = dnnl::memory::data_type;
  switch (dtype) {
    case DType::f32: return dt::f32;
    case DType::bf16: return dt::bf16;
    case DType::i32: return dt::s32;
    case DType::i64: break;  // oneDNN has no 64-bit integers
  }
  throw ShapeError("tensor", "i64 tensors have no oneDNN data type",
                   "convert ids to i32 before a oneDNN op, or use a plain kernel");
}

dnnl::memory::dims to_dims(const Shape& shape) {
  return dnnl::memory::dims(shape.begin(), shape.end());
}

dnnl::memory::desc plain_desc(const Shape& shape, DType dtype) {
  Shape strides(shape.size(), 1);
  for (int i = static_cast<int>(shape.size()) - 2; i >= 0; --i)
    strides[i] = strides[i + 1] * shape[i + 1];
  return strided_desc(shape, dtype, strides);
}

dnnl::memory::desc strided_desc(const Shape& shape, DType dtype, const Shape& strides) {
  // oneDNN wants at least one dimension; a scalar is a 1-element vector to it.
  if (shape.empty()) return dnnl::memory::desc({1}, to_dnnl(dtype), dnnl::memory::dims{1});
  return dnnl::memory::desc(to_dims(shape), to_dnnl(dtype), to_dims(strides));
}

dnnl::memory memory(const Tensor& t) { return memory(t, plain_desc(t.shape(), t.dtype())); }

dnnl::memory memory(const Tensor& t, const dnnl::memory::desc& desc) {
  return dnnl::memory(desc, engine(), t.raw());
}

void rethrow(const char* what, const dnnl::error& e) {
  throw BackendError("oneDNN", fmt::format("{} failed: {} (status {})", what, e.what(),
                                           static_cast<int>(e.status)),
                     "check the shapes and dtypes passed to this op");
}

}  // namespace graft::dnnl_bridge
