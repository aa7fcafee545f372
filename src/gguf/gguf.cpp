// GGUF reader and writer. Format facts (GGUF v2/v3): little-endian; header = magic "GGUF", u32 version,
// u64 tensor count, u64 metadata count; metadata = (string key, u32 type, value)*; strings are u64 length +
// bytes; arrays are u32 element type + u64 count + items; tensor infos = (string name, u32 n_dims,
// u64 dims[n_dims], u32 type, u64 offset)*; the data section starts at the next multiple of
// general.alignment (default 32) and tensor offsets are relative to it.
#include "gguf/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <unordered_set>

#include "base/error.h"

namespace tokenscope::gguf {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as little-endian u32
constexpr int kMaxDims = 4;
constexpr int kMaxArrayDepth = 8;
constexpr uint64_t kMaxStringLen = uint64_t{1} << 30;

size_t scalar_size(ValueType t) {
  switch (t) {
    case ValueType::UINT8: case ValueType::INT8: case ValueType::BOOL: return 1;
    case ValueType::UINT16: case ValueType::INT16: return 2;
    case ValueType::UINT32: case ValueType::INT32: case ValueType::FLOAT32: return 4;
    case ValueType::UINT64: case ValueType::INT64: case ValueType::FLOAT64: return 8;
    case ValueType::STRING: return 8;   // at least the length field
    case ValueType::ARRAY: return 12;   // at least type + count
  }
  return 0;
}

bool valid_value_type(uint32_t t) { return t <= static_cast<uint32_t>(ValueType::FLOAT64); }

std::string printable(const uint8_t* p, size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s += (p[i] >= 32 && p[i] < 127) ? static_cast<char>(p[i]) : '?';
  return s;
}

}  // namespace

const char* value_type_name(ValueType t) {
  switch (t) {
    case ValueType::UINT8: return "u8";
    case ValueType::INT8: return "i8";
    case ValueType::UINT16: return "u16";
    case ValueType::INT16: return "i16";
    case ValueType::UINT32: return "u32";
    case ValueType::INT32: return "i32";
    case ValueType::FLOAT32: return "f32";
    case ValueType::BOOL: return "bool";
    case ValueType::STRING: return "str";
    case ValueType::ARRAY: return "arr";
    case ValueType::UINT64: return "u64";
    case ValueType::INT64: return "i64";
    case ValueType::FLOAT64: return "f64";
  }
  return "?";
}

bool Value::is_integer() const {
  switch (type) {
    case ValueType::UINT8: case ValueType::INT8: case ValueType::UINT16: case ValueType::INT16:
    case ValueType::UINT32: case ValueType::INT32: case ValueType::UINT64: case ValueType::INT64:
      return true;
    default:
      return false;
  }
}

bool Value::is_float() const { return type == ValueType::FLOAT32 || type == ValueType::FLOAT64; }

static bool is_unsigned(ValueType t) {
  return t == ValueType::UINT8 || t == ValueType::UINT16 || t == ValueType::UINT32 || t == ValueType::UINT64 ||
         t == ValueType::BOOL;
}

static std::string quote(const std::string& s, size_t max_len) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size() && i < max_len; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c == '\r') out += "\\r";
    else if (c == '"') out += "\\\"";
    else if (c == '\\') out += "\\\\";
    else if (c < 32) out += strfmt("\\x%02x", c);
    else out += static_cast<char>(c);
  }
  if (s.size() > max_len) out += "...";
  return out + "\"";
}

std::string Value::to_string(size_t max_items) const {
  switch (type) {
    case ValueType::BOOL: return u ? "true" : "false";
    case ValueType::STRING: return quote(s, max_items == SIZE_MAX ? SIZE_MAX : 120);
    case ValueType::FLOAT32: case ValueType::FLOAT64: return strfmt("%g", f);
    case ValueType::ARRAY: {
      std::string out = strfmt("[%s x %zu]", value_type_name(elem_type), items.size());
      if (items.empty()) return out;
      out += " [";
      for (size_t k = 0; k < items.size() && k < max_items; ++k) {
        if (k) out += ", ";
        out += items[k].to_string(max_items);
      }
      if (items.size() > max_items) out += ", ...";
      return out + "]";
    }
    default:
      return is_unsigned(type) ? strfmt("%llu", static_cast<unsigned long long>(u))
                               : strfmt("%lld", static_cast<long long>(i));
  }
}

// ------------------------------------------------------------------------------------------------
// Parsing

class Parser {
 public:
  Parser(File& f) : f_(f), p_(f.base_), size_(f.size_) {}

  void parse() {
    field_ = "header";
    const uint32_t magic = u32();
    if (magic != kMagic) {
      fail("%s: not a GGUF file: magic is '%s' (bytes %02x %02x %02x %02x), expected 'GGUF'", f_.path_.c_str(),
           printable(f_.base_, 4).c_str(), f_.base_[0], f_.base_[1], f_.base_[2], f_.base_[3]);
    }
    field_ = "header.version";
    f_.version_ = u32();
    if (f_.version_ == 1) fail("%s: GGUF version 1 is not supported (only 2 and 3)", f_.path_.c_str());
    if (f_.version_ != 2 && f_.version_ != 3)
      fail("%s: unsupported GGUF version %u (expected 2 or 3)", f_.path_.c_str(), f_.version_);
    field_ = "header.tensor_count";
    const uint64_t n_tensors = u64();
    field_ = "header.metadata_kv_count";
    const uint64_t n_kv = u64();
    // Each tensor info takes at least 8 + 4 + 4 + 8 bytes and each key/value at least 8 + 4 + 1.
    if (n_tensors > remaining() / 24)
      fail("%s: header.tensor_count %llu is impossible for a file of %llu bytes", f_.path_.c_str(),
           static_cast<unsigned long long>(n_tensors), static_cast<unsigned long long>(size_));
    if (n_kv > remaining() / 13)
      fail("%s: header.metadata_kv_count %llu is impossible for a file of %llu bytes", f_.path_.c_str(),
           static_cast<unsigned long long>(n_kv), static_cast<unsigned long long>(size_));

    std::unordered_set<std::string> keys;
    f_.kv_.reserve(n_kv);
    for (uint64_t k = 0; k < n_kv; ++k) {
      field_ = strfmt("metadata[%llu].key", static_cast<unsigned long long>(k));
      KeyValue kv;
      kv.key = str();
      if (!keys.insert(kv.key).second) fail("%s: metadata key '%s' appears twice", f_.path_.c_str(), kv.key.c_str());
      field_ = "metadata '" + kv.key + "'";
      const uint32_t t = u32();
      if (!valid_value_type(t)) fail("%s: %s has unknown value type %u", f_.path_.c_str(), field_.c_str(), t);
      kv.value = value(static_cast<ValueType>(t), 0);
      f_.kv_.push_back(std::move(kv));
    }

    f_.alignment_ = 32;
    if (const Value* a = f_.find("general.alignment")) {
      if (!a->is_integer() || a->type == ValueType::INT8 || a->type == ValueType::UINT8)
        fail("%s: metadata 'general.alignment' has type %s, expected u32", f_.path_.c_str(),
             value_type_name(a->type));
      const uint64_t al = is_unsigned(a->type) ? a->u : static_cast<uint64_t>(a->i);
      if (al == 0 || (al & (al - 1)) != 0 || al > (1u << 20))
        fail("%s: metadata 'general.alignment' is %llu, expected a power of two up to 1 MiB", f_.path_.c_str(),
             static_cast<unsigned long long>(al));
      f_.alignment_ = al;
    }

    std::unordered_set<std::string> names;
    f_.tensors_.reserve(n_tensors);
    for (uint64_t k = 0; k < n_tensors; ++k) {
      field_ = strfmt("tensor[%llu].name", static_cast<unsigned long long>(k));
      TensorInfo t;
      t.name = str();
      if (!names.insert(t.name).second) fail("%s: tensor '%s' appears twice", f_.path_.c_str(), t.name.c_str());
      field_ = "tensor '" + t.name + "'";
      const char* path = f_.path_.c_str();
      const char* tn = t.name.c_str();
      const uint32_t n_dims = u32();
      if (n_dims == 0 || n_dims > kMaxDims) fail("%s: tensor '%s' has %u dimensions (expected 1 to 4)", path, tn, n_dims);
      int64_t n = 1;
      for (uint32_t d = 0; d < n_dims; ++d) {
        const uint64_t ne = u64();
        if (ne == 0 || ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
          fail("%s: tensor '%s' dimension %u is %llu", path, tn, d, static_cast<unsigned long long>(ne));
        if (__builtin_mul_overflow(n, static_cast<int64_t>(ne), &n))
          fail("%s: tensor '%s' element count overflows (dimension %u is %llu)", path, tn, d,
               static_cast<unsigned long long>(ne));
        t.dims.push_back(static_cast<int64_t>(ne));
      }
      t.n_elements = n;
      const uint32_t type_id = u32();
      const auto traits = type_traits_for_id(type_id);
      if (!traits) {
        if (const char* old = retired_type_name(type_id))
          fail("%s: tensor '%s' has type %s (id %u), which GGUF no longer defines; re-convert the model", path, tn,
               old, type_id);
        fail("%s: tensor '%s' has unknown type id %u", path, tn, type_id);
      }
      t.type = traits->type;
      if (t.dims[0] % traits->block_size != 0)
        fail("%s: tensor '%s' row length %lld is not a multiple of the %s block size %lld", path, tn,
             static_cast<long long>(t.dims[0]), traits->name, static_cast<long long>(traits->block_size));
      // Rows of blocks, each after its row_meta bytes, then the type's per-tensor bytes (I2_S's scale).
      const uint64_t blocks = static_cast<uint64_t>(n / traits->block_size);
      const uint64_t rows = static_cast<uint64_t>(n / t.dims[0]);
      uint64_t meta = 0;
      if (__builtin_mul_overflow(blocks, static_cast<uint64_t>(traits->type_size), &t.size_bytes) ||
          __builtin_mul_overflow(rows, static_cast<uint64_t>(traits->row_meta), &meta) ||
          __builtin_add_overflow(t.size_bytes, meta + traits->tensor_extra, &t.size_bytes))
        fail("%s: tensor '%s' byte size overflows", path, tn);
      t.offset = u64();
      if (t.offset % f_.alignment_ != 0)
        fail("%s: tensor '%s' offset %llu is not a multiple of the alignment %llu", path, tn,
             static_cast<unsigned long long>(t.offset), static_cast<unsigned long long>(f_.alignment_));
      f_.tensors_.push_back(std::move(t));
    }

    // Data section.
    uint64_t pos = static_cast<uint64_t>(p_ - f_.base_);
    const uint64_t pad = (f_.alignment_ - pos % f_.alignment_) % f_.alignment_;
    f_.data_offset_ = pos + pad;
    if (!f_.tensors_.empty() && f_.data_offset_ > size_)
      fail("%s: data section would start at byte %llu, past the end of the file (%llu bytes)", f_.path_.c_str(),
           static_cast<unsigned long long>(f_.data_offset_), static_cast<unsigned long long>(size_));
    const uint64_t data_size = f_.data_offset_ <= size_ ? size_ - f_.data_offset_ : 0;
    for (const TensorInfo& t : f_.tensors_) {
      uint64_t end;
      if (__builtin_add_overflow(t.offset, t.size_bytes, &end) || end > data_size)
        fail("%s: tensor '%s' data (offset %llu, %llu bytes) runs past the end of the file (data section has %llu "
             "bytes): the file is truncated or corrupt",
             f_.path_.c_str(), t.name.c_str(), static_cast<unsigned long long>(t.offset),
             static_cast<unsigned long long>(t.size_bytes), static_cast<unsigned long long>(data_size));
    }
  }

 private:
  uint64_t remaining() const { return size_ - static_cast<uint64_t>(p_ - f_.base_); }

  void need(uint64_t n) {
    if (n > remaining())
      fail("%s: file ends inside %s (at byte %llu of %llu; %llu more bytes needed): the file is truncated",
           f_.path_.c_str(), field_.c_str(), static_cast<unsigned long long>(p_ - f_.base_),
           static_cast<unsigned long long>(size_), static_cast<unsigned long long>(n));
  }
  template <typename T>
  T read() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, p_, sizeof(T));
    p_ += sizeof(T);
    return v;
  }
  uint32_t u32() { return read<uint32_t>(); }
  uint64_t u64() { return read<uint64_t>(); }

  std::string str() {
    const uint64_t n = u64();
    if (n > kMaxStringLen)
      fail("%s: %s: string length %llu is absurd", f_.path_.c_str(), field_.c_str(), static_cast<unsigned long long>(n));
    need(n);
    std::string s(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return s;
  }

  Value value(ValueType t, int depth) {
    Value v;
    v.type = t;
    switch (t) {
      case ValueType::UINT8: v.u = read<uint8_t>(); break;
      case ValueType::INT8: v.i = read<int8_t>(); break;
      case ValueType::UINT16: v.u = read<uint16_t>(); break;
      case ValueType::INT16: v.i = read<int16_t>(); break;
      case ValueType::UINT32: v.u = read<uint32_t>(); break;
      case ValueType::INT32: v.i = read<int32_t>(); break;
      case ValueType::UINT64: v.u = read<uint64_t>(); break;
      case ValueType::INT64: v.i = read<int64_t>(); break;
      case ValueType::FLOAT32: v.f = read<float>(); break;
      case ValueType::FLOAT64: v.f = read<double>(); break;
      case ValueType::BOOL: {
        const uint8_t b = read<uint8_t>();
        if (b > 1) fail("%s: %s: bool value is %u (expected 0 or 1)", f_.path_.c_str(), field_.c_str(), b);
        v.u = b;
        break;
      }
      case ValueType::STRING: v.s = str(); break;
      case ValueType::ARRAY: {
        if (depth >= kMaxArrayDepth)
          fail("%s: %s: arrays nested deeper than %d levels", f_.path_.c_str(), field_.c_str(), kMaxArrayDepth);
        const uint32_t et = u32();
        if (!valid_value_type(et))
          fail("%s: %s: array has unknown element type %u", f_.path_.c_str(), field_.c_str(), et);
        v.elem_type = static_cast<ValueType>(et);
        const uint64_t n = u64();
        if (n > remaining() / scalar_size(v.elem_type))
          fail("%s: %s: array count %llu does not fit in the %llu bytes left in the file", f_.path_.c_str(),
               field_.c_str(), static_cast<unsigned long long>(n), static_cast<unsigned long long>(remaining()));
        v.items.reserve(n);
        for (uint64_t k = 0; k < n; ++k) v.items.push_back(value(v.elem_type, depth + 1));
        break;
      }
    }
    return v;
  }

  File& f_;
  const uint8_t* p_;
  uint64_t size_;
  std::string field_;
};

std::unique_ptr<File> File::open(const std::string& path, const LoadOptions& load) {
  std::unique_ptr<File> f(new File());
  f->path_ = path;
  f->image_ = FileImage::load(path, load);
  f->size_ = f->image_.size();
  f->base_ = f->image_.data();
  if (f->size_ < 24)
    fail("%s: file is %llu bytes, too short for a GGUF header (24 bytes): not a GGUF file or truncated", path.c_str(),
         static_cast<unsigned long long>(f->size_));
  Parser(*f).parse();
  return f;
}

File::~File() = default;

const Value* File::find(std::string_view key) const {
  for (const KeyValue& kv : kv_)
    if (kv.key == key) return &kv.value;
  return nullptr;
}

namespace {

[[noreturn]] void missing(const std::string& path, std::string_view key) {
  fail("%s: metadata key '%.*s' is missing", path.c_str(), static_cast<int>(key.size()), key.data());
}
[[noreturn]] void wrong_type(const std::string& path, std::string_view key, const Value& v, const char* expected) {
  std::string got = value_type_name(v.type);
  if (v.type == ValueType::ARRAY) got += strfmt(" of %s", value_type_name(v.elem_type));
  fail("%s: metadata key '%.*s' has type %s, expected %s", path.c_str(), static_cast<int>(key.size()), key.data(),
       got.c_str(), expected);
}

bool int_of(const Value& v, int64_t* out) {
  if (!v.is_integer() && v.type != ValueType::BOOL) return false;
  if (is_unsigned(v.type)) {
    if (v.u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
    *out = static_cast<int64_t>(v.u);
  } else {
    *out = v.i;
  }
  return true;
}

}  // namespace

std::optional<std::string> File::opt_string(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != ValueType::STRING) wrong_type(path_, key, *v, "str");
  return v->s;
}

std::optional<int64_t> File::opt_int(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  int64_t r;
  if (!v->is_integer() || !int_of(*v, &r)) wrong_type(path_, key, *v, "an integer that fits in i64");
  return r;
}

std::optional<double> File::opt_float(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  if (v->is_float()) return v->f;
  int64_t r;
  if (v->is_integer() && int_of(*v, &r)) return static_cast<double>(r);
  wrong_type(path_, key, *v, "f32");
}

std::optional<bool> File::opt_bool(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != ValueType::BOOL) wrong_type(path_, key, *v, "bool");
  return v->u != 0;
}

std::string File::get_string(std::string_view key) const {
  auto v = opt_string(key);
  if (!v) missing(path_, key);
  return *v;
}
int64_t File::get_int(std::string_view key) const {
  auto v = opt_int(key);
  if (!v) missing(path_, key);
  return *v;
}
double File::get_float(std::string_view key) const {
  auto v = opt_float(key);
  if (!v) missing(path_, key);
  return *v;
}
bool File::get_bool(std::string_view key) const {
  auto v = opt_bool(key);
  if (!v) missing(path_, key);
  return *v;
}

std::vector<std::string> File::get_string_array(std::string_view key) const {
  const Value* v = find(key);
  if (!v) missing(path_, key);
  if (v->type != ValueType::ARRAY || v->elem_type != ValueType::STRING) wrong_type(path_, key, *v, "arr of str");
  std::vector<std::string> out;
  out.reserve(v->items.size());
  for (const Value& it : v->items) out.push_back(it.s);
  return out;
}

std::vector<float> File::get_float_array(std::string_view key) const {
  const Value* v = find(key);
  if (!v) missing(path_, key);
  if (v->type != ValueType::ARRAY || !(v->elem_type == ValueType::FLOAT32 || v->elem_type == ValueType::FLOAT64))
    wrong_type(path_, key, *v, "arr of f32");
  std::vector<float> out;
  out.reserve(v->items.size());
  for (const Value& it : v->items) out.push_back(static_cast<float>(it.f));
  return out;
}

std::vector<int64_t> File::get_int_array(std::string_view key) const {
  const Value* v = find(key);
  if (!v) missing(path_, key);
  if (v->type != ValueType::ARRAY) wrong_type(path_, key, *v, "arr of integers");
  std::vector<int64_t> out;
  out.reserve(v->items.size());
  for (const Value& it : v->items) {
    int64_t r;
    if (!it.is_integer() || !int_of(it, &r)) wrong_type(path_, key, *v, "arr of integers");
    out.push_back(r);
  }
  return out;
}

const TensorInfo* File::find_tensor(std::string_view name) const {
  for (const TensorInfo& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

const TensorInfo& File::tensor(std::string_view name) const {
  const TensorInfo* t = find_tensor(name);
  if (!t) fail("%s: tensor '%.*s' is missing", path_.c_str(), static_cast<int>(name.size()), name.data());
  return *t;
}

// ------------------------------------------------------------------------------------------------
// Writer

namespace {

void put_bytes(std::vector<uint8_t>& out, const void* p, size_t n) {
  const auto* b = static_cast<const uint8_t*>(p);
  out.insert(out.end(), b, b + n);
}
template <typename T>
void put(std::vector<uint8_t>& out, T v) {
  put_bytes(out, &v, sizeof(T));
}
void put_str(std::vector<uint8_t>& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  put_bytes(out, s.data(), s.size());
}

void put_value(std::vector<uint8_t>& out, const Value& v) {
  switch (v.type) {
    case ValueType::UINT8: put<uint8_t>(out, static_cast<uint8_t>(v.u)); break;
    case ValueType::INT8: put<int8_t>(out, static_cast<int8_t>(v.i)); break;
    case ValueType::UINT16: put<uint16_t>(out, static_cast<uint16_t>(v.u)); break;
    case ValueType::INT16: put<int16_t>(out, static_cast<int16_t>(v.i)); break;
    case ValueType::UINT32: put<uint32_t>(out, static_cast<uint32_t>(v.u)); break;
    case ValueType::INT32: put<int32_t>(out, static_cast<int32_t>(v.i)); break;
    case ValueType::UINT64: put<uint64_t>(out, v.u); break;
    case ValueType::INT64: put<int64_t>(out, v.i); break;
    case ValueType::FLOAT32: put<float>(out, static_cast<float>(v.f)); break;
    case ValueType::FLOAT64: put<double>(out, v.f); break;
    case ValueType::BOOL: put<uint8_t>(out, v.u ? 1 : 0); break;
    case ValueType::STRING: put_str(out, v.s); break;
    case ValueType::ARRAY:
      put<uint32_t>(out, static_cast<uint32_t>(v.elem_type));
      put<uint64_t>(out, v.items.size());
      for (const Value& it : v.items) put_value(out, it);
      break;
  }
}

Value scalar(ValueType t) {
  Value v;
  v.type = t;
  return v;
}

}  // namespace

void Writer::set_value(const std::string& key, const Value& v) {
  for (KeyValue& kv : kv_) {
    if (kv.key == key) {
      kv.value = v;
      return;
    }
  }
  kv_.push_back({key, v});
}

void Writer::set_u32(const std::string& key, uint32_t x) {
  Value v = scalar(ValueType::UINT32);
  v.u = x;
  set_value(key, v);
}
void Writer::set_i32(const std::string& key, int32_t x) {
  Value v = scalar(ValueType::INT32);
  v.i = x;
  set_value(key, v);
}
void Writer::set_u64(const std::string& key, uint64_t x) {
  Value v = scalar(ValueType::UINT64);
  v.u = x;
  set_value(key, v);
}
void Writer::set_f32(const std::string& key, float x) {
  Value v = scalar(ValueType::FLOAT32);
  v.f = x;
  set_value(key, v);
}
void Writer::set_bool(const std::string& key, bool x) {
  Value v = scalar(ValueType::BOOL);
  v.u = x ? 1 : 0;
  set_value(key, v);
}
void Writer::set_string(const std::string& key, const std::string& x) {
  Value v = scalar(ValueType::STRING);
  v.s = x;
  set_value(key, v);
}
void Writer::set_string_array(const std::string& key, const std::vector<std::string>& xs) {
  Value v = scalar(ValueType::ARRAY);
  v.elem_type = ValueType::STRING;
  v.items.reserve(xs.size());
  for (const auto& x : xs) {
    Value it = scalar(ValueType::STRING);
    it.s = x;
    v.items.push_back(std::move(it));
  }
  set_value(key, v);
}
void Writer::set_f32_array(const std::string& key, const std::vector<float>& xs) {
  Value v = scalar(ValueType::ARRAY);
  v.elem_type = ValueType::FLOAT32;
  v.items.reserve(xs.size());
  for (float x : xs) {
    Value it = scalar(ValueType::FLOAT32);
    it.f = x;
    v.items.push_back(it);
  }
  set_value(key, v);
}
void Writer::set_i32_array(const std::string& key, const std::vector<int32_t>& xs) {
  Value v = scalar(ValueType::ARRAY);
  v.elem_type = ValueType::INT32;
  v.items.reserve(xs.size());
  for (int32_t x : xs) {
    Value it = scalar(ValueType::INT32);
    it.i = x;
    v.items.push_back(it);
  }
  set_value(key, v);
}

void Writer::set_alignment(uint32_t a) {
  TS_CHECK_MSG(a > 0 && (a & (a - 1)) == 0, "alignment %u is not a power of two", a);
  alignment_ = a;
  set_u32("general.alignment", a);
}

void Writer::add_tensor(const std::string& name, const std::vector<int64_t>& dims, TensorType type, const void* data,
                        size_t size_bytes) {
  TS_CHECK(!dims.empty() && dims.size() <= 4);
  int64_t rows = 1;
  for (size_t d = 1; d < dims.size(); ++d) rows *= dims[d];
  const size_t expect = tensor_bytes(type, dims[0], rows);
  TS_CHECK_MSG(size_bytes == expect, "tensor %s: %zu bytes given, %zu expected", name.c_str(), size_bytes, expect);
  PendingTensor t{name, dims, type, {}};
  t.data.assign(static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + size_bytes);
  tensors_.push_back(std::move(t));
}

std::vector<uint8_t> Writer::to_bytes() const {
  std::vector<uint8_t> out;
  put<uint32_t>(out, kMagic);
  put<uint32_t>(out, 3);
  put<uint64_t>(out, tensors_.size());
  put<uint64_t>(out, kv_.size());
  for (const KeyValue& kv : kv_) {
    put_str(out, kv.key);
    put<uint32_t>(out, static_cast<uint32_t>(kv.value.type));
    put_value(out, kv.value);
  }
  auto align = [&](uint64_t x) { return (x + alignment_ - 1) / alignment_ * alignment_; };
  uint64_t offset = 0;
  for (const PendingTensor& t : tensors_) {
    put_str(out, t.name);
    put<uint32_t>(out, static_cast<uint32_t>(t.dims.size()));
    for (int64_t d : t.dims) put<uint64_t>(out, static_cast<uint64_t>(d));
    put<uint32_t>(out, static_cast<uint32_t>(t.type));
    put<uint64_t>(out, offset);
    offset = align(offset + t.data.size());
  }
  out.resize(align(out.size()), 0);
  for (const PendingTensor& t : tensors_) {
    put_bytes(out, t.data.data(), t.data.size());
    out.resize(align(out.size()), 0);
  }
  return out;
}

void Writer::write(const std::string& path) const {
  const std::vector<uint8_t> bytes = to_bytes();
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail("%s: cannot create: %s", tmp.c_str(), std::strerror(errno));
  const size_t n = std::fwrite(bytes.data(), 1, bytes.size(), f);
  const bool ok = n == bytes.size() && std::fflush(f) == 0;
  const int e = errno;
  std::fclose(f);
  if (!ok) {
    std::remove(tmp.c_str());
    fail("%s: write failed: %s", tmp.c_str(), std::strerror(e));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e2 = errno;
    std::remove(tmp.c_str());
    fail("%s: cannot rename into place: %s", path.c_str(), std::strerror(e2));
  }
}

}  // namespace tokenscope::gguf
