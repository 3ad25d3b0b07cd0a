# leak_probe.py - leaks one paca_stop_matcher on purpose (through ctypes, into
# libpaca) so the ASan build can check that LeakSanitizer, with the Python
# tests' suppressions, still reports memory that libpaca allocated.
import ctypes
import sys

import paca  # noqa: F401  (the interpreter and package as in the tests)

lib = ctypes.CDLL(sys.argv[1])
out = ctypes.c_void_p()
stops = (ctypes.c_char_p * 1)(b"stop")
status = lib.paca_stop_matcher_create(stops, None, ctypes.c_size_t(1), ctypes.byref(out))
assert status == 0 and out.value, status
del out  # never freed
