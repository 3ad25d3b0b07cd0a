// chat.cpp - a chat turn with streaming, through the C++ wrapper paca.hpp:
// render the conversation with the model's chat template, tokenize it, and
// stream the reply as it is generated.
//   example_chat_cpp MODEL_DIR ["user message"] [MAX_TOKENS]
#include <paca/paca.hpp>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

namespace {

// The message as a JSON string.
std::string json_string(const std::string& s) {
  std::string o = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') o += {'\\', static_cast<char>(c)};
    else if (c < 0x20) {
      char u[8];
      std::snprintf(u, sizeof u, "\\u%04x", c);
      o += u;
    } else o += static_cast<char>(c);
  }
  return o + "\"";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: " << argv[0] << " MODEL_DIR [\"user message\"] [MAX_TOKENS]\n";
    return 2;
  }
  const std::string question = argc > 2 ? argv[2] : "Tell me a story about a cat.";
  try {
    paca::Model model(argv[1]);
    const std::string messages = R"([{"role": "system", "content": "You are a helpful assistant."},)"
                                 R"( {"role": "user", "content": )" + json_string(question) + "}]";
    // The template writes the BOS and header tokens itself.
    const std::string prompt = model.chat_format(messages);
    paca::Session session(model);
    paca_sampler_params sampling;
    paca_sampler_params_init(&sampling, sizeof sampling);
    sampling.temperature = 0.7f;
    sampling.top_p = 0.9f;
    sampling.seed = 1;
    sampling.max_new_tokens = argc > 3 ? std::atoi(argv[3]) : 64;
    paca::Generator gen(session, model.tokenize(prompt, /*bos=*/false, /*special=*/true), &sampling);
    while (auto piece = gen.next()) std::cout << piece->text << std::flush;
    std::cout << "\n[" << gen.n_generated() << " tokens, stop reason " << gen.stop_reason() << "]\n";
  } catch (const paca::Error& e) {
    std::cerr << "paca: " << e.status_name() << ": " << e.what() << "\n";
    return 1;
  }
  return 0;
}
