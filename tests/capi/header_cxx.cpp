// header_cxx.cpp - paca.h must compile as strict C++ with every warning.
#include <paca/paca.h>

int paca_header_cxx_check();
int paca_header_cxx_check() {
  paca_model_info info{};
  info.struct_size = sizeof info;
  return static_cast<int>(info.struct_size);
}
