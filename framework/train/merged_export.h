// Exporting a merged checkpoint: a Hugging Face model folder in which an adapter's
// weight deltas are folded into the frozen weights, so that plain transformers
// (AutoModel.from_pretrained, no PEFT) and graft (--backbone, no adapter) compute what
// the backbone computes with the adapter attached.
//
// The folder holds model.safetensors with every tensor of the source checkpoint, in
// its order and its dtype (buffers and weights graft does not use — a pooler,
// position_ids — copied byte for byte; the backbone's weights written from graft's,
// with the adapter merged), the source's config.json, and its tokenizer and
// sentence-transformers files. A merged weight goes back to the checkpoint's dtype by
// round to nearest even (F16, BF16; F32 is written as computed).
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "peft/adapter_set.h"

namespace graft {

struct MergedExport {
  std::filesystem::path folder;
  std::string weights_dtype;         // of the merged weights in the file: "F32", "BF16", "F16"
  std::vector<std::string> changed;  // tensors the merge changed, in file order
  std::size_t tensors = 0;           // tensors in model.safetensors
  std::vector<std::string> files;    // what was copied beside model.safetensors ("1_Pooling/" for a folder)
};

// Folds adapter `name` of `set` into `backbone` (AdapterSet::merge, completely: an
// adapter with a site that does not fold is refused naming its method and why), writes
// the folder `output`, and unmerges, leaving the backbone's weights bit-identical. A
// "full" fine-tuning adapter is written as it is (its weights are the backbone's).
// Refused before anything is written: `output` exists or lies inside the backbone's
// folder; the backbone is not a Hugging Face folder with one model.safetensors (a
// llama2.c .bin, a sharded checkpoint); the backbone is held in bf16 (merging is done
// in f32). The folder is staged beside `output` and renamed into place: nothing half
// written is left behind.
MergedExport export_merged(const std::filesystem::path& output, AdapterSet& set, const std::string& name,
                           const Backbone& backbone);

}  // namespace graft
