// Names for code addresses of this process: the ELF symbol tables (.symtab, else .dynsym) of the files mapped in
// /proc/self/maps, C++ names demangled. For the sampled hot functions (profile --sample, study hotspots).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace tokenscope::report {

struct CodeLocation {
  std::string function;  // demangled, without its parameter list; "?" where no symbol covers the address
  std::string module;    // the file's name ("tokenscope", "libc.so.6"), "[kernel]", or "[unknown]"
};

class Symbolizer {
 public:
  // Reads this process's mappings now (call it while the code to resolve is still mapped).
  Symbolizer();
  ~Symbolizer();
  CodeLocation resolve(uint64_t ip);

 private:
  struct Mapping {
    uint64_t start, end, offset;
    std::string path;
  };
  struct Symbol {
    uint64_t addr, size;
    std::string name;  // as the table has it (mangled); demangled when an address resolves to it
  };
  struct ElfInfo {
    bool ok = false;
    bool exec = false;  // ET_EXEC: addresses are absolute
    std::vector<std::pair<uint64_t, uint64_t>> loads;  // PT_LOAD (offset, vaddr), for file offset -> address
    std::vector<Symbol> symbols;  // sorted by addr
  };
  const ElfInfo& elf(const std::string& path);
  std::vector<Mapping> maps_;
  std::map<std::string, ElfInfo> elves_;
  std::map<uint64_t, CodeLocation> cache_;
};

// A demangled C++ name without its parameter list ("ns::f<int>(float*, long)" -> "ns::f<int>").
std::string short_function_name(const std::string& demangled);

}  // namespace tokenscope::report
