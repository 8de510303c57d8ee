// AdapterFusion (Pfeiffer et al. 2021) as the built-in method "fusion": at each
// sublayer_output site, an attention over what several frozen bottleneck adapters add
// to h. Query from h, keys and values from each adapter's change δᵢ = adapterᵢ(h) − h:
//   pᵢ = softmax_i((Wq h + bq) · (Wk δᵢ + bk)),   out = h + Σᵢ pᵢ Wv δᵢ
// (AdapterHub's dynamic fusion: query, key and value, value before the softmax, no
// temperature). Wv starts as the identity (AdapterHub's value_initialized), Wq and Wk as
// BERT initialises (normal 0.02), so the untrained fusion already mixes the adapters.
// The host (ActiveAdapters) runs the fused adapters and calls fuse(); the fusion's
// config names them ("adapters") and the sites it has weights at ("sites").
#pragma once
#include <vector>

#include "graft/plugin.h"

namespace graft::plugin {

class FusionHook : public AdapterHook {
 public:
  FusionHook(Tensor wq, Tensor bq, Tensor wk, Tensor bk, Tensor wv)
      : wq_(wq), bq_(bq), wk_(wk), bk_(bk), wv_(wv) {}
  // h [B, T, H]; deltas: each fused adapter's change to h, in the fusion's order.
  Tensor fuse(const Tensor& h, const std::vector<Tensor>& deltas) const;

 private:
  Tensor wq_, bq_, wk_, bk_, wv_;
};

const GraftPluginInfo& fusion_method_info();

}  // namespace graft::plugin
