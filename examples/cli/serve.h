// serve.h - `paca serve`, the OpenAI-compatible HTTP server of the paca
// command (serve.cpp; built when cpp-httplib is found).
#pragma once

// Runs `paca serve ARGS...` (argv[1] is "serve") until SIGINT or SIGTERM;
// returns the exit status.
int cmd_serve(int argc, char** argv);
