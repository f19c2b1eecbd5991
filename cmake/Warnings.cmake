# gpuslice_warnings: an interface target every project target links to.
add_library(gpuslice_warnings INTERFACE)
target_compile_options(gpuslice_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
  -Wunused -Woverloaded-virtual -Wconversion -Wsign-conversion -Wnull-dereference
  -Wdouble-promotion -Wformat=2 -Wimplicit-fallthrough)
if(GPUSLICE_WERROR)
  target_compile_options(gpuslice_warnings INTERFACE -Werror)
endif()

# Flags for C sources (the shim's C-ABI parts, fake drivers).
add_library(gpuslice_c_warnings INTERFACE)
target_compile_options(gpuslice_c_warnings INTERFACE -Wall -Wextra)
if(GPUSLICE_WERROR)
  target_compile_options(gpuslice_c_warnings INTERFACE -Werror)
endif()
