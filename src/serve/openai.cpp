#include "serve/openai.h"

#include <cmath>

#include "base/error.h"

namespace tokenscope::serve {

using nlohmann::json;

json ApiError::body() const {
  json e = {{"message", what()}, {"type", type}};
  e["code"] = code.empty() ? json(nullptr) : json(code);
  e["param"] = param.empty() ? json(nullptr) : json(param);
  return {{"error", e}};
}

ApiError bad_param(const std::string& param, const std::string& message) {
  return ApiError(400, message, "invalid_request_error", "invalid_value", param);
}

namespace {

const char* type_name_of(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    default: return "a number";
  }
}

ApiError wrong_type(const std::string& field, const char* want, const json& v) {
  return ApiError(400, "'" + field + "' must be " + want + ", not " + type_name_of(v), "invalid_request_error",
                  "invalid_type", field);
}

double get_number(const json& v, const std::string& field) {
  if (!v.is_number()) throw wrong_type(field, "a number", v);
  const double d = v.get<double>();
  if (!std::isfinite(d)) throw bad_param(field, "'" + field + "' must be finite");
  return d;
}

int64_t get_int(const json& v, const std::string& field) {
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15) return static_cast<int64_t>(d);
  }
  throw wrong_type(field, "an integer", v);
}

bool get_bool(const json& v, const std::string& field) {
  if (!v.is_boolean()) throw wrong_type(field, "a boolean", v);
  return v.get<bool>();
}

std::string get_string(const json& v, const std::string& field) {
  if (!v.is_string()) throw wrong_type(field, "a string", v);
  return v.get<std::string>();
}

// OpenAI's message content: a string, or an array of parts of which only {"type": "text", "text": ...} is
// supported here.
std::string content_of(const json& c, const std::string& field) {
  if (c.is_string()) return c.get<std::string>();
  if (c.is_null()) return "";
  if (!c.is_array()) throw wrong_type(field, "a string or an array of content parts", c);
  std::string out;
  for (size_t i = 0; i < c.size(); ++i) {
    const std::string f = field + "[" + std::to_string(i) + "]";
    const json& part = c[i];
    if (!part.is_object()) throw wrong_type(f, "an object", part);
    const auto t = part.find("type");
    if (t == part.end() || !t->is_string() || *t != "text")
      throw bad_param(f + ".type", "only text content parts are supported");
    const auto tx = part.find("text");
    if (tx == part.end()) throw bad_param(f + ".text", "'" + f + ".text' is missing");
    out += get_string(*tx, f + ".text");
  }
  return out;
}

}  // namespace

CompletionRequest parse_completion_request(const std::string& body, bool chat, const SamplerParams& defaults) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::parse_error& e) {
    throw ApiError(400, std::string("the body is not valid JSON: ") + e.what(), "invalid_request_error",
                   "invalid_json");
  }
  if (!j.is_object()) throw ApiError(400, "the body must be a JSON object", "invalid_request_error", "invalid_json");
  CompletionRequest r;
  r.chat = chat;
  r.sampling = defaults;
  if (chat) {
    const auto m = j.find("messages");
    if (m == j.end()) throw bad_param("messages", "'messages' is required");
    if (!m->is_array()) throw wrong_type("messages", "an array", *m);
    if (m->empty()) throw bad_param("messages", "'messages' must not be empty");
    for (size_t i = 0; i < m->size(); ++i) {
      const std::string f = "messages[" + std::to_string(i) + "]";
      const json& msg = (*m)[i];
      if (!msg.is_object()) throw wrong_type(f, "an object", msg);
      const auto role = msg.find("role");
      if (role == msg.end()) throw bad_param(f + ".role", "'" + f + ".role' is required");
      std::string ro = get_string(*role, f + ".role");
      if (ro == "developer") ro = "system";
      if (ro != "system" && ro != "user" && ro != "assistant")
        throw bad_param(f + ".role", "role '" + ro + "' is not supported (system, developer, user, assistant)");
      const auto content = msg.find("content");
      if (content == msg.end()) throw bad_param(f + ".content", "'" + f + ".content' is required");
      r.messages.push_back({ro, content_of(*content, f + ".content")});
    }
  } else {
    const auto p = j.find("prompt");
    if (p == j.end()) throw bad_param("prompt", "'prompt' is required");
    if (p->is_array()) {
      if (p->size() != 1 || !(*p)[0].is_string())
        throw bad_param("prompt", "'prompt' must be a string (or an array of exactly one string)");
      r.prompt = (*p)[0].get<std::string>();
    } else {
      r.prompt = get_string(*p, "prompt");
    }
    if (const auto e = j.find("echo"); e != j.end() && !e->is_null()) r.echo = get_bool(*e, "echo");
    if (const auto s = j.find("suffix"); s != j.end() && !s->is_null()) throw bad_param("suffix", "'suffix' is not supported");
  }
  for (const char* f : {"model"})
    if (const auto v = j.find(f); v != j.end() && !v->is_null()) r.model = get_string(*v, f);
  for (const char* f : {"max_tokens", "max_completion_tokens", "n_predict"}) {
    const auto v = j.find(f);
    if (v == j.end() || v->is_null()) continue;
    const int64_t n = get_int(*v, f);
    if (n < 0 && !(n == -1 && std::string(f) == "n_predict"))
      throw bad_param(f, std::string("'") + f + "' must be >= 0");
    if (n >= 0) r.max_tokens = n;
  }
  if (const auto v = j.find("temperature"); v != j.end() && !v->is_null()) {
    const double t = get_number(*v, "temperature");
    if (t < 0 || t > 2) throw bad_param("temperature", "'temperature' must be between 0 and 2");
    r.sampling.temperature = static_cast<float>(t);
  }
  if (const auto v = j.find("top_p"); v != j.end() && !v->is_null()) {
    const double t = get_number(*v, "top_p");
    if (t <= 0 || t > 1) throw bad_param("top_p", "'top_p' must be in (0, 1]");
    r.sampling.top_p = static_cast<float>(t);
  }
  if (const auto v = j.find("min_p"); v != j.end() && !v->is_null()) {
    const double t = get_number(*v, "min_p");
    if (t < 0 || t > 1) throw bad_param("min_p", "'min_p' must be in [0, 1]");
    r.sampling.min_p = static_cast<float>(t);
  }
  if (const auto v = j.find("top_k"); v != j.end() && !v->is_null()) {
    const int64_t k = get_int(*v, "top_k");
    if (k < 0 || k > (int64_t{1} << 30)) throw bad_param("top_k", "'top_k' must be >= 0 (0: off)");
    r.sampling.top_k = static_cast<int32_t>(k);
  }
  if (const auto v = j.find("repeat_penalty"); v != j.end() && !v->is_null()) {
    const double t = get_number(*v, "repeat_penalty");
    if (t <= 0 || t > 10) throw bad_param("repeat_penalty", "'repeat_penalty' must be in (0, 10]");
    r.sampling.repeat_penalty = static_cast<float>(t);
  }
  if (const auto v = j.find("seed"); v != j.end() && !v->is_null()) {
    const int64_t s = get_int(*v, "seed");
    if (s < -1 || s > 0xFFFFFFFFLL) throw bad_param("seed", "'seed' must be between 0 and 4294967295 (-1: random)");
    r.sampling.seed = s < 0 ? 0xFFFFFFFFu : static_cast<uint32_t>(s);
  }
  if (const auto v = j.find("stop"); v != j.end() && !v->is_null()) {
    if (v->is_string()) {
      r.stop.push_back(v->get<std::string>());
    } else if (v->is_array()) {
      if (v->size() > 16) throw bad_param("stop", "'stop' holds at most 16 strings");
      for (size_t i = 0; i < v->size(); ++i) r.stop.push_back(get_string((*v)[i], "stop[" + std::to_string(i) + "]"));
    } else {
      throw wrong_type("stop", "a string or an array of strings", *v);
    }
    for (const std::string& s : r.stop)
      if (s.empty()) throw bad_param("stop", "stop strings must not be empty");
  }
  if (const auto v = j.find("stream"); v != j.end() && !v->is_null()) r.stream = get_bool(*v, "stream");
  if (const auto v = j.find("stream_options"); v != j.end() && !v->is_null()) {
    if (!v->is_object()) throw wrong_type("stream_options", "an object", *v);
    if (const auto u = v->find("include_usage"); u != v->end() && !u->is_null())
      r.include_usage = get_bool(*u, "stream_options.include_usage");
  }
  if (const auto v = j.find("ignore_eos"); v != j.end() && !v->is_null()) r.ignore_eos = get_bool(*v, "ignore_eos");
  if (const auto v = j.find("n"); v != j.end() && !v->is_null() && get_int(*v, "n") != 1)
    throw bad_param("n", "only n = 1 is supported");
  if (const auto v = j.find("logprobs"); v != j.end() && !v->is_null() && !(v->is_boolean() && !v->get<bool>()))
    throw bad_param("logprobs", "'logprobs' is not supported");
  if (const auto v = j.find("tools"); v != j.end() && !v->is_null()) throw bad_param("tools", "'tools' is not supported");
  try {
    validate(r.sampling);
  } catch (const Error& e) {
    throw ApiError(400, e.what(), "invalid_request_error", "invalid_value");
  }
  return r;
}

std::string finish_reason_of(const std::string& stop_reason) {
  if (stop_reason == "length" || stop_reason == "context") return "length";
  return "stop";
}

json usage_json(int64_t prompt_tokens, int64_t completion_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens}};
}

json completion_response(const CompletionIds& ids, bool chat, const std::string& text,
                         const std::string& finish_reason, int64_t prompt_tokens, int64_t completion_tokens) {
  json choice = {{"index", 0}, {"finish_reason", finish_reason}};
  if (chat) {
    choice["message"] = {{"role", "assistant"}, {"content", text}};
  } else {
    choice["text"] = text;
    choice["logprobs"] = nullptr;
  }
  return {{"id", ids.id},
          {"object", chat ? "chat.completion" : "text_completion"},
          {"created", ids.created},
          {"model", ids.model},
          {"choices", json::array({choice})},
          {"usage", usage_json(prompt_tokens, completion_tokens)}};
}

json completion_chunk(const CompletionIds& ids, bool chat, const std::string& text, bool first,
                      const std::string* finish_reason) {
  json choice = {{"index", 0}};
  choice["finish_reason"] = finish_reason ? json(*finish_reason) : json(nullptr);
  if (chat) {
    json delta = json::object();
    if (first) delta["role"] = "assistant";
    if (!finish_reason || !text.empty()) delta["content"] = text;
    choice["delta"] = delta;
  } else {
    choice["text"] = text;
    choice["logprobs"] = nullptr;
  }
  return {{"id", ids.id},
          {"object", chat ? "chat.completion.chunk" : "text_completion"},
          {"created", ids.created},
          {"model", ids.model},
          {"choices", json::array({choice})}};
}

json usage_chunk(const CompletionIds& ids, bool chat, int64_t prompt_tokens, int64_t completion_tokens) {
  return {{"id", ids.id},
          {"object", chat ? "chat.completion.chunk" : "text_completion"},
          {"created", ids.created},
          {"model", ids.model},
          {"choices", json::array()},
          {"usage", usage_json(prompt_tokens, completion_tokens)}};
}

std::string sse(const json& j) {
  return "data: " + j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

}  // namespace tokenscope::serve
