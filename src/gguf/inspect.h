// `tokenscope inspect`: a readable dump of a GGUF file's header, metadata and tensor table.
#pragma once

#include <cstdio>

#include "gguf/gguf.h"

namespace tokenscope::gguf {

// all: print every array item and the full strings (else long arrays and strings are abbreviated).
void print_inspect(const File& file, FILE* out, bool all);

}  // namespace tokenscope::gguf
