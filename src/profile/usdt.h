// USDT probes (statically defined tracepoints, <sys/sdt.h>) at step and stage boundaries, so that
// `perf record -e sdt_tokenscope:step_begin`, bpftrace (`usdt:./tokenscope:tokenscope:step_begin`) and
// uftrace see the same markers as the profiler. They fire whether or not the profiler is attached and
// cost one nop each until a tracer attaches. Without sys/sdt.h (package systemtap-sdt-dev) they compile
// to nothing.
//
//   provider  probe         arguments
//   tokenscope step_begin   stage (0 prefill, 1 decode), past, n_eval
//   tokenscope step_end     stage, past, n_eval
//   tokenscope stage_begin  stage, past (the first step's position)
//   tokenscope stage_end    stage, tokens evaluated in the stage
#pragma once

#include <cstdint>

#if defined(TS_HAVE_USDT)
#include <sys/sdt.h>
#define TS_USDT2(name, a, b) DTRACE_PROBE2(tokenscope, name, a, b)
#define TS_USDT3(name, a, b, c) DTRACE_PROBE3(tokenscope, name, a, b, c)
#else
#define TS_USDT2(name, a, b) ((void)(a), (void)(b))
#define TS_USDT3(name, a, b, c) ((void)(a), (void)(b), (void)(c))
#endif

namespace tokenscope::profile {

constexpr bool kHaveUsdt =
#if defined(TS_HAVE_USDT)
    true;
#else
    false;
#endif

// stage: 0 prefill, 1 decode (the values of profile::Stage).
inline void usdt_step_begin(int stage, int64_t past, int64_t n_eval) { TS_USDT3(step_begin, stage, past, n_eval); }
inline void usdt_step_end(int stage, int64_t past, int64_t n_eval) { TS_USDT3(step_end, stage, past, n_eval); }
inline void usdt_stage_begin(int stage, int64_t past) { TS_USDT2(stage_begin, stage, past); }
inline void usdt_stage_end(int stage, int64_t tokens) { TS_USDT2(stage_end, stage, tokens); }

}  // namespace tokenscope::profile
