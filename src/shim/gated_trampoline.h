// GPUSLICE_GATED_TRAMPOLINE(symbol, real_slot, wrapper): defines the exported launch entry
// `symbol` in assembly, so that a launch the gate lets through at once reaches the real driver
// the way a forwarded call does (forwarding_trampoline.h): one indirect jump, every argument
// register and stack slot untouched, no frame. It is AdmitLaunch's fast path (launch_gate.h) up
// to the holder-while-others-wait test, which only the wrapper runs; scratch registers only:
//   g_launch_gate.token == null (not arbitrated)                   -> jmp *real_slot
//   *g_launch_gate.holding != 0 &&
//       acquire-load(*g_launch_gate.token) == g_launch_gate.alone_token -> jmp *real_slot
//   anything else, or real_slot still null                         -> jmp wrapper
// `wrapper` is the C++ launch wrapper (hidden), which loads the driver, runs AdmitLaunch — the
// reference, slow path included — and calls the real function. `real_slot` (hidden void*) is
// null until the wrapper has seen the real function and stored it there (release), so the first
// launch, and every launch before the driver is loaded, goes through the wrapper.
//
// x86-64 only (an acquire load is a plain mov there; loads are not reordered with loads).
// Elsewhere, or built with -DGPUSLICE_NO_GATED_TRAMPOLINES (the reference build the benchmark
// compares against), GPUSLICE_HAS_GATED_TRAMPOLINES is 0 and the C++ wrapper is the exported
// symbol.
#pragma once

#include <cstddef>

#include "shim/launch_gate.h"

#if defined(__x86_64__) && !defined(GPUSLICE_NO_GATED_TRAMPOLINES)
#define GPUSLICE_HAS_GATED_TRAMPOLINES 1

// The assembly names g_launch_gate by its mangled name and its fields by offset; a field added
// to LaunchGateFastPath means AdmitLaunch's fast path changed: change the assembly with it.
// The fields after `holding` (the holder's fast path while others wait: held_token, held_streams,
// budget) are deliberately not in the assembly: that test needs the launch's stream, which each
// entry point has in another place (a stack slot, a register, a field of CUlaunchConfig), and an
// atomic decrement; a contended holder's launch jumps to the wrapper, whose AdmitLaunch runs it.
static_assert(sizeof(gpuslice::shim::LaunchGateFastPath) == 128);
static_assert(offsetof(gpuslice::shim::LaunchGateFastPath, held_token) == 24 &&
              offsetof(gpuslice::shim::LaunchGateFastPath, budget) == 64);
static_assert(offsetof(gpuslice::shim::LaunchGateFastPath, token) == 0);
static_assert(offsetof(gpuslice::shim::LaunchGateFastPath, alone_token) == 8);
static_assert(offsetof(gpuslice::shim::LaunchGateFastPath, holding) == 16);
static_assert(sizeof(gpuslice::shim::LaunchGateFastPath::token) == 8 &&
              sizeof(gpuslice::shim::LaunchGateFastPath::alone_token) == 8 &&
              sizeof(*gpuslice::shim::LaunchGateFastPath::holding) == 4);
#define GPUSLICE_LAUNCH_GATE_SYMBOL "_ZN8gpuslice4shim13g_launch_gateE"

#define GPUSLICE_GATED_TRAMPOLINE(symbol, slot, wrapper)                             \
  asm(".text\n.globl " #symbol "\n.type " #symbol ",@function\n.p2align 4\n" #symbol \
      ":\n"                                                                          \
      "\t.byte 0xf3,0x0f,0x1e,0xfa\n" /* endbr64 */                                  \
      "\tmovq " GPUSLICE_LAUNCH_GATE_SYMBOL                                          \
      "(%rip), %rax\n" /* token word's address */                                    \
      "\ttestq %rax, %rax\n"                                                         \
      "\tjne 1f\n"                                                                   \
      "\tmovq " #slot                                                                \
      "(%rip), %r11\n" /* not arbitrated */                                          \
      "\ttestq %r11, %r11\n"                                                         \
      "\tje " #wrapper                                                               \
      "\n"                                                                           \
      "\tjmp *%r11\n"                                                                \
      "1:\n"                                                                         \
      "\tmovq " GPUSLICE_LAUNCH_GATE_SYMBOL                                          \
      "+16(%rip), %r11\n" /* holding flag page */                                    \
      "\tcmpl $0, (%r11)\n"                                                          \
      "\tje " #wrapper                                                               \
      "\n"                                                                           \
      "\tmovq (%rax), %rax\n" /* the token word (acquire: a plain load on x86-64) */ \
      "\tcmpq " GPUSLICE_LAUNCH_GATE_SYMBOL                                          \
      "+8(%rip), %rax\n" /* alone_token */                                           \
      "\tjne " #wrapper                                                              \
      "\n"                                                                           \
      "\tmovq " #slot                                                                \
      "(%rip), %r11\n" /* alone, holding the token */                                \
      "\ttestq %r11, %r11\n"                                                         \
      "\tje " #wrapper                                                               \
      "\n"                                                                           \
      "\tjmp *%r11\n"                                                                \
      ".size " #symbol ",.-" #symbol "\n");
#else
#define GPUSLICE_HAS_GATED_TRAMPOLINES 0
#endif
