/* header_c99.c - paca.h must compile as strict C99 with every warning. */
#include <paca/paca.h>

int paca_header_c99_check(void);
int paca_header_c99_check(void) {
  paca_model_params p = paca_model_params_default();
  paca_session_params s = paca_session_params_default();
  return (int)(p.struct_size + s.struct_size);
}
