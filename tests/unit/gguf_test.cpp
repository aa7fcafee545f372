// GGUF reader and writer: round trips, every value type, and bad files built on the fly.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "base/error.h"
#include "gguf/gguf.h"
#include "gguf/inspect.h"
#include "test_util.h"

using namespace tokenscope;
using namespace tokenscope::gguf;
using tokenscope::testing::temp_path;

namespace {

void write_bytes(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

// Expects File::open to throw an Error whose message contains every fragment.
void expect_open_error(const std::vector<uint8_t>& bytes, const std::vector<std::string>& fragments) {
  const std::string path = temp_path("bad.gguf");
  write_bytes(path, bytes);
  try {
    File::open(path);
    ADD_FAILURE() << "no error; expected one mentioning " << fragments[0];
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << "message does not name the file: " << msg;
    for (const auto& f : fragments) EXPECT_NE(msg.find(f), std::string::npos) << "'" << f << "' not in: " << msg;
  }
}

Writer small_writer() {
  Writer w;
  w.set_string("general.architecture", "llama");
  w.set_u32("llama.block_count", 2);
  w.set_f32("llama.rope.freq_base", 10000.0f);
  w.set_bool("flag", true);
  w.set_string_array("tokenizer.ggml.tokens", {"a", "b", "hello world"});
  std::vector<float> f(4 * 32);
  for (size_t i = 0; i < f.size(); ++i) f[i] = static_cast<float>(i) * 0.25f;
  w.add_tensor("t.f32", {32, 4}, TensorType::F32, f.data(), f.size() * 4);
  std::vector<uint8_t> q(row_size(TensorType::Q8_0, 64) * 2);
  quantize_row(TensorType::Q8_0, f.data(), q.data(), 128);
  w.add_tensor("t.q8", {64, 2}, TensorType::Q8_0, q.data(), q.size());
  return w;
}

// Byte offset of the first occurrence of a string in a buffer.
size_t find_bytes(const std::vector<uint8_t>& b, const std::string& s) {
  auto it = std::search(b.begin(), b.end(), s.begin(), s.end());
  return static_cast<size_t>(it - b.begin());
}

template <typename T>
void poke(std::vector<uint8_t>& b, size_t off, T v) {
  std::memcpy(b.data() + off, &v, sizeof(T));
}

TEST(Gguf, RoundTripsMetadataAndTensors) {
  const std::string path = temp_path("ok.gguf");
  small_writer().write(path);
  auto f = File::open(path);
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->get_string("general.architecture"), "llama");
  EXPECT_EQ(f->get_int("llama.block_count"), 2);
  EXPECT_FLOAT_EQ(static_cast<float>(f->get_float("llama.rope.freq_base")), 10000.0f);
  EXPECT_TRUE(f->get_bool("flag"));
  EXPECT_EQ(f->get_string_array("tokenizer.ggml.tokens"), (std::vector<std::string>{"a", "b", "hello world"}));
  EXPECT_FALSE(f->opt_string("nope").has_value());
  ASSERT_EQ(f->tensors().size(), 2u);
  const TensorInfo& t = f->tensor("t.f32");
  EXPECT_EQ(t.dims, (std::vector<int64_t>{32, 4}));
  EXPECT_EQ(t.n_elements, 128);
  EXPECT_EQ(t.size_bytes, 512u);
  EXPECT_EQ(f->data_offset() % f->alignment(), 0u);
  const float* d = reinterpret_cast<const float*>(f->tensor_data(t));
  EXPECT_EQ(d[5], 1.25f);
  const TensorInfo& q = f->tensor("t.q8");
  EXPECT_EQ(q.type, TensorType::Q8_0);
  EXPECT_EQ(q.size_bytes, 2 * 2 * 34u);
  EXPECT_EQ(q.offset % 32, 0u);
  std::vector<float> back(128);
  dequantize_row(TensorType::Q8_0, f->tensor_data(q), back.data(), 128);
  EXPECT_NEAR(back[100], 25.0f, 0.15f);
}

TEST(Gguf, EveryValueTypeAndNestedArrays) {
  Writer w;
  auto sc = [](ValueType t) { Value v; v.type = t; return v; };
  Value v;
  v = sc(ValueType::UINT8); v.u = 200; w.set_value("u8", v);
  v = sc(ValueType::INT8); v.i = -100; w.set_value("i8", v);
  v = sc(ValueType::UINT16); v.u = 60000; w.set_value("u16", v);
  v = sc(ValueType::INT16); v.i = -30000; w.set_value("i16", v);
  v = sc(ValueType::INT32); v.i = -2000000000; w.set_value("i32", v);
  v = sc(ValueType::UINT64); v.u = 1ull << 62; w.set_value("u64", v);
  v = sc(ValueType::INT64); v.i = -(1ll << 60); w.set_value("i64", v);
  v = sc(ValueType::FLOAT64); v.f = 3.25; w.set_value("f64", v);
  Value inner = sc(ValueType::ARRAY);
  inner.elem_type = ValueType::INT16;
  for (int k = 0; k < 3; ++k) { Value e = sc(ValueType::INT16); e.i = -k; inner.items.push_back(e); }
  Value outer = sc(ValueType::ARRAY);
  outer.elem_type = ValueType::ARRAY;
  outer.items = {inner, inner};
  w.set_value("nested", outer);
  const std::string path = temp_path("types.gguf");
  w.write(path);
  auto f = File::open(path);
  EXPECT_EQ(f->get_int("u8"), 200);
  EXPECT_EQ(f->get_int("i8"), -100);
  EXPECT_EQ(f->get_int("u16"), 60000);
  EXPECT_EQ(f->get_int("i16"), -30000);
  EXPECT_EQ(f->get_int("i32"), -2000000000);
  EXPECT_EQ(f->get_int("u64"), 1ll << 62);
  EXPECT_EQ(f->get_int("i64"), -(1ll << 60));
  EXPECT_EQ(f->get_float("f64"), 3.25);
  const Value* n = f->find("nested");
  ASSERT_NE(n, nullptr);
  ASSERT_EQ(n->items.size(), 2u);
  EXPECT_EQ(n->items[1].items[2].i, -2);
  EXPECT_EQ(n->to_string(), "[arr x 2] [[i16 x 3] [0, -1, -2], [i16 x 3] [0, -1, -2]]");
  // Wrong-type access names the key and both types.
  try {
    f->get_string("u8");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'u8' has type u8, expected str"), std::string::npos) << e.what();
  }
  try {
    f->get_int("missing.key");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'missing.key' is missing"), std::string::npos) << e.what();
  }
}

TEST(Gguf, ReadsVersion2) {
  std::vector<uint8_t> b = small_writer().to_bytes();
  poke<uint32_t>(b, 4, 2);
  const std::string path = temp_path("v2.gguf");
  write_bytes(path, b);
  EXPECT_EQ(File::open(path)->version(), 2u);
}

TEST(Gguf, EveryTruncationIsAnErrorNotACrash) {
  const std::vector<uint8_t> b = small_writer().to_bytes();
  const std::string path = temp_path("trunc.gguf");
  write_bytes(path, b);
  size_t end = 0;  // the writer pads after the last tensor; cutting only padding leaves a valid file
  {
    auto f = File::open(path);
    for (const TensorInfo& t : f->tensors()) end = std::max<size_t>(end, f->data_offset() + t.offset + t.size_bytes);
  }
  ASSERT_GT(end, 500u);
  for (size_t n = 0; n < end; ++n) {
    write_bytes(path, std::vector<uint8_t>(b.begin(), b.begin() + static_cast<long>(n)));
    EXPECT_THROW(File::open(path), Error) << "prefix of " << n << " bytes";
  }
}

TEST(Gguf, RandomCorruptionsNeverCrash) {
  // Random byte and 8-byte-word corruptions anywhere in the header, metadata and tensor table: opening
  // either succeeds (the change was harmless) or throws Error; never a crash (run under ASan in CI).
  const std::vector<uint8_t> b = small_writer().to_bytes();
  const std::string path = temp_path("fuzz.gguf");
  std::mt19937 rng(42);
  int errors = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    auto bad = b;
    const size_t header_end = 900;  // the metadata and tensor infos live in the first ~900 bytes
    const size_t off = rng() % std::min(header_end, bad.size() - 8);
    if (iter % 2) {
      bad[off] = static_cast<uint8_t>(rng());
    } else {
      const uint64_t v = (iter % 4 == 0) ? (uint64_t{1} << (rng() % 64)) : (static_cast<uint64_t>(rng()) << 32 | rng());
      poke<uint64_t>(bad, off, v);
    }
    write_bytes(path, bad);
    try {
      auto f = File::open(path);
      for (const TensorInfo& t : f->tensors()) {
        volatile uint8_t sink = f->tensor_data(t)[t.size_bytes - 1];  // every tensor's last byte is readable
        (void)sink;
      }
    } catch (const Error&) {
      ++errors;
    }
  }
  EXPECT_GT(errors, 300);  // many corruptions land in string bytes and are harmless
}

TEST(Gguf, BadHeaders) {
  std::vector<uint8_t> b = small_writer().to_bytes();
  auto bad = b;
  std::memcpy(bad.data(), "GGML", 4);
  expect_open_error(bad, {"not a GGUF file", "GGML"});
  bad = b;
  poke<uint32_t>(bad, 4, 1);
  expect_open_error(bad, {"version 1"});
  bad = b;
  poke<uint32_t>(bad, 4, 99);
  expect_open_error(bad, {"version 99"});
  bad = b;
  poke<uint64_t>(bad, 8, 1ull << 60);
  expect_open_error(bad, {"tensor_count"});
  bad = b;
  poke<uint64_t>(bad, 16, 1ull << 40);
  expect_open_error(bad, {"metadata_kv_count"});
}

TEST(Gguf, AbsurdCountsAndSizes) {
  const std::vector<uint8_t> b = small_writer().to_bytes();
  // String length of the first key.
  auto bad = b;
  poke<uint64_t>(bad, 24, 1ull << 50);
  expect_open_error(bad, {"string length"});
  // Array count of the token array.
  bad = b;
  const size_t key = find_bytes(bad, "tokenizer.ggml.tokens");
  const size_t count_off = key + std::strlen("tokenizer.ggml.tokens") + 4 + 4;
  poke<uint64_t>(bad, count_off, 1ull << 61);
  expect_open_error(bad, {"array count", "tokenizer.ggml.tokens"});
  // Unknown value type.
  bad = b;
  poke<uint32_t>(bad, key + std::strlen("tokenizer.ggml.tokens"), 77);
  expect_open_error(bad, {"unknown value type 77"});
}

TEST(Gguf, BadTensorInfos) {
  const std::vector<uint8_t> b = small_writer().to_bytes();
  const size_t name = find_bytes(b, "t.q8");
  const size_t ndims = name + 4, dim0 = ndims + 4, type = dim0 + 16, offset = type + 4;
  auto bad = b;
  poke<uint32_t>(bad, type, 200);
  expect_open_error(bad, {"tensor 't.q8'", "unknown type id 200"});
  bad = b;
  poke<uint32_t>(bad, type, 31);
  expect_open_error(bad, {"tensor 't.q8'", "Q4_0_4_4"});
  bad = b;
  poke<uint64_t>(bad, offset, 1ull << 40);
  expect_open_error(bad, {"tensor 't.q8'", "past the end"});
  bad = b;
  poke<uint64_t>(bad, offset, 33);
  expect_open_error(bad, {"tensor 't.q8'", "alignment"});
  bad = b;
  poke<uint32_t>(bad, ndims, 9);
  expect_open_error(bad, {"tensor 't.q8'", "9 dimensions"});
  bad = b;
  poke<uint64_t>(bad, dim0, 48);  // not a multiple of the Q8_0 block of 32
  expect_open_error(bad, {"tensor 't.q8'", "block size"});
  bad = b;
  poke<uint64_t>(bad, dim0 + 8, 1ull << 62);  // element count overflows
  expect_open_error(bad, {"tensor 't.q8'"});
  bad = b;
  poke<uint64_t>(bad, dim0, 0);
  expect_open_error(bad, {"tensor 't.q8'", "dimension 0 is 0"});
}

TEST(Gguf, DuplicateKeysAndTensorsAreErrors) {
  Writer w;
  w.set_u32("key.aaaa", 1);
  w.set_u32("key.bbbb", 2);
  std::vector<float> f(32, 1.0f);
  w.add_tensor("tensor.x1", {32}, TensorType::F32, f.data(), 128);
  w.add_tensor("tensor.x2", {32}, TensorType::F32, f.data(), 128);
  const std::vector<uint8_t> b = w.to_bytes();
  auto bad = b;
  std::memcpy(bad.data() + find_bytes(bad, "key.bbbb"), "key.aaaa", 8);
  expect_open_error(bad, {"'key.aaaa' appears twice"});
  bad = b;
  std::memcpy(bad.data() + find_bytes(bad, "tensor.x2"), "tensor.x1", 9);
  expect_open_error(bad, {"tensor 'tensor.x1' appears twice"});
}

TEST(Gguf, OpenErrorsNameTheFile) {
  try {
    File::open("/nonexistent/dir/model.gguf");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/model.gguf: cannot open"), std::string::npos);
  }
  expect_open_error({}, {"too short"});
  expect_open_error(std::vector<uint8_t>(4000, 0x41), {"not a GGUF file", "AAAA"});
}

TEST(Gguf, InspectPrintsMetadataAndTensorTable) {
  const std::string path = temp_path("inspect.gguf");
  small_writer().write(path);
  auto f = File::open(path);
  char* buf = nullptr;
  size_t len = 0;
  FILE* out = open_memstream(&buf, &len);
  print_inspect(*f, out, false);
  std::fclose(out);
  const std::string s(buf, len);
  std::free(buf);
  EXPECT_NE(s.find("general.architecture"), std::string::npos);
  EXPECT_NE(s.find("\"llama\""), std::string::npos);
  EXPECT_NE(s.find("t.q8"), std::string::npos);
  EXPECT_NE(s.find("Q8_0"), std::string::npos);
  EXPECT_NE(s.find("[64, 2]"), std::string::npos);
  EXPECT_NE(s.find("tensors (2)"), std::string::npos);
}

TEST(Gguf, RealModelHeader) {
  const std::string p = tokenscope::testing::model_path(tokenscope::testing::kSmolLM2);
  ASSERT_FALSE(p.empty()) << "default model missing: run scripts/fetch-models.sh";
  auto f = File::open(p);
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->get_string("general.architecture"), "llama");
  EXPECT_EQ(f->get_int("llama.block_count"), 30);
  EXPECT_EQ(f->tensors().size(), 272u);
  const TensorInfo& e = f->tensor("token_embd.weight");
  EXPECT_EQ(e.type, TensorType::Q8_0);
  EXPECT_EQ(e.dims, (std::vector<int64_t>{576, 49152}));
}

}  // namespace
