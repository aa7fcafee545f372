// Tensor element types: ids as in GGUF files, per-type traits, scalar reference (de)quantization.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace tokenscope {

// Values are the type ids stored in GGUF tensor infos.
enum class TensorType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23,
  I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30, TQ1_0 = 34, TQ2_0 = 35,
  MXFP4 = 39,
};

// Type ids are below this bound (ik_llama.cpp numbers its own types from 133 up).
constexpr uint32_t kMaxTypeId = 136;

using DequantizeRowFn = void (*)(const void* src, float* dst, int64_t n);
using QuantizeRowFn = void (*)(const float* src, void* dst, int64_t n);

struct TypeTraits {
  TensorType type;
  const char* name;       // "Q4_K", as llama.cpp prints it
  int64_t block_size;     // elements per block (1 for plain types)
  size_t type_size;       // bytes per block
  bool known;             // a type id tokenscope knows the layout of (it may still lack a dequantizer)
  DequantizeRowFn dequantize_row;  // scalar reference; null if unsupported
  QuantizeRowFn quantize_row;      // scalar reference; null if unsupported
};

// Traits for a type id read from a file; nullopt for an id no GGUF version defines.
std::optional<TypeTraits> type_traits_for_id(uint32_t id);
// Name of a type id ggml once defined and has since removed (4, 5, 31-33, 36-38), else nullptr.
const char* retired_type_name(uint32_t id);
// Traits of a known type (every enumerator is known; some have no (de)quantizer: see the traits).
const TypeTraits& type_traits(TensorType t);
const char* type_name(TensorType t);
// Parses "q4_0", "Q4_K", "f16", ... (case-insensitive); nullopt if unknown.
std::optional<TensorType> type_from_name(std::string_view name);

// Bytes of a row of n elements; n must be a multiple of the block size (checked by callers with a user-facing error).
size_t row_size(TensorType t, int64_t n);

// Convenience wrappers over the traits; throw tokenscope::Error naming the type if unsupported
// or if n is not a multiple of the block size.
void dequantize_row(TensorType t, const void* src, float* dst, int64_t n);
void quantize_row(TensorType t, const float* src, void* dst, int64_t n);

}  // namespace tokenscope
