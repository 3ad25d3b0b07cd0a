// generator.cpp - the pull-based generation loop (see generator.h).
#include "runtime/generator.h"

#include <algorithm>

#include "util/error.h"

namespace paca {

namespace {

DecodeOptions decode_options(const Session& s, int32_t bos_id, bool render_special) {
  DecodeOptions o;
  o.render_special = render_special;
  const auto& t = s.tokens();
  o.keep_leading_space = std::any_of(t.begin(), t.end(), [&](int32_t id) { return id != bos_id; });
  return o;
}

}  // namespace

Generator::Generator(Session& session, Sampler& sampler, const StopConditions& stop, const Tokenizer* tok,
                     int32_t bos_id, GenerateOptions opt)
    : session_(session), sampler_(sampler), stop_(stop), opt_(std::move(opt)), matcher_(opt_.stop_strings) {
  if (tok == nullptr && !opt_.stop_strings.empty())
    fail(Status::state, "stop strings need a model with a tokenizer (stop token ids work without)");
  if (tok != nullptr) detok_ = std::make_unique<TextStream>(*tok, decode_options(session, bos_id, opt_.render_special));
}

void Generator::emit(std::string_view piece) {
  const auto r = matcher_.feed(piece);
  text_.append(r.text);
}

void Generator::finish(StopReason why) {
  reason_ = why;
  if (detok_ == nullptr) return;
  scratch_.clear();
  detok_->flush(scratch_);
  emit(scratch_);
  text_.append(matcher_.flush());  // held back for a stop string that never came
}

Generator::Step Generator::next() { return step(true); }

Generator::Step Generator::next_deferred() { return step(false); }

void Generator::next_batch(std::span<Generator* const> gens, std::span<Step> out) {
  check(out.size() == gens.size(), Status::internal, "next_batch: {} steps for {} generators", out.size(), gens.size());
  // everything that could refuse the step is checked before any generator samples
  for (size_t i = 0; i < gens.size(); ++i) {
    const Generator* g = gens[i];
    check(g != nullptr, Status::invalid_argument, "generator {} is missing", i);
    check(&g->session_.model() == &gens[0]->session_.model(), Status::invalid_argument,
          "generator {} runs on another model than generator 0", i);
    for (size_t j = 0; j < i; ++j)
      check(gens[j] != g && &gens[j]->session_ != &g->session_, Status::invalid_argument,
            "generators {} and {} share a session", j, i);
    if (g->done()) continue;
    check(!g->failed_, Status::state, "generator {} failed at an earlier step", i);
    check(g->session_.has_logits(), Status::state, "generator {}: the session has no logits", i);
    check(g->fed_length_ == 0 || g->session_.length() == g->fed_length_, Status::state,
          "generator {}: the previous token was not appended to the session", i);
  }
  std::vector<Session::BatchItem> items;
  std::vector<Generator*> fed;
  for (size_t i = 0; i < gens.size(); ++i) {
    out[i] = gens[i]->next_deferred();
    if (out[i].token >= 0 && !gens[i]->done()) {
      items.push_back({&gens[i]->session_, std::span<const int32_t>(&gens[i]->pending_, 1)});
      gens[i]->pending_ = out[i].token;
      fed.push_back(gens[i]);
    }
  }
  try {
    Session::step_batch(items);
  } catch (...) {
    for (Generator* g : fed) g->failed_ = true;
    throw;
  }
}

Generator::Step Generator::step(bool feed) {
  text_.clear();
  if (done()) return {-1, text_};
  if (failed_) fail(Status::state, "the generation failed at an earlier step");
  if (!session_.has_logits()) fail(Status::state, "the session has no logits (prefill a prompt first)");
  if (fed_length_ != 0 && session_.length() != fed_length_)
    fail(Status::state, "the previous token was not appended to the session");
  fed_length_ = 0;
  const int32_t tok = session_.sample(sampler_, opt_.logprobs ? &logprobs_ : nullptr, opt_.n_top_logprobs);
  ++n_generated_;
  if (detok_ != nullptr) {
    scratch_.clear();
    detok_->push(tok, scratch_);
    emit(scratch_);
  }
  StopReason why = matcher_.stop_index() >= 0 ? StopReason::stop_string : stop_.check(tok, n_generated_);
  if (why == StopReason::none && session_.length() >= session_.context_size()) why = StopReason::context_full;
  if (why != StopReason::none) {
    finish(why);
    return {tok, text_};
  }
  if (!feed) {
    fed_length_ = session_.length() + 1;
    return {tok, text_};
  }
  try {
    session_.prefill(std::span<const int32_t>(&tok, 1));
  } catch (...) {
    failed_ = true;
    throw;
  }
  return {tok, text_};
}

}  // namespace paca
