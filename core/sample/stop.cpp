// stop.cpp - see stop.h.
#include "sample/stop.h"

#include <algorithm>

#include "util/error.h"

namespace paca {

const char* stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::none: return "none";
    case StopReason::eos: return "eos";
    case StopReason::stop_token: return "stop_token";
    case StopReason::stop_string: return "stop_string";
    case StopReason::max_tokens: return "length";
    case StopReason::context_full: return "context_full";
  }
  return "unknown";
}

StopReason StopConditions::check(int32_t token, uint64_t n_generated) const {
  auto in = [token](const std::vector<int32_t>& v) { return std::find(v.begin(), v.end(), token) != v.end(); };
  if (!ignore_eos && in(eos_ids)) return StopReason::eos;
  if (in(stop_ids)) return StopReason::stop_token;
  if (max_new_tokens != 0 && n_generated >= max_new_tokens) return StopReason::max_tokens;
  return StopReason::none;
}

StopStringMatcher::StopStringMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {
  for (size_t i = 0; i < stops_.size(); ++i) {
    check(!stops_[i].empty(), Status::invalid_argument, "stop string {} is empty", i);
    max_len_ = std::max(max_len_, stops_[i].size());
  }
}

StopStringMatcher::Result StopStringMatcher::feed(std::string_view piece) {
  out_.clear();
  if (stopped_ >= 0) return {out_, stopped_};
  if (stops_.empty()) {
    out_.assign(piece);
    return {out_, -1};
  }
  pending_.append(piece);
  const std::string_view t = pending_;

  // The stop string that is complete first, i.e. whose first occurrence ends
  // first (ties: the one starting first, then the lower index). Choosing by
  // the end makes the result independent of how the text was cut in pieces.
  size_t at = std::string_view::npos, end = std::string_view::npos;
  for (size_t i = 0; i < stops_.size(); ++i) {
    const size_t pos = t.find(stops_[i]);
    if (pos == std::string_view::npos) continue;
    const size_t e = pos + stops_[i].size();
    if (e < end || (e == end && pos < at)) {
      at = pos;
      end = e;
      stopped_ = static_cast<int>(i);
    }
  }
  if (stopped_ >= 0) {
    out_.assign(t.substr(0, at));
    pending_.clear();
    return {out_, stopped_};
  }

  // Hold back the longest suffix that is a proper prefix of some stop string;
  // every later match must start inside it.
  size_t hold = 0;
  for (size_t len = std::min(t.size(), max_len_ - 1); len > 0 && hold == 0; --len) {
    const std::string_view suffix = t.substr(t.size() - len);
    for (const std::string& s : stops_)
      if (s.size() > len && std::string_view(s).substr(0, len) == suffix) {
        hold = len;
        break;
      }
  }
  out_.assign(t.substr(0, t.size() - hold));
  pending_.erase(0, t.size() - hold);
  return {out_, -1};
}

std::string_view StopStringMatcher::flush() {
  out_.clear();
  if (stopped_ < 0) out_.swap(pending_);
  pending_.clear();
  return out_;
}

void StopStringMatcher::reset() {
  pending_.clear();
  out_.clear();
  stopped_ = -1;
}

}  // namespace paca
