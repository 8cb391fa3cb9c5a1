// libFuzzer: arbitrary bytes as chat-template source. Compiling must fail cleanly or succeed;
// rendering a compiled template against a small chat context must finish within the limits
// (no crash, no hang, no unbounded memory) whatever the template does. An Internal status is an
// exception the module's boundary caught: a bug, reported as a crash here.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "chat/chat_template.h"

namespace {

constexpr std::string_view kContext = R"({"messages": [
  {"role": "system", "content": "sys"},
  {"role": "user", "content": " héllo 你好 "},
  {"role": "assistant", "content": null, "tool_calls": [{"id": "abc123XYZ", "type": "function",
    "function": {"name": "f", "arguments": {"a": [1, 2.5, true, null]}}}]},
  {"role": "tool", "content": "{\"ok\": 1}"}],
  "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
  "documents": null, "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>",
  "n": -9223372036854775808, "big": 9223372036854775807, "f": 1.5e300, "digits": "99999999999999999999"})";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view src(reinterpret_cast<const char*>(data), size);
  auto tmpl = kvr::chat::ChatTemplate::Compile(src);
  if (tmpl.status().code() == absl::StatusCode::kInternal) std::abort();
  if (!tmpl.ok()) return 0;
  kvr::chat::RenderOptions opt;
  opt.limits.max_steps = 200000;
  opt.limits.max_output_bytes = 1 << 20;
  opt.limits.max_call_depth = 50;
  auto out = (*tmpl)->RenderJson(kContext, opt);
  if (out.status().code() == absl::StatusCode::kInternal) std::abort();
  return 0;
}
