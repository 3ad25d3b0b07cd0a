// tok_test_util.cpp - see tok_test_util.h.
#include "tok_test_util.h"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>

#include "tokenizer/tokenizer_files.h"
#include "util/error.h"

namespace toktest {

std::string shared_dir() {
  const char* env = std::getenv("PACA_SHARED_DIR");
  std::string d = env && *env ? env : PACA_SHARED_DEFAULT;
  struct stat st {};
  if (::stat((d + "/tokenizers").c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return "";
  return d;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

const paca::Tokenizer& shared_tokenizer(const std::string& rel) {
  static std::mutex mu;
  static std::map<std::string, std::unique_ptr<paca::Tokenizer>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto& slot = cache[rel];
  if (!slot) {
    try {
      slot = paca::load_tokenizer_file(shared_dir() + "/" + rel);
    } catch (const paca::Error& e) {
      ADD_FAILURE() << "cannot load " << rel << ": " << e.what();
      throw;
    }
  }
  return *slot;
}

std::vector<Vector> read_vectors(const std::string& inp, const std::string& out) {
  std::string in = read_file(inp), ids = read_file(out);
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> texts;
  for (size_t i = 0;;) {
    size_t j = in.find(sep, i);
    if (j == std::string::npos) break;
    texts.push_back(in.substr(i, j - i));
    i = j + sep.size();
  }
  std::vector<Vector> v;
  std::istringstream lines(ids);
  std::string line;
  for (const std::string& t : texts) {
    if (!std::getline(lines, line)) break;
    Vector x;
    x.text = t;
    std::istringstream nums(line);
    int32_t id;
    while (nums >> id) x.ids.push_back(id);
    v.push_back(std::move(x));
  }
  EXPECT_EQ(v.size(), texts.size()) << inp << " vs " << out;
  EXPECT_FALSE(v.empty()) << inp;
  return v;
}

std::string ids_str(const std::vector<int32_t>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
  return s + "]";
}

}  // namespace toktest
