/* header_c99.c - paca.h and paca_experimental.h must compile as strict C99
   with every warning. */
#include <paca/paca.h>
#include <paca/paca_experimental.h>

int paca_header_c99_check(void);
int paca_header_c99_check(void) {
  paca_model_params p;
  paca_model_params_init(&p, sizeof p);
  paca_session_params s;
  paca_session_params_init(&s, sizeof s);
  paca_test_model_params t;
  paca_test_model_params_init(&t, sizeof t);
  return (int)(p.struct_size + s.struct_size + t.struct_size);
}
