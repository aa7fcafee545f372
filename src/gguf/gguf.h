// GGUF reader (v2, v3) and writer.
//
// The reader maps the file, parses and validates the header, every metadata value (all types,
// nested arrays) and the tensor table. Every count, offset and size is checked for overflow and
// against the file size; any problem raises tokenscope::Error naming the file and the field.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/file_load.h"
#include "formats/tensor_type.h"

namespace tokenscope::gguf {

enum class ValueType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};
const char* value_type_name(ValueType t);

// One metadata value. Scalars use the member of their kind; arrays keep their element type and items.
struct Value {
  ValueType type = ValueType::UINT8;
  uint64_t u = 0;      // UINT8/16/32/64, BOOL (0/1)
  int64_t i = 0;       // INT8/16/32/64
  double f = 0;        // FLOAT32/64
  std::string s;       // STRING
  ValueType elem_type = ValueType::UINT8;  // ARRAY
  std::vector<Value> items;                // ARRAY

  bool is_integer() const;
  bool is_float() const;
  // A short human-readable rendering (arrays abbreviated), for `tokenscope inspect`.
  std::string to_string(size_t max_items = 8) const;
};

struct KeyValue {
  std::string key;
  Value value;
};

struct TensorInfo {
  std::string name;
  std::vector<int64_t> dims;  // ne[0] first: ne[0] is the contiguous (row) dimension
  TensorType type = TensorType::F32;
  uint64_t offset = 0;        // relative to the start of the data section
  uint64_t size_bytes = 0;
  int64_t n_elements = 0;
  int64_t ne(int i) const { return i < static_cast<int>(dims.size()) ? dims[i] : 1; }
};

class File {
 public:
  // Reads (by default maps) and validates the file; throws tokenscope::Error on any problem.
  static std::unique_ptr<File> open(const std::string& path, const LoadOptions& load = {});
  ~File();
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t file_size() const { return size_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }

  const std::vector<KeyValue>& metadata() const { return kv_; }
  const Value* find(std::string_view key) const;

  // Typed getters: throw Error "<file>: metadata key '<key>' is missing" / "... has type X, expected Y".
  std::string get_string(std::string_view key) const;
  int64_t get_int(std::string_view key) const;      // any integer type, range-checked into int64
  double get_float(std::string_view key) const;     // FLOAT32/FLOAT64 (integers accepted too)
  bool get_bool(std::string_view key) const;
  std::vector<std::string> get_string_array(std::string_view key) const;
  std::vector<float> get_float_array(std::string_view key) const;
  std::vector<int64_t> get_int_array(std::string_view key) const;
  // Optional forms: nullopt when the key is absent; still throw on a wrong type.
  std::optional<std::string> opt_string(std::string_view key) const;
  std::optional<int64_t> opt_int(std::string_view key) const;
  std::optional<double> opt_float(std::string_view key) const;
  std::optional<bool> opt_bool(std::string_view key) const;

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(std::string_view name) const;
  // Throws Error "<file>: tensor '<name>' is missing".
  const TensorInfo& tensor(std::string_view name) const;
  // Start of a tensor's bytes in the mapping (valid while the File lives).
  const uint8_t* tensor_data(const TensorInfo& t) const { return base_ + data_offset_ + t.offset; }
  const uint8_t* base() const { return base_; }
  // How the bytes came in (mmap or a copy) and what that cost.
  const FileImage& image() const { return image_; }

 private:
  File() = default;
  std::string path_;
  FileImage image_;
  const uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<KeyValue> kv_;
  std::vector<TensorInfo> tensors_;
  friend class Parser;
};

// Builds a GGUF v3 file in memory and writes it. Used by `tokenscope synth`, `quantize` and tests
// (which also build deliberately broken files through the raw-bytes access).
class Writer {
 public:
  void set_u32(const std::string& key, uint32_t v);
  void set_i32(const std::string& key, int32_t v);
  void set_u64(const std::string& key, uint64_t v);
  void set_f32(const std::string& key, float v);
  void set_bool(const std::string& key, bool v);
  void set_string(const std::string& key, const std::string& v);
  void set_string_array(const std::string& key, const std::vector<std::string>& v);
  void set_f32_array(const std::string& key, const std::vector<float>& v);
  void set_i32_array(const std::string& key, const std::vector<int32_t>& v);
  void set_value(const std::string& key, const Value& v);  // any value, incl. nested arrays
  // dims: ne[0] first. data must hold row_size(type, dims[0]) * (product of the other dims) bytes.
  void add_tensor(const std::string& name, const std::vector<int64_t>& dims, TensorType type,
                  const void* data, size_t size_bytes);
  void set_alignment(uint32_t a);  // writes general.alignment too

  std::vector<uint8_t> to_bytes() const;
  void write(const std::string& path) const;  // throws Error on I/O failure

 private:
  struct PendingTensor {
    std::string name;
    std::vector<int64_t> dims;
    TensorType type;
    std::vector<uint8_t> data;
  };
  std::vector<KeyValue> kv_;
  std::vector<PendingTensor> tensors_;
  uint32_t alignment_ = 32;
};

}  // namespace tokenscope::gguf
