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
  // 36 is I2_S as microsoft/BitNet and ik_llama.cpp number it; llama.cpp once used 36 for IQ4_NL_4_4, since
  // retired, and never writes it now (formats/ternary/ternary.h).
  I2_S = 36, MXFP4 = 39,
  IQ2_BN = 135,  // ik_llama.cpp's
};

// Type ids are below this bound (ik_llama.cpp numbers its own types from 133 up; IQ2_BN is 135).
constexpr uint32_t kMaxTypeId = 136;

using DequantizeRowFn = void (*)(const void* src, float* dst, int64_t n);
using QuantizeRowFn = void (*)(const float* src, void* dst, int64_t n);
using QuantizeTensorFn = void (*)(const float* src, void* dst, int64_t rows, int64_t cols);

struct TypeTraits {
  TensorType type;
  const char* name;       // "Q4_K", as llama.cpp prints it
  int64_t block_size;     // elements per block (1 for plain types)
  size_t type_size;       // bytes per block
  bool known;             // a type id tokenscope knows the layout of (it may still lack a dequantizer)
  DequantizeRowFn dequantize_row;  // scalar reference; null if unsupported
  QuantizeRowFn quantize_row;      // scalar reference; null if unsupported (or quantized per tensor)
  size_t row_meta = 0;      // bytes before each row's blocks (IQ2_BN: the row's float scale)
  size_t tensor_extra = 0;  // bytes after the last row (I2_S: the tensor's float scale, padded to 32)
  // The scale of the whole tensor, read from its bytes (I2_S); null: none. Rows dequantize without it.
  float (*tensor_scale)(const void* data, int64_t n_elements) = nullptr;
  // Quantizes a whole tensor (formats with a per-tensor scale); null: row by row.
  QuantizeTensorFn quantize_tensor = nullptr;
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

// TQ1_0, TQ2_0, I2_S, IQ2_BN: weights in {-1, 0, 1} times a scale (formats/ternary/ternary.h).
bool is_ternary(TensorType t);

// Bytes of a row of n elements; n must be a multiple of the block size (checked by callers with a user-facing error).
size_t row_size(TensorType t, int64_t n);
// Bytes of a tensor of `rows` rows of n elements: its rows, then the format's per-tensor bytes (I2_S's scale).
size_t tensor_bytes(TensorType t, int64_t n, int64_t rows);

// Convenience wrappers over the traits; throw tokenscope::Error naming the type if unsupported
// or if n is not a multiple of the block size.
void dequantize_row(TensorType t, const void* src, float* dst, int64_t n);
void quantize_row(TensorType t, const float* src, void* dst, int64_t n);
// Quantizes rows x n elements into tensor_bytes(t, n, rows) bytes: row by row, or at once for a per-tensor format.
void quantize_tensor(TensorType t, const float* src, void* dst, int64_t rows, int64_t n);
// The tensor's per-tensor scale (1 for formats without one).
float tensor_scale(TensorType t, const void* data, int64_t n_elements);

}  // namespace tokenscope
