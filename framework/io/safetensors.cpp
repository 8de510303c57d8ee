#include "io/safetensors.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <tuple>

#include "graft/error.h"
#include "io/atomic_file.h"
#include "io/json_config.h"

namespace graft::io {

static_assert(std::endian::native == std::endian::little,
              "safetensors is little-endian; a big-endian host would need byte swaps");

namespace {

using nlohmann::json;

constexpr std::uint64_t kMaxHeaderBytes = 100u << 20;  // real headers are kilobytes
constexpr const char* kSupported = "F32, F16, BF16, I32, I64";
constexpr const char* kCorruptHint = "the file is corrupted or was not written by a safetensors writer";

// Every message names the file; the component prefix says which reader complained.
struct Reader {
  std::string file;
  [[noreturn]] void fail(const std::string& message, const std::string& hint) const {
    throw FormatError("safetensors", fmt::format("'{}': {}", file, message), hint);
  }
  [[noreturn]] void fail(std::string_view tensor, const std::string& message, const std::string& hint) const {
    fail(fmt::format("tensor '{}': {}", tensor, message), hint);
  }
};

struct FileDType {
  const char* name;
  DType loaded;  // what get() returns
  std::size_t size;
};

std::optional<FileDType> parse_dtype(std::string_view name) {
  if (name == "F32") return FileDType{"F32", DType::f32, 4};
  if (name == "F16") return FileDType{"F16", DType::f32, 2};
  if (name == "BF16") return FileDType{"BF16", DType::bf16, 2};
  if (name == "I32") return FileDType{"I32", DType::i32, 4};
  if (name == "I64") return FileDType{"I64", DType::i64, 8};
  return std::nullopt;
}

const char* file_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::f32: return "F32";
    case DType::bf16: return "BF16";
    case DType::i32: return "I32";
    case DType::i64: return "I64";
  }
  return "?";
}

// nlohmann stores non-negative literals as unsigned and negative ones as signed.
std::optional<std::uint64_t> as_u64(const json& v) {
  if (v.is_number_unsigned()) return v.get<std::uint64_t>();
  if (v.is_number_integer() && v.get<std::int64_t>() >= 0) return static_cast<std::uint64_t>(v.get<std::int64_t>());
  return std::nullopt;
}

float f16_to_f32(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  std::uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);  // inf, NaN (payload kept)
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);  // rebias 15 -> 127
  } else {
    float f = std::ldexp(static_cast<float>(mant), -24);  // zero and subnormals
    return sign ? -f : f;
  }
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

// nlohmann keeps the last of two equal keys without a word; safetensors readers must
// not, or two tools could disagree on which bytes a name means. A first SAX pass records
// the first duplicate (and whether it is a top-level tensor name); the DOM is then
// parsed without a callback, whose end_object() rescans the parent object each time
// and made a header of n entries cost O(n^2).
struct DuplicateKeys : nlohmann::json_sax<json> {
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  bool duplicate_is_tensor = false;

  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override {
    open_objects.emplace_back();
    return true;
  }
  bool key(string_t& k) override {
    if (!open_objects.back().insert(k).second && duplicate.empty()) {
      duplicate = k;
      duplicate_is_tensor = open_objects.size() == 1;
    }
    return true;
  }
  bool end_object() override {
    open_objects.pop_back();
    return true;
  }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }
};

json parse_header(const Reader& r, std::string_view text) {
  check_json_depth(text, r.file);
  DuplicateKeys keys;
  json header;
  try {
    json::sax_parse(text.begin(), text.end(), &keys);  // false on a syntax error, which parse() reports
    header = json::parse(text.begin(), text.end());
  } catch (const json::parse_error& e) {
    r.fail(fmt::format("header is not valid JSON (error at byte {} of the header): {}", e.byte, e.what()),
           kCorruptHint);
  } catch (const json::out_of_range& e) {  // 406: a number beyond a double's range (1e400)
    r.fail(fmt::format("header is not valid JSON: {}", e.what()), kCorruptHint);
  }
  if (!keys.duplicate.empty()) {
    if (keys.duplicate_is_tensor)
      r.fail(fmt::format("duplicate tensor name '{}' in the header", keys.duplicate),
             "each tensor name may appear once; rewrite the file with unique names");
    r.fail(fmt::format("duplicate key '{}' inside a header entry", keys.duplicate), kCorruptHint);
  }
  return header;
}

const json& field(const Reader& r, const std::string& tensor, const json& entry, const char* key) {
  auto it = entry.find(key);
  if (it == entry.end())
    r.fail(tensor, fmt::format("missing key '{}'", key),
           "each entry needs \"dtype\", \"shape\" and \"data_offsets\"");
  return *it;
}

TensorInfo parse_entry(const Reader& r, const std::string& name, const json& entry, std::size_t data_size) {
  const std::string hint_keys = "expected {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 24]}";
  if (!entry.is_object()) r.fail(name, fmt::format("entry is a JSON {}, not an object", entry.type_name()), hint_keys);

  const json& dtype_json = field(r, name, entry, "dtype");
  if (!dtype_json.is_string())
    r.fail(name, fmt::format("'dtype' must be a string, found a JSON {}", dtype_json.type_name()), hint_keys);
  auto dtype = parse_dtype(dtype_json.get_ref<const std::string&>());
  if (!dtype)
    r.fail(name, fmt::format("unknown dtype '{}'", dtype_json.get_ref<const std::string&>()),
           fmt::format("supported dtypes: {}; convert the checkpoint to one of them", kSupported));

  const json& shape_json = field(r, name, entry, "shape");
  if (!shape_json.is_array())
    r.fail(name, fmt::format("'shape' must be an array, found a JSON {}", shape_json.type_name()), hint_keys);
  TensorInfo info;
  info.name = name;
  info.dtype = dtype->loaded;
  info.file_dtype = dtype->name;
  std::uint64_t numel = 1;
  bool overflow = false;
  for (std::size_t i = 0; i < shape_json.size(); ++i) {
    auto dim = as_u64(shape_json[i]);
    if (!dim || *dim > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      r.fail(name, fmt::format("shape dimension {} is {}: dimensions must be non-negative integers", i, shape_json[i].dump()),
             hint_keys);
    info.shape.push_back(static_cast<std::int64_t>(*dim));
    overflow |= __builtin_mul_overflow(numel, *dim, &numel);
  }
  std::uint64_t expected = 0;
  overflow |= __builtin_mul_overflow(numel, dtype->size, &expected);

  const json& offsets = field(r, name, entry, "data_offsets");
  std::optional<std::uint64_t> begin, end;
  if (offsets.is_array() && offsets.size() == 2) {
    begin = as_u64(offsets[0]);
    end = as_u64(offsets[1]);
  }
  if (!begin || !end)
    r.fail(name, fmt::format("'data_offsets' must be two non-negative integers, found {}", offsets.dump()), hint_keys);
  if (*begin > *end)
    r.fail(name, fmt::format("data_offsets [{}, {}]: begin is past end", *begin, *end), kCorruptHint);
  if (*end > data_size)
    r.fail(name, fmt::format("data_offsets [{}, {}] out of range: the data buffer holds {} bytes", *begin, *end, data_size),
           "the file is truncated or its header is corrupted");
  if (overflow || expected != *end - *begin)
    r.fail(name, fmt::format("size mismatch: shape {} of {} needs {} bytes but data_offsets [{}, {}] span {}",
                             shape_str(info.shape), dtype->name, overflow ? std::string("more than 2^64") : std::to_string(expected),
                             *begin, *end, *end - *begin),
           kCorruptHint);
  info.offset = *begin;
  info.nbytes = *end - *begin;
  return info;
}

std::map<std::string, std::string> parse_metadata(const Reader& r, const json& meta) {
  const char* hint = "__metadata__ must map strings to strings";
  if (!meta.is_object()) r.fail(fmt::format("__metadata__ is a JSON {}, not an object", meta.type_name()), hint);
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : meta.items()) {
    if (!value.is_string())
      r.fail(fmt::format("__metadata__ key '{}' is a JSON {}, not a string", key, value.type_name()), hint);
    out.emplace(key, value.get<std::string>());
  }
  return out;
}

// Ranges are sorted by offset; an empty range holds no bytes and overlaps nothing.
void check_overlaps(const Reader& r, const std::vector<TensorInfo>& tensors) {
  const TensorInfo* reach = nullptr;  // the non-empty tensor ending furthest so far
  for (const auto& t : tensors) {
    if (t.nbytes == 0) continue;
    if (reach && t.offset < reach->offset + reach->nbytes)
      r.fail(fmt::format("tensors '{}' and '{}' overlap: bytes [{}, {}) and [{}, {}) of the data buffer", reach->name,
                         t.name, reach->offset, reach->offset + reach->nbytes, t.offset, t.offset + t.nbytes),
             "each byte of the data buffer may belong to one tensor only; " + std::string(kCorruptHint));
    if (!reach || t.offset + t.nbytes > reach->offset + reach->nbytes) reach = &t;
  }
}

[[noreturn]] void io_fail(const std::string& what, const std::filesystem::path& path, int err) {
  throw IoError("safetensors", fmt::format("cannot {} '{}': {}", what, path.string(), std::strerror(err)),
                "check the path and its permissions");
}

}  // namespace

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path) {
  const Reader r{path.string()};
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) io_fail("open", path, errno);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    io_fail("stat", path, err);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw IoError("safetensors", fmt::format("cannot read '{}': not a regular file", path.string()),
                  "pass the .safetensors file itself, not its folder");
  }
  const auto size = static_cast<std::size_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    r.fail(fmt::format("file is {} bytes, shorter than the 8-byte header length (truncated)", size),
           "the file was cut off while downloading or writing; fetch or write it again");
  }
  void* addr = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  int err = errno;
  ::close(fd);  // the mapping holds its own reference to the file
  if (addr == MAP_FAILED) io_fail("map", path, err);

  SafetensorsFile file;
  file.path_ = path;
  file.mapping_ = std::shared_ptr<void>(addr, [size](void* p) { ::munmap(p, size); });
  const auto* bytes = static_cast<const std::byte*>(addr);

  std::uint64_t header_len;
  std::memcpy(&header_len, bytes, 8);
  // The absurd case first: 8 bytes of some other format read as a length are huge,
  // and "not safetensors" is the better diagnosis for them than "truncated".
  if (header_len > kMaxHeaderBytes)
    r.fail(fmt::format("header length {} is absurd (limit {} bytes)", header_len, kMaxHeaderBytes),
           "this is not a safetensors file, or its first 8 bytes are corrupted");
  if (header_len > size - 8)
    r.fail(fmt::format("header length {} runs past the end of the file ({} bytes)", header_len, size),
           "the file is truncated: fetch or write it again");

  const json header = parse_header(r, {reinterpret_cast<const char*>(bytes) + 8, header_len});
  if (!header.is_object())
    r.fail(fmt::format("header is a JSON {}, not an object", header.type_name()), kCorruptHint);

  file.data_ = bytes + 8 + header_len;
  const std::size_t data_size = size - 8 - header_len;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__")
      file.metadata_ = parse_metadata(r, value);
    else
      file.tensors_.push_back(parse_entry(r, key, value, data_size));
  }
  std::sort(file.tensors_.begin(), file.tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return std::tie(a.offset, a.nbytes, a.name) < std::tie(b.offset, b.nbytes, b.name);
  });
  check_overlaps(r, file.tensors_);
  for (std::size_t i = 0; i < file.tensors_.size(); ++i) file.index_.emplace(file.tensors_[i].name, i);
  return file;
}

bool SafetensorsFile::contains(std::string_view name) const { return index_.find(name) != index_.end(); }

const TensorInfo& SafetensorsFile::info(std::string_view name) const {
  auto it = index_.find(name);
  if (it != index_.end()) return tensors_[it->second];
  // Suggest names sharing the last dotted component ("weight", "query") first.
  const auto dot = name.rfind('.');
  const std::string_view leaf = dot == std::string_view::npos ? name : name.substr(dot + 1);
  std::vector<std::string> hints;
  for (int pass = 0; pass < 2 && hints.size() < 5; ++pass)
    for (const auto& [n, i] : index_) {
      if (hints.size() == 5) break;
      const bool close = !leaf.empty() && n.find(leaf) != std::string::npos;
      if ((pass == 0) == close && std::find(hints.begin(), hints.end(), n) == hints.end()) hints.push_back(n);
    }
  std::string hint = tensors_.empty() ? "the file holds no tensors"
                                      : fmt::format("the file holds {} tensors, e.g. {}{}", tensors_.size(),
                                                    fmt::join(hints, ", "), tensors_.size() > hints.size() ? ", ..." : "");
  throw FormatError("safetensors", fmt::format("'{}': no tensor named '{}'", path_.string(), name), hint);
}

Tensor SafetensorsFile::get(std::string_view name) const {
  const TensorInfo& t = info(name);
  const std::byte* p = data_ + t.offset;
  if (t.file_dtype == "F16") {
    Tensor out = Tensor::empty(t.shape, DType::f32);
    float* dst = out.data<float>();
    for (std::size_t i = 0; i < t.nbytes / 2; ++i) {
      std::uint16_t h;
      std::memcpy(&h, p + 2 * i, 2);  // the mapping need not be 2-byte aligned here
      dst[i] = f16_to_f32(h);
    }
    return out;
  }
  // The mapping is private copy-on-write: writing into a view never reaches the file.
  Tensor view = Tensor::borrow(const_cast<std::byte*>(p), t.shape, t.dtype, mapping_);
  // The format does not promise aligned offsets; a misaligned typed pointer is UB in
  // C++ and slow in oneDNN, so such a tensor is copied into aligned storage.
  if (reinterpret_cast<std::uintptr_t>(p) % dtype_size(t.dtype) != 0) return view.clone();
  return view;
}

void save_safetensors(const std::filesystem::path& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::vector<StoredTensor> stored;
  stored.reserve(tensors.size());
  for (const auto& [name, tensor] : tensors) {
    if (!tensor.defined())
      throw FormatError("safetensors", fmt::format("cannot write '{}': tensor '{}' is undefined", path.string(), name),
                        "tensor names must be unique, non-empty and not \"__metadata__\"; tensors must be defined");
    stored.push_back({name, file_dtype_name(tensor.dtype()), tensor.shape(), tensor.raw(), tensor.nbytes()});
  }
  save_safetensors_bytes(path, stored, metadata);
}

void save_safetensors_bytes(const std::filesystem::path& path, const std::vector<StoredTensor>& tensors,
                            const std::map<std::string, std::string>& metadata) {
  auto reject = [&](const std::string& message) {
    throw FormatError("safetensors", fmt::format("cannot write '{}': {}", path.string(), message),
                      "tensor names must be unique, non-empty and not \"__metadata__\"; tensors must be defined");
  };
  // ordered_json keeps "__metadata__" first and the entries in the order given.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::set<std::string_view> seen;
  std::uint64_t offset = 0;
  for (const StoredTensor& t : tensors) {
    if (t.name.empty() || t.name == "__metadata__") reject(fmt::format("invalid tensor name '{}'", t.name));
    if (!seen.insert(t.name).second) reject(fmt::format("duplicate tensor name '{}'", t.name));
    const auto dtype = parse_dtype(t.dtype);
    if (!dtype) reject(fmt::format("tensor '{}' has dtype '{}' (supported: {})", t.name, t.dtype, kSupported));
    if (!t.data && t.nbytes) reject(fmt::format("tensor '{}' has no data", t.name));
    if (t.nbytes != static_cast<std::size_t>(shape_numel(t.shape)) * dtype->size)
      reject(fmt::format("tensor '{}' has {} bytes, but {} {} takes {}", t.name, t.nbytes, t.dtype, shape_str(t.shape),
                         static_cast<std::size_t>(shape_numel(t.shape)) * dtype->size));
    nlohmann::ordered_json entry;
    entry["dtype"] = t.dtype;
    entry["shape"] = t.shape;
    entry["data_offsets"] = {offset, offset + t.nbytes};
    header[t.name] = std::move(entry);
    offset += t.nbytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    reject(fmt::format("names and metadata must be valid UTF-8 ({})", e.what()));
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  const std::uint64_t header_len = text.size();

  AtomicFileWriter writer(path);
  writer.write(&header_len, 8);
  writer.write(text);
  for (const StoredTensor& t : tensors) writer.write(t.data, t.nbytes);
  writer.commit();
}

std::uint16_t f32_to_f16(float value) {
  std::uint32_t x;
  std::memcpy(&x, &value, 4);
  const std::uint16_t sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
  const std::uint32_t abs = x & 0x7fffffffu;
  if (abs > 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7e00u | ((abs >> 13) & 0x3ffu));  // NaN stays NaN
  if (abs >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // rounds past 65504: inf
  if (abs < 0x38800000u) {
    // Half subnormals (and zero): value / 2^-24, rounded to nearest even.
    const float scaled = std::ldexp(std::fabs(value), 24);
    return static_cast<std::uint16_t>(sign | static_cast<std::uint16_t>(std::nearbyint(scaled)));
  }
  // Normal: rebias the exponent (127 -> 15) and round the 13 dropped mantissa bits to even.
  const std::uint32_t rebiased = abs - (112u << 23);
  const std::uint32_t rounded = rebiased + 0xfffu + ((rebiased >> 13) & 1u);
  return static_cast<std::uint16_t>(sign | (rounded >> 13));
}

}  // namespace graft::io
