// ISA detection and the process-wide kernel table.
#include "kernels/kernels.h"

#include <atomic>
#include <mutex>

#include "base/error.h"
#include "kernels/kernels_internal.h"
#include "kernels/registry.h"

#if defined(TS_HAVE_X86)
#include <cpuid.h>
#endif
#if defined(TS_HAVE_ARM)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

namespace tokenscope::kernels {

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::scalar: return "scalar";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
    case Isa::neon: return "neon";
  }
  return "?";
}

std::optional<Isa> isa_from_name(std::string_view name) {
  for (Isa i : {Isa::scalar, Isa::avx2, Isa::avx512, Isa::neon})
    if (name == isa_name(i)) return i;
  return std::nullopt;
}

namespace {

#if defined(TS_HAVE_X86)
struct X86Features {
  bool avx2 = false, fma = false, f16c = false, bmi2 = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false, avx512vnni = false;
  bool os_ymm = false, os_zmm = false;
};

X86Features detect_x86() {
  X86Features f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27);
  f.fma = c & (1u << 12);
  f.f16c = c & (1u << 29);
  if (osxsave) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    f.os_ymm = (lo & 0x6) == 0x6;
    f.os_zmm = (lo & 0xE6) == 0xE6;
  }
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
    f.avx2 = b & (1u << 5);
    f.bmi2 = b & (1u << 8);
    f.avx512f = b & (1u << 16);
    f.avx512dq = b & (1u << 17);
    f.avx512bw = b & (1u << 30);
    f.avx512vl = b & (1u << 31);
    f.avx512vnni = c & (1u << 11);
  }
  return f;
}
#endif

}  // namespace

bool isa_available(Isa isa) {
  switch (isa) {
    case Isa::scalar:
      return true;
#if defined(TS_HAVE_X86)
    case Isa::avx2: {
      static const X86Features f = detect_x86();
      return f.os_ymm && f.avx2 && f.fma && f.f16c && f.bmi2;
    }
    case Isa::avx512: {
      static const X86Features f = detect_x86();
      return f.os_ymm && f.os_zmm && f.avx2 && f.fma && f.f16c && f.bmi2 && f.avx512f && f.avx512bw && f.avx512vl &&
             f.avx512dq && f.avx512vnni;
    }
#endif
#if defined(TS_HAVE_ARM)
    case Isa::neon: {
      const unsigned long hw = getauxval(AT_HWCAP);
      return (hw & HWCAP_ASIMD) && (hw & HWCAP_ASIMDDP) && (hw & HWCAP_FPHP) && (hw & HWCAP_ASIMDHP);
    }
#endif
    default:
      return false;
  }
}

std::vector<Isa> available_isas() {
  std::vector<Isa> out;
  for (Isa i : {Isa::scalar, Isa::avx2, Isa::avx512, Isa::neon})
    if (isa_available(i)) out.push_back(i);
  return out;
}

std::vector<Isa> compiled_isas() {
  std::vector<Isa> out{Isa::scalar};
#if defined(TS_HAVE_X86)
  out.push_back(Isa::avx2);
  out.push_back(Isa::avx512);
#endif
#if defined(TS_HAVE_ARM)
  out.push_back(Isa::neon);
#endif
  return out;
}

namespace {

struct Tables {
  KernelTable t[4];
  Tables() {
    detail::init_scalar(t[0]);
#if defined(TS_HAVE_X86)
    if (isa_available(Isa::avx2)) detail::init_avx2(t[1]);
    if (isa_available(Isa::avx512)) detail::init_avx512(t[2]);
#endif
#if defined(TS_HAVE_ARM)
    if (isa_available(Isa::neon)) detail::init_neon(t[3]);
#endif
    for (int i = 0; i < 4; ++i)
      if (isa_available(static_cast<Isa>(i))) detail::install_formats(t[i]);
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

std::atomic<int> g_active{-1};

Isa best_isa() {
  const auto all = available_isas();
  return all.back();
}

}  // namespace

const KernelTable& table(Isa isa) {
  TS_CHECK_MSG(isa_available(isa), "ISA %s is not available", isa_name(isa));
  return tables().t[static_cast<int>(isa)];
}

Isa active_isa() {
  int a = g_active.load(std::memory_order_acquire);
  if (a < 0) {
    a = static_cast<int>(best_isa());
    int expected = -1;
    g_active.compare_exchange_strong(expected, a);
    a = g_active.load(std::memory_order_acquire);
  }
  return static_cast<Isa>(a);
}

const KernelTable& active() { return table(active_isa()); }

namespace {
std::atomic<int> g_ternary{static_cast<int>(TernaryKernel::mad)};
}  // namespace

const char* ternary_kernel_name(TernaryKernel k) {
  switch (k) {
    case TernaryKernel::mad: return "mad";
    case TernaryKernel::lut: return "lut";
    case TernaryKernel::automatic: return "auto";
  }
  return "?";
}

std::optional<TernaryKernel> ternary_kernel_from_name(std::string_view name) {
  for (TernaryKernel k : {TernaryKernel::mad, TernaryKernel::lut, TernaryKernel::automatic})
    if (name == ternary_kernel_name(k)) return k;
  return std::nullopt;
}

void select_ternary_kernel(TernaryKernel k) { g_ternary.store(static_cast<int>(k), std::memory_order_release); }
TernaryKernel ternary_kernel() { return static_cast<TernaryKernel>(g_ternary.load(std::memory_order_acquire)); }

void select_isa(Isa isa) {
  if (!isa_available(isa)) {
    std::string have;
    for (Isa i : available_isas()) have += std::string(have.empty() ? "" : ", ") + isa_name(i);
    fail("ISA '%s' is not available on this machine or not built into this binary (available: %s)", isa_name(isa),
         have.c_str());
  }
  g_active.store(static_cast<int>(isa), std::memory_order_release);
}

}  // namespace tokenscope::kernels
