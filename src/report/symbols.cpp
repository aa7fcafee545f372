#include "report/symbols.h"

#include <cxxabi.h>
#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string_view>

namespace tokenscope::report {

namespace {

// Replaces every parenthesized group (but "(anonymous namespace)") at or below the top level with "()".
std::string collapse_parens(const std::string& s) {
  std::string out;
  int depth = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (depth == 0 && s.compare(i, 21, "(anonymous namespace)") == 0) {
      out += "(anonymous namespace)";
      i += 20;
      continue;
    }
    if (s[i] == '(') {
      if (depth++ == 0) out += "()";
      continue;
    }
    if (s[i] == ')') {
      if (depth > 0) --depth;
      continue;
    }
    if (depth == 0) out += s[i];
  }
  return out;
}

}  // namespace

std::string short_function_name(const std::string& d) {
  std::string s = d;
  // Compiler clones (" [clone .isra.0]") and a trailing " const" say nothing about where the time went.
  if (const size_t c = s.find(" [clone"); c != std::string::npos) s.resize(c);
  if (s.size() > 6 && s.compare(s.size() - 6, 6, " const") == 0) s.resize(s.size() - 6);
  // A std::function's invoker: name the callable it holds.
  const std::string fh = "std::_Function_handler<";
  if (s.rfind(fh, 0) == 0) {
    int depth = 0;
    size_t b = std::string::npos;
    for (size_t i = fh.size(); i < s.size(); ++i) {
      const char c = s[i];
      if (c == '<' || c == '(') ++depth;
      else if (c == '>' || c == ')') {
        if (depth == 0) {
          if (b != std::string::npos) return collapse_parens(s.substr(b, i - b));
          break;
        }
        --depth;
      } else if (c == ',' && depth == 0 && b == std::string::npos) {
        b = i + 2;
      }
    }
  }
  // The parameter list: the last top-level "(...)".
  if (!s.empty() && s.back() == ')') {
    int depth = 0;
    for (size_t i = s.size(); i-- > 0;) {
      if (s[i] == ')') ++depth;
      else if (s[i] == '(' && --depth == 0) {
        if (s.compare(i, 21, "(anonymous namespace)") != 0) s.resize(i);
        break;
      }
    }
  }
  // A template function's return type: what comes before the last space outside <> and ().
  int depth = 0;
  size_t cut = std::string::npos;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '<' || s[i] == '(') ++depth;
    else if ((s[i] == '>' || s[i] == ')') && depth > 0) --depth;
    else if (s[i] == ' ' && depth == 0) cut = i;
  }
  if (cut != std::string::npos) s = s.substr(cut + 1);
  return collapse_parens(s);
}

namespace {

std::string demangle(const char* name) {
  int status = 0;
  char* d = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  if (status != 0 || !d) return name;
  std::string r = short_function_name(d);
  std::free(d);
  return r;
}

std::string base_name(const std::string& p) {
  const size_t s = p.find_last_of('/');
  return s == std::string::npos ? p : p.substr(s + 1);
}

}  // namespace

Symbolizer::Symbolizer() {
  std::ifstream f("/proc/self/maps");
  std::string line;
  while (std::getline(f, line)) {
    unsigned long long a = 0, b = 0, off = 0;
    char perms[8] = {0};
    int consumed = 0;
    if (std::sscanf(line.c_str(), "%llx-%llx %7s %llx %*s %*s%n", &a, &b, perms, &off, &consumed) < 4) continue;
    if (perms[2] != 'x') continue;
    std::string path = consumed < static_cast<int>(line.size()) ? line.substr(static_cast<size_t>(consumed)) : "";
    const size_t p = path.find_first_not_of(' ');
    path = p == std::string::npos ? "" : path.substr(p);
    maps_.push_back({a, b, off, path});
  }
}

Symbolizer::~Symbolizer() = default;

const Symbolizer::ElfInfo& Symbolizer::elf(const std::string& path) {
  auto it = elves_.find(path);
  if (it != elves_.end()) return it->second;
  ElfInfo& info = elves_[path];
  // Mapped, not read: a binary with debug information is tens of MB, of which the tables are a small part.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return info;
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_size <= 0) {
    ::close(fd);
    return info;
  }
  void* m = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) return info;
  struct Unmap {
    void* p;
    size_t n;
    ~Unmap() { ::munmap(p, n); }
  } unmap{m, static_cast<size_t>(st.st_size)};
  const std::string_view bytes(static_cast<const char*>(m), static_cast<size_t>(st.st_size));
  if (bytes.size() < sizeof(Elf64_Ehdr) || std::memcmp(bytes.data(), ELFMAG, SELFMAG) != 0 ||
      bytes[EI_CLASS] != ELFCLASS64)
    return info;
  Elf64_Ehdr eh;
  std::memcpy(&eh, bytes.data(), sizeof eh);
  info.exec = eh.e_type == ET_EXEC;
  auto in_file = [&](uint64_t off, uint64_t n) { return off <= bytes.size() && n <= bytes.size() - off; };
  for (int i = 0; i < eh.e_phnum; ++i) {
    const uint64_t o = eh.e_phoff + static_cast<uint64_t>(i) * eh.e_phentsize;
    if (!in_file(o, sizeof(Elf64_Phdr))) break;
    Elf64_Phdr ph;
    std::memcpy(&ph, bytes.data() + o, sizeof ph);
    if (ph.p_type == PT_LOAD) info.loads.emplace_back(ph.p_offset, ph.p_vaddr);
  }
  std::vector<Elf64_Shdr> sh;
  for (int i = 0; i < eh.e_shnum; ++i) {
    const uint64_t o = eh.e_shoff + static_cast<uint64_t>(i) * eh.e_shentsize;
    if (!in_file(o, sizeof(Elf64_Shdr))) break;
    Elf64_Shdr s;
    std::memcpy(&s, bytes.data() + o, sizeof s);
    sh.push_back(s);
  }
  for (uint32_t want : {SHT_SYMTAB, SHT_DYNSYM}) {
    for (const Elf64_Shdr& s : sh) {
      if (s.sh_type != want || s.sh_link >= sh.size() || s.sh_entsize != sizeof(Elf64_Sym)) continue;
      const Elf64_Shdr& str = sh[s.sh_link];
      if (!in_file(s.sh_offset, s.sh_size) || !in_file(str.sh_offset, str.sh_size)) continue;
      for (uint64_t k = 0; k + sizeof(Elf64_Sym) <= s.sh_size; k += sizeof(Elf64_Sym)) {
        Elf64_Sym sym;
        std::memcpy(&sym, bytes.data() + s.sh_offset + k, sizeof sym);
        if (ELF64_ST_TYPE(sym.st_info) != STT_FUNC || sym.st_value == 0 || sym.st_name >= str.sh_size) continue;
        const char* name = bytes.data() + str.sh_offset + sym.st_name;
        const size_t max = str.sh_size - sym.st_name;
        info.symbols.push_back({sym.st_value, sym.st_size, std::string(name, strnlen(name, max))});
      }
    }
    if (!info.symbols.empty()) break;  // .symtab when there is one: it holds the local functions too
  }
  std::sort(info.symbols.begin(), info.symbols.end(), [](const Symbol& a, const Symbol& b) { return a.addr < b.addr; });
  info.ok = true;
  return info;
}

CodeLocation Symbolizer::resolve(uint64_t ip) {
  if (const auto c = cache_.find(ip); c != cache_.end()) return c->second;
  CodeLocation loc{"?", "[unknown]"};
  if (ip >= 0xffff800000000000ull) {
    loc = {"(kernel)", "[kernel]"};
  } else {
    for (const Mapping& m : maps_) {
      if (ip < m.start || ip >= m.end) continue;
      loc.module = m.path.empty() ? "[anonymous]" : m.path[0] == '[' ? m.path : base_name(m.path);
      if (m.path.empty() || m.path[0] == '[') break;
      const ElfInfo& e = elf(m.path);
      if (!e.ok) break;
      uint64_t addr = ip;
      if (!e.exec) {
        const uint64_t file_off = ip - m.start + m.offset;
        addr = file_off;
        for (const auto& [off, vaddr] : e.loads)
          if (file_off >= off) addr = file_off - off + vaddr;  // the last PT_LOAD starting at or before it
      }
      auto it = std::upper_bound(e.symbols.begin(), e.symbols.end(), addr,
                                 [](uint64_t a, const Symbol& s) { return a < s.addr; });
      if (it != e.symbols.begin()) {
        --it;
        if (addr < it->addr + it->size || (it->size == 0 && addr - it->addr < 4096)) loc.function = demangle(it->name.c_str());
      }
      break;
    }
  }
  cache_[ip] = loc;
  return loc;
}

}  // namespace tokenscope::report
