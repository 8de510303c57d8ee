// add / sub / mul with NumPy broadcasting on oneDNN's binary primitive. oneDNN
// broadcasts only its second source, so a broadcast first operand is swapped (add,
// mul) or expanded (sub). Backward sums gradients back down to each input's shape.
#include "graft/ops.h"
#include "ops/op_util.h"
#include "ops/primitive_cache.h"
#include "tensor/dnnl_bridge.h"

namespace graft::ops {
namespace {

using dnnl::algorithm;
namespace bridge = dnnl_bridge;

const char* alg_name(algorithm alg) {
  switch (alg) {
    case algorithm::binary_add: return "add";
    case algorithm::binary_sub: return "sub";
    default: return "mul";
  }
}

Tensor binary_forward(algorithm alg, Tensor a, Tensor b) {
  const char* name = alg_name(alg);
  require_floating(name, a);
  require_floating(name, b);
  a = as_f32(a);
  b = as_f32(b);
  const Shape out_shape = broadcast_shapes(name, a.shape(), b.shape());
  const std::size_t rank = std::max<std::size_t>(out_shape.size(), 1);
  Shape pa = pad_to_rank(a.shape(), rank), pb = pad_to_rank(b.shape(), rank);
  Shape pout = pad_to_rank(out_shape, rank);
  if (pa != pout) {
    if (pb == pout && alg != algorithm::binary_sub) {
      std::swap(a, b);
      std::swap(pa, pb);
    } else {
      a = broadcast_to(a, out_shape);
      pa = pout;
    }
  }
  Tensor out = Tensor::empty(out_shape);
  const std::string key = fmt::format("binary.{}|{}|{}", name, key_of(pa, DType::f32), key_of(pb, DType::f32));
  const auto& cached = cached_primitive(key, [&] {
    auto md0 = bridge::plain_desc(pa, DType::f32), md1 = bridge::plain_desc(pb, DType::f32);
    return bridge::guarded("binary", [&] {
      return make_cached<dnnl::binary>(dnnl::binary::primitive_desc(
          dnnl::binary::desc(alg, md0, md1, md0), primitive_attr(), bridge::engine()));
    });
  });
  bridge::guarded("binary", [&] {
    cached.execute(
                             {{DNNL_ARG_SRC_0, bridge::memory(a, bridge::plain_desc(pa, DType::f32))},
                              {DNNL_ARG_SRC_1, bridge::memory(b, bridge::plain_desc(pb, DType::f32))},
                              {DNNL_ARG_DST, bridge::memory(out, bridge::plain_desc(pout, DType::f32))}});
    bridge::stream().wait();
  });
  return out;
}

class BinaryOp : public Op, public SavesInputs {
 public:
  explicit BinaryOp(algorithm alg) : alg_(alg) {}
  // add, sub: shapes only; mul and the others: each input's gradient reads the other.
  bool reads_input(std::size_t i, const std::vector<bool>& needs) const override {
    return alg_ != algorithm::binary_add && alg_ != algorithm::binary_sub && needs[1 - i];
  }
  std::string_view name() const override { return alg_name(alg_); }
  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    return {binary_forward(alg_, in[0], in[1])};
  }
  std::vector<Tensor> backward(const std::vector<Tensor>& in, const std::vector<Tensor>&,
                               const std::vector<Tensor>& gout, const std::vector<bool>& needs) override {
    const Tensor& g = gout[0];
    std::vector<Tensor> grads(2);
    switch (alg_) {
      case algorithm::binary_add:
        if (needs[0]) grads[0] = sum_to_shape(g, in[0].shape());
        if (needs[1]) grads[1] = sum_to_shape(g, in[1].shape());
        break;
      case algorithm::binary_sub:
        if (needs[0]) grads[0] = sum_to_shape(g, in[0].shape());
        if (needs[1]) grads[1] = scale(sum_to_shape(g, in[1].shape()), -1.f);
        break;
      default:
        if (needs[0]) grads[0] = sum_to_shape(binary_forward(alg_, g, in[1]), in[0].shape());
        if (needs[1]) grads[1] = sum_to_shape(binary_forward(alg_, g, in[0]), in[1].shape());
    }
    return grads;
  }

 private:
  algorithm alg_;
};

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return autograd::apply1(make_op<BinaryOp>(algorithm::binary_add), {a, b}); }
Tensor sub(const Tensor& a, const Tensor& b) { return autograd::apply1(make_op<BinaryOp>(algorithm::binary_sub), {a, b}); }
Tensor mul(const Tensor& a, const Tensor& b) { return autograd::apply1(make_op<BinaryOp>(algorithm::binary_mul), {a, b}); }

}  // namespace graft::ops
