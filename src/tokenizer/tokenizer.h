// Tokenizers built from GGUF metadata: byte-level BPE (gpt2-style vocabularies with the
// llama3 / smollm / qwen2 / gpt2 pre-tokenizers) and SentencePiece-style (llama / gemma vocabularies).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tokenscope {
namespace gguf { class File; }

using TokenId = int32_t;

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Builds the tokenizer from tokenizer.ggml.* metadata; throws tokenscope::Error naming the file
  // and the key when something is missing or inconsistent.
  static std::unique_ptr<Tokenizer> from_gguf(const gguf::File& file);

  // add_special: add BOS/EOS as the vocabulary asks (tokenizer.ggml.add_bos_token / add_eos_token).
  // parse_special: text such as "<|im_start|>" becomes the special token instead of plain text.
  virtual std::vector<TokenId> encode(std::string_view text, bool add_special, bool parse_special) const = 0;
  // The bytes a token stands for (byte tokens give their byte; control tokens give "" unless render_special).
  virtual std::string token_to_piece(TokenId id, bool render_special = false) const = 0;
  std::string decode(const std::vector<TokenId>& ids, bool render_special = false) const;

  virtual int32_t n_vocab() const = 0;
  virtual TokenId bos() const = 0;  // -1 if none
  virtual TokenId eos() const = 0;  // -1 if none
  // End of generation: EOS, EOT, <|im_end|>, <end_of_turn>, <|eot_id|> and the like.
  virtual bool is_eog(TokenId id) const = 0;
  virtual const std::string& token_text(TokenId id) const = 0;  // raw vocabulary entry
  virtual std::optional<TokenId> find_token(std::string_view text) const = 0;
};

// The vocabulary entry of byte b in a byte-level BPE (GPT-2's byte-to-code-point mapping, as UTF-8).
std::string gpt2_byte_token(uint8_t b);

// Chat templates: the common formats, recognised from tokenizer.chat_template.
struct ChatMessage {
  std::string role;     // "system", "user", "assistant"
  std::string content;
};
enum class ChatFormat { chatml, llama3, gemma };
const char* chat_format_name(ChatFormat f);
std::optional<ChatFormat> chat_format_from_name(std::string_view name);
// Detects the format from a Jinja chat template string; nullopt if unknown.
std::optional<ChatFormat> detect_chat_format(std::string_view jinja_template);
// Renders messages; add_generation_prompt appends the opening of the assistant turn.
// default_system: a system message inserted first when the conversation has none (the SmolLM2
// template does this); empty for none.
std::string render_chat(ChatFormat f, const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                        const std::string& default_system = "");
// A model's chat format and the system message its template inserts when a conversation has none, from
// tokenizer.chat_template; throws Error if the file has no template or one of another format.
struct ChatTemplate {
  ChatFormat format;
  std::string default_system;
};
ChatTemplate chat_template_of(const gguf::File& file);

}  // namespace tokenscope
