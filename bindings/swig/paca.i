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

namespace std {
  %template(GeneratorList) vector<pacaw::Generator*>;
  %template(IntVector) vector<int32_t>;
  %template(ByteVector) vector<uint8_t>;
  %template(FloatVector) vector<float>;
  %template(ByteVectorList) vector<vector<uint8_t> >;
}

%ignore pacaw::t_status;
%ignore pacaw::ok;
%ignore pacaw::Generator::handle;
%ignore pacaw::Generator::text;
%ignore pacaw::GenerateParams::stop_strings;
%ignore pacaw::GenerateParams::stop_ids;
%ignore pacaw::sampler_params;
%ignore pacaw::StopStrings;
%extend pacaw::GenerateParams {
  void add_stop_id(int id) { $self->stop_ids.push_back(id); }
}

%include "paca_swig.h"
