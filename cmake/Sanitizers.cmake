if(GPUSLICE_SANITIZE)
  message(STATUS "gpuslice: building with -fsanitize=${GPUSLICE_SANITIZE}")
  add_compile_options(-fsanitize=${GPUSLICE_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${GPUSLICE_SANITIZE})
endif()

if(GPUSLICE_BUILD_FUZZERS)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "GPUSLICE_BUILD_FUZZERS needs clang (use the `fuzz` preset)")
  endif()
  # Instrument every library for coverage so libFuzzer can steer; only fuzz targets link the
  # fuzzer runtime.
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer)
endif()
