#include "formats/tensor_type.h"

#include <array>
#include <cctype>
#include <string>

#include "base/error.h"
#include "formats/quant_ref.h"
#include "formats/ternary/ternary.h"

namespace tokenscope {

namespace {

using T = TensorType;

// Block sizes and bytes per block are facts of the ggml formats (ggml.c type_traits).
constexpr TypeTraits kTraits[] = {
    {T::F32, "F32", 1, 4, true, dequantize_row_f32, quantize_row_f32},
    {T::F16, "F16", 1, 2, true, dequantize_row_f16, quantize_row_f16},
    {T::Q4_0, "Q4_0", 32, 18, true, dequantize_row_q4_0, quantize_row_q4_0},
    {T::Q4_1, "Q4_1", 32, 20, true, dequantize_row_q4_1, quantize_row_q4_1},
    {T::Q5_0, "Q5_0", 32, 22, true, dequantize_row_q5_0, nullptr},
    {T::Q5_1, "Q5_1", 32, 24, true, dequantize_row_q5_1, nullptr},
    {T::Q8_0, "Q8_0", 32, 34, true, dequantize_row_q8_0, quantize_row_q8_0},
    {T::Q8_1, "Q8_1", 32, 36, true, dequantize_row_q8_1, quantize_row_q8_1},
    {T::Q2_K, "Q2_K", 256, 84, true, dequantize_row_q2_k, nullptr},
    {T::Q3_K, "Q3_K", 256, 110, true, dequantize_row_q3_k, nullptr},
    {T::Q4_K, "Q4_K", 256, 144, true, dequantize_row_q4_k, quantize_row_q4_k},
    {T::Q5_K, "Q5_K", 256, 176, true, dequantize_row_q5_k, quantize_row_q5_k},
    {T::Q6_K, "Q6_K", 256, 210, true, dequantize_row_q6_k, quantize_row_q6_k},
    {T::Q8_K, "Q8_K", 256, 292, true, dequantize_row_q8_k, quantize_row_q8_k},
    {T::IQ2_XXS, "IQ2_XXS", 256, 66, true, nullptr, nullptr},
    {T::IQ2_XS, "IQ2_XS", 256, 74, true, nullptr, nullptr},
    {T::IQ3_XXS, "IQ3_XXS", 256, 98, true, nullptr, nullptr},
    {T::IQ1_S, "IQ1_S", 256, 50, true, nullptr, nullptr},
    {T::IQ4_NL, "IQ4_NL", 32, 18, true, nullptr, nullptr},
    {T::IQ3_S, "IQ3_S", 256, 110, true, nullptr, nullptr},
    {T::IQ2_S, "IQ2_S", 256, 82, true, nullptr, nullptr},
    {T::IQ4_XS, "IQ4_XS", 256, 136, true, nullptr, nullptr},
    {T::I8, "I8", 1, 1, true, nullptr, nullptr},
    {T::I16, "I16", 1, 2, true, nullptr, nullptr},
    {T::I32, "I32", 1, 4, true, nullptr, nullptr},
    {T::I64, "I64", 1, 8, true, nullptr, nullptr},
    {T::F64, "F64", 1, 8, true, nullptr, nullptr},
    {T::IQ1_M, "IQ1_M", 256, 56, true, nullptr, nullptr},
    {T::BF16, "BF16", 1, 2, true, dequantize_row_bf16, quantize_row_bf16},
    {T::TQ1_0, "TQ1_0", 256, 54, true, dequantize_row_tq1_0, quantize_row_tq1_0},
    {T::TQ2_0, "TQ2_0", 256, 66, true, dequantize_row_tq2_0, quantize_row_tq2_0},
    {T::I2_S, "I2_S", QK_I2_S, 32, true, dequantize_row_i2_s, nullptr, 0, kI2STensorExtra, i2_s_tensor_scale,
     quantize_tensor_i2_s},
    {T::MXFP4, "MXFP4", 32, 17, true, nullptr, nullptr},
    {T::IQ2_BN, "IQ2_BN", QK_IQ2_BN, 16, true, dequantize_row_iq2_bn, quantize_row_iq2_bn, kIQ2BNRowMeta},
};

constexpr uint32_t kMaxId = kMaxTypeId;

constexpr std::array<int, kMaxId> build_index() {
  std::array<int, kMaxId> idx{};
  for (auto& v : idx) v = -1;
  for (size_t i = 0; i < sizeof(kTraits) / sizeof(kTraits[0]); ++i)
    idx[static_cast<uint32_t>(kTraits[i].type)] = static_cast<int>(i);
  return idx;
}
constexpr std::array<int, kMaxId> kIndex = build_index();

}  // namespace

std::optional<TypeTraits> type_traits_for_id(uint32_t id) {
  if (id >= kMaxId || kIndex[id] < 0) return std::nullopt;
  return kTraits[kIndex[id]];
}

const char* retired_type_name(uint32_t id) {
  switch (id) {
    case 4: return "Q4_2";
    case 5: return "Q4_3";
    case 31: return "Q4_0_4_4";
    case 32: return "Q4_0_4_8";
    case 33: return "Q4_0_8_8";
    case 37: return "IQ4_NL_4_8";
    case 38: return "IQ4_NL_8_8";
    default: return nullptr;
  }
}

const TypeTraits& type_traits(TensorType t) {
  const auto id = static_cast<uint32_t>(t);
  TS_CHECK_MSG(id < kMaxId && kIndex[id] >= 0, "unknown tensor type id %u", id);
  return kTraits[kIndex[id]];
}

const char* type_name(TensorType t) {
  const auto id = static_cast<uint32_t>(t);
  if (id >= kMaxId || kIndex[id] < 0) return "UNKNOWN";
  return kTraits[kIndex[id]].name;
}

std::optional<TensorType> type_from_name(std::string_view name) {
  for (const TypeTraits& tr : kTraits) {
    const std::string_view n = tr.name;
    if (n.size() != name.size()) continue;
    bool eq = true;
    for (size_t i = 0; i < n.size() && eq; ++i)
      eq = std::toupper(static_cast<unsigned char>(name[i])) == static_cast<unsigned char>(n[i]);
    if (eq) return tr.type;
  }
  return std::nullopt;
}

bool is_ternary(TensorType t) {
  return t == TensorType::TQ1_0 || t == TensorType::TQ2_0 || t == TensorType::I2_S || t == TensorType::IQ2_BN;
}

size_t row_size(TensorType t, int64_t n) {
  const TypeTraits& tr = type_traits(t);
  TS_CHECK_MSG(n >= 0 && n % tr.block_size == 0, "%s row of %lld elements is not a multiple of the block size %lld",
               tr.name, static_cast<long long>(n), static_cast<long long>(tr.block_size));
  return tr.row_meta + static_cast<size_t>(n / tr.block_size) * tr.type_size;
}

size_t tensor_bytes(TensorType t, int64_t n, int64_t rows) {
  return row_size(t, n) * static_cast<size_t>(rows) + type_traits(t).tensor_extra;
}

static const TypeTraits& checked_traits(TensorType t, int64_t n, const char* what) {
  const auto id = static_cast<uint32_t>(t);
  if (id >= kMaxId || kIndex[id] < 0) fail("unknown tensor type id %u", id);
  const TypeTraits& tr = kTraits[kIndex[id]];
  if (n < 0 || n % tr.block_size != 0)
    fail("cannot %s a %s row of %lld elements: not a multiple of the block size %lld", what, tr.name,
         static_cast<long long>(n), static_cast<long long>(tr.block_size));
  return tr;
}

void dequantize_row(TensorType t, const void* src, float* dst, int64_t n) {
  const TypeTraits& tr = checked_traits(t, n, "dequantize");
  if (!tr.dequantize_row) fail("unsupported type %s: tokenscope cannot dequantize it", tr.name);
  tr.dequantize_row(src, dst, n);
}

void quantize_row(TensorType t, const float* src, void* dst, int64_t n) {
  const TypeTraits& tr = checked_traits(t, n, "quantize");
  if (!tr.quantize_row) {
    if (tr.quantize_tensor) fail("type %s has one scale per tensor: quantize whole tensors to it, not rows", tr.name);
    fail("unsupported type %s: tokenscope cannot quantize to it", tr.name);
  }
  tr.quantize_row(src, dst, n);
}

void quantize_tensor(TensorType t, const float* src, void* dst, int64_t rows, int64_t n) {
  const TypeTraits& tr = checked_traits(t, n, "quantize");
  if (tr.quantize_tensor) {
    tr.quantize_tensor(src, dst, rows, n);
    return;
  }
  const size_t rb = row_size(t, n);
  for (int64_t r = 0; r < rows; ++r) quantize_row(t, src + r * n, static_cast<uint8_t*>(dst) + static_cast<size_t>(r) * rb, n);
}

float tensor_scale(TensorType t, const void* data, int64_t n_elements) {
  const TypeTraits& tr = type_traits(t);
  return tr.tensor_scale ? tr.tensor_scale(data, n_elements) : 1.0f;
}

}  // namespace tokenscope
