// DoRA (Liu et al. 2024, "DoRA: Weight-Decomposed Low-Rank Adaptation") as Hugging Face
// PEFT 0.10 computes it (`use_dora` on a LoRA adapter): the adapted weight is split into
// a learned magnitude m [out] and the direction W + s·B·A, normalised per output row,
//   y = (m / ‖W + s·B·A‖) ⊙ ((W + s·B·A) x) + b,
// with the norm detached from the gradient (the paper's §4.3, PEFT's weight_norm.detach()).
// m starts at the norm, so a fresh adapter computes exactly what the frozen layer does.
#pragma once
#include <memory>

#include "graft/site.h"
#include "graft/tensor.h"

namespace graft::lora {

// ‖W + s·B·A‖ per output row, f32 [out], outside autograd. W may be bf16 (a bf16 backbone).
Tensor dora_row_norms(const Tensor& weight, const Tensor& A, const Tensor& B, float scaling);

// The change a merge makes: (m / ‖W + s·B·A‖) ⊙ (W + s·B·A) − W, f32 [out, in].
Tensor dora_delta_weight(const Tensor& weight, const Tensor& A, const Tensor& B, const Tensor& magnitude, float scaling);

// The linear hook. As PEFT 0.10: the frozen output y keeps the undropped x, and the
// extra term (m/‖·‖ − 1) ⊙ (x' Wᵀ) + (m/‖·‖) ⊙ s·B A x' uses x' = dropout(x).
class DoraHook : public AdapterHook {
 public:
  DoraHook(Tensor A, Tensor B, Tensor magnitude, float scaling, float dropout)
      : A_(std::move(A)), B_(std::move(B)), m_(std::move(magnitude)), scaling_(scaling), dropout_(dropout) {}
  Tensor linear(const Site& site, const LinearCall& call, const Rows& rows) override;

 private:
  Tensor A_, B_, m_;
  float scaling_, dropout_;
};

}  // namespace graft::lora
