// header_modes.cpp -- the C++ variant of header_modes.c: the same checks compiled as C++
// (tests/header_modes.rs, C++11 to C++20), with vmsrs.h first included the way C++ code
// often includes a C header, inside extern "C". The C++ parts of the header (the
// VMSRS_GET/VMSRS_SET templates) must still have C++ linkage.
extern "C" {
#include <vmsrs.h>
}

#include "header_modes.c"
