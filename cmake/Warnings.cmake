# gpuslice_warnings: an interface target every project target links to.
add_library(gpuslice_warnings INTERFACE)
target_compile_options(gpuslice_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
  -Wunused -Woverloaded-virtual -Wconversion -Wsign-conversion -Wnull-dereference
  -Wdouble-promotion -Wformat=2 -Wimplicit-fallthrough)
if(GPUSLICE_WERROR)
  target_compile_options(gpuslice_warnings INTERFACE -Werror)
  # GCC 12's optimiser reports false positives inside libstdc++'s std::string at -O2/-O3
  # (-Wrestrict: GCC bug 105329; -Wnull-dereference in basic_string's internals). They stay
  # visible as warnings but do not fail optimised builds on that compiler.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
    target_compile_options(gpuslice_warnings INTERFACE
      $<$<NOT:$<CONFIG:Debug>>:-Wno-error=restrict -Wno-error=null-dereference>)
  endif()
endif()

# Flags for C sources (the shim's C-ABI parts, fake drivers).
add_library(gpuslice_c_warnings INTERFACE)
target_compile_options(gpuslice_c_warnings INTERFACE -Wall -Wextra)
if(GPUSLICE_WERROR)
  target_compile_options(gpuslice_c_warnings INTERFACE -Werror)
endif()
