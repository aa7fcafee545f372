// OpenAI's chat and text completion API: requests parsed and checked (an error names the field), responses and
// stream chunks built in its shapes (field names, usage, finish_reason, error objects).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/sampler.h"
#include "tokenizer/tokenizer.h"

namespace tokenscope::serve {

// A request the server refuses: the HTTP status and OpenAI's error object.
struct ApiError : std::runtime_error {
  ApiError(int status, std::string message, std::string type, std::string code = "", std::string param = "")
      : std::runtime_error(message), status(status), type(std::move(type)), code(std::move(code)),
        param(std::move(param)) {}
  int status;
  std::string type, code, param;
  nlohmann::json body() const;
};
// 400 invalid_request_error naming the parameter.
ApiError bad_param(const std::string& param, const std::string& message);

struct CompletionRequest {
  bool chat = false;
  std::vector<ChatMessage> messages;  // chat
  std::string prompt;                 // text completion
  std::string model;                  // empty: not given
  std::optional<int64_t> max_tokens;  // max_tokens or max_completion_tokens
  SamplerParams sampling;
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;         // stream_options.include_usage
  bool ignore_eos = false;            // extension, as llama-server's
  bool echo = false;                  // text completion: prepend the prompt to the text
};

// Parses the body of POST /v1/chat/completions (chat = true) or /v1/completions; throws ApiError (400) for
// malformed JSON, wrong types, values out of range and unsupported features. defaults: the server's sampling.
CompletionRequest parse_completion_request(const std::string& body, bool chat, const SamplerParams& defaults);

// finish_reason for a scheduler stop reason: "stop" (end of generation or a stop string) or "length".
std::string finish_reason_of(const std::string& stop_reason);

struct CompletionIds {
  std::string id;  // "chatcmpl-..." / "cmpl-..."
  int64_t created = 0;
  std::string model;
};
nlohmann::json usage_json(int64_t prompt_tokens, int64_t completion_tokens);
// The whole response of a non-streamed request.
nlohmann::json completion_response(const CompletionIds& ids, bool chat, const std::string& text,
                                   const std::string& finish_reason, int64_t prompt_tokens, int64_t completion_tokens);
// One stream chunk: text (for chat, the role comes with the first chunk), or the last chunk with finish_reason.
nlohmann::json completion_chunk(const CompletionIds& ids, bool chat, const std::string& text, bool first,
                                const std::string* finish_reason);
// The usage chunk of stream_options.include_usage (empty choices).
nlohmann::json usage_chunk(const CompletionIds& ids, bool chat, int64_t prompt_tokens, int64_t completion_tokens);
// A server-sent event: "data: <json>\n\n".
std::string sse(const nlohmann::json& j);

}  // namespace tokenscope::serve
