// The weight-format registry: one line per format lists the functions that put its kernels into each ISA's table.
//
// A format's kernels are its activation layout (ActLayout), its dot product, its row-interleaved packing and
// packed multiply where it has them, per ISA. Each ISA's installer is defined in a source file compiled with
// that ISA's flags (a file name ending in _avx2.cpp, _avx512.cpp or _neon.cpp, anywhere under src/kernels), and
// the table of an ISA is built by running, for every format in order: the scalar installer (the reference; it
// must set everything the format has), then AVX2's on the AVX2 and AVX-512 tables, AVX-512's on the AVX-512 table,
// NEON's on the NEON table. A SIMD installer overrides only what it speeds up (it may set
// nothing); the table keeps what the installers before it set. A new format is one folder with these files plus its line in registry.cpp
// (TS_FORMATS).
#pragma once

#include <span>

#include "kernels/kernels.h"

namespace tokenscope::kernels::detail {

using InstallFn = void (*)(KernelTable& t);

struct FormatRegistration {
  TensorType type;
  InstallFn scalar;
  InstallFn avx2;
  InstallFn avx512;
  InstallFn neon;
};

// Every registered format, in registration order.
std::span<const FormatRegistration> registered_formats();
// Runs the installers of every registered format that apply to t.isa (set by the ISA's init before this).
void install_formats(KernelTable& t);

}  // namespace tokenscope::kernels::detail
