// Internal: how a graft Tensor is seen by oneDNN. Storage is a host buffer; a
// dnnl::memory wraps it in place (no copy) with a plain row-major descriptor, or with
// any strided descriptor an op builds over the same bytes (transposes, slices).
#pragma once
#include <oneapi/dnnl/dnnl.hpp>
#include <string>

#include "graft/tensor.h"

namespace graft::dnnl_bridge {

dnnl::engine& engine();
dnnl::stream& stream();

dnnl::memory::data_type to_dnnl(DType dtype);
dnnl::memory::dims to_dims(const Shape& shape);
dnnl::memory::desc plain_desc(const Shape& shape, DType dtype);
dnnl::memory::desc strided_desc(const Shape& shape, DType dtype, const Shape& strides);

// A dnnl::memory over the tensor's bytes, viewed through `desc` (plain by default).
dnnl::memory memory(const Tensor& t);
dnnl::memory memory(const Tensor& t, const dnnl::memory::desc& desc);

// Runs `fn`, turning a dnnl::error into a graft::BackendError naming `what`.
template <class Fn>
auto guarded(const char* what, Fn&& fn) -> decltype(fn());
[[noreturn]] void rethrow(const char* what, const dnnl::error& e);

template <class Fn>
auto guarded(const char* what, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const dnnl::error& e) {
    rethrow(what, e);
  }
}

}  // namespace graft::dnnl_bridge
