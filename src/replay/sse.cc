#include "replay/sse.h"

namespace kvr::replay {

std::vector<std::string> SseParser::Feed(std::string_view bytes) {
  std::vector<std::string> out;
  while (!bytes.empty() && !overflowed_) {
    const size_t end = bytes.find('\n');
    const std::string_view part = bytes.substr(0, end);
    if (line_.size() + part.size() > max_line_bytes_) {
      overflowed_ = true;
      line_.clear();
      break;
    }
    line_.append(part);
    if (end == std::string_view::npos) break;
    bytes.remove_prefix(end + 1);
    std::string_view line = line_;
    if (line.ends_with('\r')) line.remove_suffix(1);
    Line(line, &out);
    line_.clear();
  }
  return out;
}

void SseParser::Line(std::string_view line, std::vector<std::string>* out) {
  if (line.empty()) {  // the event ends
    if (has_data_) out->push_back(std::move(data_));
    data_.clear();
    has_data_ = false;
    return;
  }
  if (line.front() == ':') return;  // a comment
  const size_t colon = line.find(':');
  const std::string_view field = line.substr(0, colon);
  if (field != "data") return;
  std::string_view value = colon == std::string_view::npos ? "" : line.substr(colon + 1);
  if (value.starts_with(' ')) value.remove_prefix(1);
  if (has_data_) data_ += '\n';
  data_.append(value);
  has_data_ = true;
}

}  // namespace kvr::replay
