// The subset of NVML's C ABI the NVML shim and the fake NVML need. Layouts follow nvml.h.
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

typedef int nvmlReturn_t;
typedef struct nvmlDevice_st* nvmlDevice_t;

enum {
  NVML_SUCCESS = 0,
  NVML_ERROR_UNINITIALIZED = 1,
  NVML_ERROR_INVALID_ARGUMENT = 2,
  NVML_ERROR_NOT_SUPPORTED = 3,
  NVML_ERROR_INSUFFICIENT_SIZE = 7,
  NVML_ERROR_FUNCTION_NOT_FOUND = 13,
  NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25,
  NVML_ERROR_UNKNOWN = 999,
};

typedef struct {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
} nvmlMemory_t;

typedef struct {
  unsigned int version;
  unsigned long long total;
  unsigned long long reserved;
  unsigned long long free;
  unsigned long long used;
} nvmlMemory_v2_t;

// NVML_STRUCT_VERSION(Memory, 2): the struct size with the version in the top byte.
#ifdef __cplusplus
#define GPUSLICE_NVML_MEMORY_V2_VERSION \
  (static_cast<unsigned int>(sizeof(nvmlMemory_v2_t)) | (2u << 24u))
#else
#define GPUSLICE_NVML_MEMORY_V2_VERSION ((unsigned int)(sizeof(nvmlMemory_v2_t) | (2u << 24u)))
#endif

#define GPUSLICE_NVML_UUID_BUFFER_SIZE 96

#ifdef __cplusplus
}  // extern "C"
#endif
