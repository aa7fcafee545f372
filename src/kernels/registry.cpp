#include "kernels/registry.h"

#include "base/error.h"
#include "kernels/kernels_internal.h"

namespace tokenscope::kernels::detail {

using T = TensorType;

// The registered formats, one line each: the type and the stem of its installers' names (install_<stem>_scalar,
// _avx2, _avx512, _neon, each defined in a file compiled with that ISA's flags). Installation follows this order.
#define TS_FORMATS(X)   \
  X(T::F32, f32)        \
  X(T::F16, f16)        \
  X(T::BF16, bf16)      \
  X(T::Q4_0, q4_0)      \
  X(T::Q4_1, q4_1)      \
  X(T::Q8_0, q8_0)      \
  X(T::Q4_K, q4_k)      \
  X(T::Q5_K, q5_k)      \
  X(T::Q6_K, q6_k)      \
  X(T::TQ1_0, tq1_0)    \
  X(T::TQ2_0, tq2_0)    \
  X(T::I2_S, i2_s)      \
  X(T::IQ2_BN, iq2_bn)

// An installer compiled only into builds for its architecture; elsewhere the entry is null.
#if defined(TS_HAVE_X86)
#define TS_X86(f) f
#else
#define TS_X86(f) nullptr
#endif
#if defined(TS_HAVE_ARM)
#define TS_ARM(f) f
#else
#define TS_ARM(f) nullptr
#endif

#define TS_DECLARE(type, fmt)                \
  void install_##fmt##_scalar(KernelTable&); \
  void install_##fmt##_avx2(KernelTable&);   \
  void install_##fmt##_avx512(KernelTable&); \
  void install_##fmt##_neon(KernelTable&);
#define TS_ENTRY(type, fmt) \
  {type, install_##fmt##_scalar, TS_X86(install_##fmt##_avx2), TS_X86(install_##fmt##_avx512), TS_ARM(install_##fmt##_neon)},

TS_FORMATS(TS_DECLARE)

namespace {
const FormatRegistration kFormats[] = {TS_FORMATS(TS_ENTRY)};
}  // namespace

std::span<const FormatRegistration> registered_formats() { return kFormats; }

void install_formats(KernelTable& t) {
  for (const FormatRegistration& f : kFormats) {
    TS_CHECK_MSG(static_cast<uint32_t>(f.type) < kMaxTypeId, "format id %u past the table", static_cast<unsigned>(f.type));
    f.scalar(t);
    const WeightKernels& k = t.for_type(f.type);
    TS_CHECK_MSG(k.supported && k.act.row_bytes && k.act.quantize && k.vec_dot,
                 "format %s: its scalar installer left the activation layout or the dot product unset",
                 type_name(f.type));
    if ((t.isa == Isa::avx2 || t.isa == Isa::avx512) && f.avx2) f.avx2(t);
    if (t.isa == Isa::avx512 && f.avx512) f.avx512(t);
    if (t.isa == Isa::neon && f.neon) f.neon(t);
  }
}

}  // namespace tokenscope::kernels::detail
