#include "gguf/inspect.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>

#include "base/error.h"

namespace tokenscope::gguf {

namespace {

std::string human_bytes(uint64_t b) {
  if (b >= (uint64_t{1} << 30)) return strfmt("%.2f GiB", static_cast<double>(b) / (1 << 30));
  if (b >= (uint64_t{1} << 20)) return strfmt("%.2f MiB", static_cast<double>(b) / (1 << 20));
  if (b >= (uint64_t{1} << 10)) return strfmt("%.1f KiB", static_cast<double>(b) / (1 << 10));
  return strfmt("%llu B", static_cast<unsigned long long>(b));
}

std::string dims_string(const TensorInfo& t) {
  std::string s = "[";
  for (size_t d = 0; d < t.dims.size(); ++d) s += (d ? ", " : "") + std::to_string(t.dims[d]);
  return s + "]";
}

}  // namespace

void print_inspect(const File& f, FILE* out, bool all) {
  std::fprintf(out, "file:        %s\n", f.path().c_str());
  std::fprintf(out, "gguf:        version %u, %s, alignment %llu, data at byte %llu\n", f.version(),
               human_bytes(f.file_size()).c_str(), static_cast<unsigned long long>(f.alignment()),
               static_cast<unsigned long long>(f.data_offset()));
  std::fprintf(out, "\nmetadata (%zu keys):\n", f.metadata().size());
  size_t key_w = 0;
  for (const KeyValue& kv : f.metadata()) key_w = std::max(key_w, kv.key.size());
  key_w = std::min<size_t>(key_w, 48);
  for (const KeyValue& kv : f.metadata()) {
    std::string type = value_type_name(kv.value.type);
    std::fprintf(out, "  %-*s %-4s %s\n", static_cast<int>(key_w), kv.key.c_str(), type.c_str(),
                 kv.value.to_string(all ? SIZE_MAX : 8).c_str());
  }

  std::fprintf(out, "\ntensors (%zu):\n", f.tensors().size());
  size_t name_w = 4;
  for (const TensorInfo& t : f.tensors()) name_w = std::max(name_w, t.name.size());
  std::fprintf(out, "  %5s  %-*s %-8s %-22s %12s %12s\n", "#", static_cast<int>(name_w), "name", "type", "shape",
               "elements", "bytes");
  std::map<std::string, std::pair<uint64_t, uint64_t>> per_type;  // name -> (count, bytes)
  uint64_t total_bytes = 0;
  int64_t total_elems = 0;
  for (size_t i = 0; i < f.tensors().size(); ++i) {
    const TensorInfo& t = f.tensors()[i];
    std::fprintf(out, "  %5zu  %-*s %-8s %-22s %12lld %12s\n", i, static_cast<int>(name_w), t.name.c_str(),
                 type_name(t.type), dims_string(t).c_str(), static_cast<long long>(t.n_elements),
                 human_bytes(t.size_bytes).c_str());
    auto& pt = per_type[type_name(t.type)];
    pt.first += 1;
    pt.second += t.size_bytes;
    total_bytes += t.size_bytes;
    total_elems += t.n_elements;
  }
  std::fprintf(out, "\ntotal: %lld parameters, %s of tensor data", static_cast<long long>(total_elems),
               human_bytes(total_bytes).c_str());
  if (total_elems > 0)
    std::fprintf(out, " (%.2f bits per weight)", 8.0 * static_cast<double>(total_bytes) / static_cast<double>(total_elems));
  std::fprintf(out, "\n");
  for (const auto& [name, cb] : per_type)
    std::fprintf(out, "  %-8s %4llu tensors  %s\n", name.c_str(), static_cast<unsigned long long>(cb.first),
                 human_bytes(cb.second).c_str());
}

}  // namespace tokenscope::gguf
