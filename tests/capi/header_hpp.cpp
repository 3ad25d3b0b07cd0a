// header_hpp.cpp - paca.hpp must compile as strict C++17 with every warning.
#include <paca/paca.hpp>

int paca_header_hpp_check();
int paca_header_hpp_check() {
  paca::GenerateOptions o;
  o.stop.push_back("x");
  return static_cast<int>(o.stop.size());
}
