// GPUSLICE_FORWARDING_TRAMPOLINE(symbol, slot): defines the exported function `symbol` as a
// single indirect jump through the hidden pointer variable `slot`, so a forwarded call reaches
// the real library with every argument register untouched, whatever its signature. `slot` is
// filled from the real library when the shim loads and points to a "missing symbol" stub until
// then (or when the real library lacks the symbol).
#pragma once

#if defined(__x86_64__)
#define GPUSLICE_FORWARDING_TRAMPOLINE(symbol, slot)                                 \
  asm(".text\n.globl " #symbol "\n.type " #symbol ",@function\n.p2align 4\n" #symbol \
      ":\n"                                                                          \
      "\t.byte 0xf3,0x0f,0x1e,0xfa\n" /* endbr64 */                                  \
      "\tjmp *" #slot "(%rip)\n.size " #symbol ",.-" #symbol "\n");
#elif defined(__aarch64__)
#define GPUSLICE_FORWARDING_TRAMPOLINE(symbol, slot)                                 \
  asm(".text\n.globl " #symbol "\n.type " #symbol ",%function\n.p2align 4\n" #symbol \
      ":\n"                                                                          \
      "\tbti c\n\tadrp x16, " #slot "\n\tldr x16, [x16, :lo12:" #slot                \
      "]\n\tbr x16\n"                                                                \
      ".size " #symbol ",.-" #symbol "\n");
#else
#error "gpuslice shim: forwarding trampolines exist for x86_64 and aarch64 only"
#endif

// Lazy loading (x86-64): a forwarded symbol's pointer starts at its lazy stub, which loads the
// real library on the first call of any forwarded function, with every argument register saved,
// then jumps through the (now filled) pointer again.
//   GPUSLICE_LAZY_STUB(stub, slot, common): `stub` puts &slot in r11 and jumps to `common`.
//   GPUSLICE_LAZY_COMMON(common, loader): saves rdi, rsi, rdx, rcx, r8, r9, rax (varargs count),
//   r11 and xmm0-7, calls `loader()` — which must point every slot somewhere other than its
//   stub — restores them and jumps through *r11.
// Elsewhere the shim loads the real library in its constructor.
#if defined(__x86_64__)
#define GPUSLICE_HAS_LAZY_LOADING 1
#define GPUSLICE_LAZY_STUB(stub, slot, common)                                                    \
  asm(".text\n.p2align 4\n.globl " #stub "\n.hidden " #stub "\n.type " #stub ",@function\n" #stub \
      ":\n"                                                                                       \
      "\t.byte 0xf3,0x0f,0x1e,0xfa\n" /* endbr64 */                                               \
      "\tleaq " #slot                                                                             \
      "(%rip), %r11\n"                                                                            \
      "\tjmp " #common "\n.size " #stub ",.-" #stub "\n");
#define GPUSLICE_LAZY_COMMON(common, loader)                                              \
  asm(".text\n.p2align 4\n.globl " #common "\n.hidden " #common "\n.type " #common        \
      ",@function\n" #common                                                              \
      ":\n"                                                                               \
      "\t.byte 0xf3,0x0f,0x1e,0xfa\n"                                                     \
      "\tpushq %rbp\n\tmovq %rsp, %rbp\n\tsubq $192, %rsp\n"                              \
      "\tmovq %rdi, 0(%rsp)\n\tmovq %rsi, 8(%rsp)\n\tmovq %rdx, 16(%rsp)\n"               \
      "\tmovq %rcx, 24(%rsp)\n\tmovq %r8, 32(%rsp)\n\tmovq %r9, 40(%rsp)\n"               \
      "\tmovq %rax, 48(%rsp)\n\tmovq %r11, 56(%rsp)\n"                                    \
      "\tmovdqu %xmm0, 64(%rsp)\n\tmovdqu %xmm1, 80(%rsp)\n\tmovdqu %xmm2, 96(%rsp)\n"    \
      "\tmovdqu %xmm3, 112(%rsp)\n\tmovdqu %xmm4, 128(%rsp)\n\tmovdqu %xmm5, 144(%rsp)\n" \
      "\tmovdqu %xmm6, 160(%rsp)\n\tmovdqu %xmm7, 176(%rsp)\n"                            \
      "\tcall " #loader                                                                   \
      "\n"                                                                                \
      "\tmovq 0(%rsp), %rdi\n\tmovq 8(%rsp), %rsi\n\tmovq 16(%rsp), %rdx\n"               \
      "\tmovq 24(%rsp), %rcx\n\tmovq 32(%rsp), %r8\n\tmovq 40(%rsp), %r9\n"               \
      "\tmovq 48(%rsp), %rax\n\tmovq 56(%rsp), %r11\n"                                    \
      "\tmovdqu 64(%rsp), %xmm0\n\tmovdqu 80(%rsp), %xmm1\n\tmovdqu 96(%rsp), %xmm2\n"    \
      "\tmovdqu 112(%rsp), %xmm3\n\tmovdqu 128(%rsp), %xmm4\n\tmovdqu 144(%rsp), %xmm5\n" \
      "\tmovdqu 160(%rsp), %xmm6\n\tmovdqu 176(%rsp), %xmm7\n"                            \
      "\tmovq %rbp, %rsp\n\tpopq %rbp\n"                                                  \
      "\tjmp *(%r11)\n.size " #common ",.-" #common "\n");
#else
#define GPUSLICE_HAS_LAZY_LOADING 0
#endif
