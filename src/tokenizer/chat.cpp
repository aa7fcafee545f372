// Chat templates: the three common formats, written out in C++ rather than interpreted from the
// Jinja source, and recognised from tokenizer.chat_template by their marker tokens.
#include <cctype>

#include "base/error.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace tokenscope {
namespace {

// Jinja's `trim` filter: leading and trailing whitespace removed.
std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

bool has_system(const std::vector<ChatMessage>& m) { return !m.empty() && m.front().role == "system"; }

// <|im_start|>role\ncontent<|im_end|>\n (SmolLM, Qwen).
std::string render_chatml(const std::vector<ChatMessage>& msgs, bool gen, const std::string& default_system) {
  std::string out;
  if (!default_system.empty() && !has_system(msgs))
    out += "<|im_start|>system\n" + default_system + "<|im_end|>\n";
  for (const ChatMessage& m : msgs) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
  if (gen) out += "<|im_start|>assistant\n";
  return out;
}

// <|begin_of_text|> then <|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|> (Llama 3,
// whose template trims each message).
std::string render_llama3(const std::vector<ChatMessage>& msgs, bool gen, const std::string& default_system) {
  std::string out = "<|begin_of_text|>";
  auto turn = [&](const std::string& role, const std::string& content) {
    out += "<|start_header_id|>" + role + "<|end_header_id|>\n\n" + trim(content) + "<|eot_id|>";
  };
  if (!default_system.empty() && !has_system(msgs)) turn("system", default_system);
  for (const ChatMessage& m : msgs) turn(m.role, m.content);
  if (gen) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

// <start_of_turn>user\ncontent<end_of_turn>\n (Gemma): the assistant is "model", and a system
// message has no turn of its own but opens the first turn, followed by a blank line. Contents are
// trimmed, as Gemma's template does. The BOS token comes from the tokenizer (add_bos_token).
std::string render_gemma(const std::vector<ChatMessage>& msgs, bool gen, const std::string& default_system) {
  std::string out;
  std::string prefix;
  size_t first = 0;
  if (has_system(msgs)) {
    prefix = msgs.front().content + "\n\n";
    first = 1;
  } else if (!default_system.empty()) {
    prefix = default_system + "\n\n";
  }
  for (size_t i = first; i < msgs.size(); ++i) {
    const ChatMessage& m = msgs[i];
    const std::string role = m.role == "assistant" ? "model" : m.role;
    out += "<start_of_turn>" + role + "\n";
    if (i == first) out += prefix;
    out += trim(m.content) + "<end_of_turn>\n";
  }
  if (gen) out += "<start_of_turn>model\n";
  return out;
}

}  // namespace

const char* chat_format_name(ChatFormat f) {
  switch (f) {
    case ChatFormat::chatml: return "chatml";
    case ChatFormat::llama3: return "llama3";
    case ChatFormat::gemma: return "gemma";
  }
  return "?";
}

std::optional<ChatFormat> chat_format_from_name(std::string_view name) {
  for (ChatFormat f : {ChatFormat::chatml, ChatFormat::llama3, ChatFormat::gemma})
    if (name == chat_format_name(f)) return f;
  return std::nullopt;
}

std::optional<ChatFormat> detect_chat_format(std::string_view t) {
  if (t.find("<|im_start|>") != std::string_view::npos) return ChatFormat::chatml;
  if (t.find("<|start_header_id|>") != std::string_view::npos) return ChatFormat::llama3;
  if (t.find("<start_of_turn>") != std::string_view::npos) return ChatFormat::gemma;
  return std::nullopt;
}

std::string render_chat(ChatFormat f, const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                        const std::string& default_system) {
  switch (f) {
    case ChatFormat::chatml: return render_chatml(messages, add_generation_prompt, default_system);
    case ChatFormat::llama3: return render_llama3(messages, add_generation_prompt, default_system);
    case ChatFormat::gemma: return render_gemma(messages, add_generation_prompt, default_system);
  }
  return {};
}

namespace {

// The system message a ChatML template inserts when the conversation has none
// (SmolLM2's "You are a helpful AI assistant named SmolLM, ..."), read from the template text.
std::string default_system_from_template(const std::string& tmpl) {
  const std::string open = "<|im_start|>system\n";
  const size_t b = tmpl.find(open);
  if (b == std::string::npos) return "";
  const size_t e = tmpl.find("<|im_end|>", b + open.size());
  if (e == std::string::npos) return "";
  std::string s = tmpl.substr(b + open.size(), e - b - open.size());
  if (s.find("{{") != std::string::npos || s.find("{%") != std::string::npos) return "";
  return s;
}

}  // namespace

ChatTemplate chat_template_of(const gguf::File& file) {
  const std::string tmpl = file.opt_string("tokenizer.chat_template").value_or("");
  auto f = detect_chat_format(tmpl);
  if (!f) {
    if (!tmpl.empty()) fail("%s: unrecognised chat template (supported: chatml, llama3, gemma)", file.path().c_str());
    fail("%s: the model has no tokenizer.chat_template", file.path().c_str());
  }
  ChatTemplate cs{*f, ""};
  if (*f == ChatFormat::chatml) cs.default_system = default_system_from_template(tmpl);
  return cs;
}

}  // namespace tokenscope
