// paca.i - the SWIG interface shared by the Java and C# bindings: it wraps
// paca_swig.h (the vector-and-status layer over paca.h) and nothing else.
%module paca_native

%{
#include "paca_swig.h"
%}

%include <stdint.i>
%include <std_string.i>
%include <std_vector.i>

namespace pacaw { struct Generator; }
// paca.h's handles stay opaque pointers (SWIGTYPE_p_paca_*) in both languages.
struct paca_model;
struct paca_session;
struct paca_engine;
struct paca_sampler;
struct paca_detokenizer;
struct paca_stop_matcher;

namespace std {
  %template(GeneratorList) vector<pacaw::Generator*>;
  %template(IntVector) vector<int32_t>;
  %template(ByteVector) vector<uint8_t>;
  %template(FloatVector) vector<float>;
  %template(ByteVectorList) vector<vector<uint8_t> >;
}

%ignore pacaw::t_status;
%ignore pacaw::t_message;
%ignore pacaw::ok;
%ignore pacaw::fail;
%ignore pacaw::c_string;
%ignore pacaw::LogQueue;
%ignore pacaw::log_queue;
%ignore pacaw::log_to_queue;
%ignore pacaw::NativeChat;
%ignore pacaw::NativeSampling;
%ignore pacaw::copy_logprobs;
%ignore pacaw::empty_logprobs;
%ignore pacaw::Generator::handle;
%ignore pacaw::Generator::text;
%ignore pacaw::GenerateParams::stop_strings;
%ignore pacaw::GenerateParams::stop_ids;
%ignore pacaw::StopStrings;
%extend pacaw::GenerateParams {
  void add_stop_id(int id) { $self->stop_ids.push_back(id); }
}

%include "paca_swig.h"
