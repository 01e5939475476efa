/* Fidelity of libvmsrs's store emulation (src/watch/emulate.rs), end to end, in an unmodified
 * program (no vmsrs.h).
 *
 * `watched.w` is the page to watch: run this program under
 *   LD_PRELOAD=target/release/libvmsrs.so VMSRS_RANGE_0=symbol:watched:4096
 * and every store to it traps and is emulated. `mirror` has the same layout and is never
 * watched. Each instruction form below runs once on `mirror` and once on `watched`, from
 * identical memory, registers and RFLAGS; the whole areas, the six general-purpose registers
 * the forms use and RFLAGS (CF PF AF ZF SF OF DF) must come out identical. The CPU computes
 * the mirror's result, so a difference is the emulator's. Without libvmsrs both sides are
 * plain memory and every form agrees trivially (the harness's own check).
 *
 * Output: one line `FORM <name> ok` or `FORM <name> MISMATCH ...` per form, `SKIP <name> ...`
 * for a form the CPU lacks, `watched page: <perms>` from /proc/self/maps at the start and
 * the end, and `forms: N ok` (exit 0) or `forms: N ok, M MISMATCH` (exit 1).
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* The watched page, then ordinary memory that a store or a string instruction running past
 * the end of the watched page lands in. */
struct area {
    unsigned char w[4096];
    unsigned char after[8192];
};

/* External linkage keeps both in .symtab (and .dynsym: the harness links with -rdynamic), so
 * symbol:watched resolves; `used` keeps them even if nothing here seemed to read them. */
__attribute__((aligned(4096), used)) struct area watched;
__attribute__((aligned(4096), used)) struct area mirror;

#define AREA_WORDS (sizeof(struct area) / 8)

/* The registers a form reads and writes. String forms take rsi/rdi as offsets from the
 * operand address `p` and give them back as offsets, so both sides compare equal. */
struct io {
    uint64_t a, b, c, d, si, di; /* rax rbx rcx rdx rsi rdi */
    uint64_t flags;              /* in: loaded with popfq; out: saved with pushfq */
};

typedef void form_fn(unsigned char *p, struct io *io, const unsigned char *v);

#define F_CF 0x001u
#define F_PF 0x004u
#define F_AF 0x010u
#define F_ZF 0x040u
#define F_SF 0x080u
#define F_DF 0x400u
#define F_OF 0x800u
#define F_ARITH (F_CF | F_PF | F_AF | F_ZF | F_SF | F_OF)
#define F_COMPARED (F_ARITH | F_DF)
/* Bit 1 is always 1; IF stays set (popfq cannot change it at CPL 3 anyway). */
#define F_BASE 0x202u

/* One form: `pre` prepares (vector registers, string offsets) before RFLAGS is loaded, `insn`
 * runs between popfq and pushfq, `post` undoes what `pre` did to the registers compared.
 * The stack pointer steps over the red zone before pushing: the compiler may keep data there.
 * `lea` moves it without touching the flags being captured. */
#define FORM_FN(fname, pre, insn, post)                                                                  \
    static void fname(unsigned char *p, struct io *io, const unsigned char *v)                           \
    {                                                                                                    \
        uint64_t a = io->a, b = io->b, c = io->c, d = io->d, si = io->si, di = io->di, fl = io->flags;   \
        __asm__ volatile(pre "\n\t"                                                                      \
                             "lea -128(%%rsp), %%rsp\n\t"                                                \
                             "push %[fl]\n\t"                                                            \
                             "popfq\n\t" insn "\n\t"                                                     \
                             "pushfq\n\t"                                                                \
                             "pop %[fl]\n\t"                                                             \
                             "lea 128(%%rsp), %%rsp\n\t"                                                 \
                             "cld\n\t" post                                                              \
                         : "+a"(a), "+b"(b), "+c"(c), "+d"(d), "+S"(si), "+D"(di), [fl] "+r"(fl)         \
                         : [p] "r"(p), [v] "r"(v)                                                        \
                         : "memory", "cc", "r9", "r10", "r11", "xmm0", "xmm9", "xmm15");                 \
        io->a = a, io->b = b, io->c = c, io->d = d, io->si = si, io->di = di, io->flags = fl;            \
    }

/* How a form's inputs are varied. */
enum sweep {
    ONCE,   /* the form's own inputs */
    MEM,    /* every value of VALS at the operand, flags all clear and all set */
    MEMREG, /* ... times every value of VALS in rax rbx rcx rsi rdi (rdx: its complement) */
    BITOFF, /* every bit offset in rcx for the operand width, each form run twice */
    FLAGS,  /* every combination of CF PF ZF SF OF */
};

enum need { ANY, AVX, MOVBE };

struct form {
    const char *name;
    form_fn *fn_mirror, *fn_watched;
    size_t off; /* operand offset in the area: p = area + off */
    enum sweep sweep;
    int width; /* operand bytes (BITOFF) */
    enum need need;
    uint64_t mem; /* stored at p first (8 bytes) */
    struct io in;
};

/* Register-to-memory moves take their bytes from xmm0/ymm0 and xmm9/ymm15, loaded from v. */
#define XMM_PRE "movdqu (%[v]), %%xmm0\n\tmovdqu 16(%[v]), %%xmm9"
#define YMM_PRE "vmovdqu (%[v]), %%ymm0\n\tvmovdqu 32(%[v]), %%ymm15"
#define STR_PRE "add %[p], %%rdi\n\tadd %[p], %%rsi"
#define STR_POST "sub %[p], %%rdi\n\tsub %[p], %%rsi"

#define OFF 0x100

/* F(name, pre, insn, post, off, sweep, width, need, mem, a, c, d, si, di, flags): the full
 * form; R(name, pre, head, tail, off, sweep): a RIP-relative form, `head SYMBOL tail` with
 * SYMBOL mirror or watched. The shorthands expand to F. */
#define S(n, insn, off, sw, w) F(n, "", insn, "", off, sw, w, ANY, 0, 0, 0, 0, 0, 0, 0)
#define V(n, insn, off) F(n, XMM_PRE, insn, "", off, ONCE, 0, ANY, 0, 0, 0, 0, 0, 0, 0)
#define Y(n, insn, off) F(n, YMM_PRE, insn, "vzeroupper", off, ONCE, 0, AVX, 0, 0, 0, 0, 0, 0, 0)
/* High-byte registers cannot be encoded with a REX prefix, which [p] (r8-r15) may need: these
 * forms address the operand through rbx (saved in r9), which none of them reads. */
#define H(n, insn, off, sw, w)                                                                           \
    F(n, "mov %%rbx, %%r9\n\tmov %[p], %%rbx", insn, "mov %%r9, %%rbx", off, sw, w, ANY, 0, 0, 0, 0, 0, 0, 0)
#define STR(n, insn, di, si, c, a) F(n, STR_PRE, insn, STR_POST, 0, ONCE, 0, ANY, 0, a, c, 0, si, di, 0)

/* add adc sub sbb and or xor: register sources at four sizes, sign-extended imm8, imm16/32. */
#define RMW(op)                                                                                          \
    S(op##b_reg, #op "b %%cl, (%[p])", OFF, MEMREG, 1)                                                   \
    S(op##w_reg, #op "w %%cx, (%[p])", OFF, MEMREG, 2)                                                   \
    S(op##l_reg, #op "l %%ecx, (%[p])", OFF, MEMREG, 4)                                                  \
    S(op##q_reg, #op "q %%rcx, (%[p])", OFF, MEMREG, 8)                                                  \
    S(lock_##op##l_reg, "lock " #op "l %%ecx, (%[p])", OFF, MEMREG, 4)                                   \
    S(op##b_imm_7f, #op "b $0x7f, (%[p])", OFF, MEM, 1)                                                  \
    S(op##b_imm_m1, #op "b $-1, (%[p])", OFF, MEM, 1)                                                    \
    S(op##w_imm8_m1, #op "w $-1, (%[p])", OFF, MEM, 2)                                                   \
    S(op##w_imm8_7f, #op "w $0x7f, (%[p])", OFF, MEM, 2)                                                 \
    S(op##w_imm8_m128, #op "w $-128, (%[p])", OFF, MEM, 2)                                               \
    S(op##l_imm8_m1, #op "l $-1, (%[p])", OFF, MEM, 4)                                                   \
    S(op##l_imm8_7f, #op "l $0x7f, (%[p])", OFF, MEM, 4)                                                 \
    S(op##l_imm8_m128, #op "l $-128, (%[p])", OFF, MEM, 4)                                               \
    S(op##q_imm8_m1, #op "q $-1, (%[p])", OFF, MEM, 8)                                                   \
    S(op##q_imm8_7f, #op "q $0x7f, (%[p])", OFF, MEM, 8)                                                 \
    S(op##q_imm8_m128, #op "q $-128, (%[p])", OFF, MEM, 8)                                               \
    S(op##w_imm16_1234, #op "w $0x1234, (%[p])", OFF, MEM, 2)                                            \
    S(op##w_imm16_m129, #op "w $-129, (%[p])", OFF, MEM, 2)                                              \
    S(op##l_imm32_80, #op "l $0x80, (%[p])", OFF, MEM, 4)                                                \
    S(op##l_imm32_m80000000, #op "l $-0x80000000, (%[p])", OFF, MEM, 4)                                  \
    S(op##l_imm32_7fffffff, #op "l $0x7fffffff, (%[p])", OFF, MEM, 4)                                    \
    S(op##q_imm32_80, #op "q $0x80, (%[p])", OFF, MEM, 8)                                                \
    S(op##q_imm32_m80000000, #op "q $-0x80000000, (%[p])", OFF, MEM, 8)                                  \
    S(op##q_imm32_7fffffff, #op "q $0x7fffffff, (%[p])", OFF, MEM, 8)

/* inc dec neg not */
#define UNARY(op)                                                                                        \
    S(op##b, #op "b (%[p])", OFF, MEM, 1)                                                                \
    S(op##w, #op "w (%[p])", OFF, MEM, 2)                                                                \
    S(op##l, #op "l (%[p])", OFF, MEM, 4)                                                                \
    S(op##q, #op "q (%[p])", OFF, MEM, 8)                                                                \
    S(lock_##op##l, "lock " #op "l (%[p])", OFF, MEM, 4)

/* bts btr btc: immediate offsets (taken modulo the width, also past it), register offsets
 * (signed, reaching outside the operand: BITOFF runs them at the middle of the page). */
#define BITS(op)                                                                                         \
    S(lock_##op##w_imm3, "lock " #op "w $3, (%[p])", OFF, MEM, 2)                                        \
    S(lock_##op##w_imm15, "lock " #op "w $15, (%[p])", OFF, MEM, 2)                                      \
    S(lock_##op##w_imm21, "lock " #op "w $21, (%[p])", OFF, MEM, 2)                                      \
    S(lock_##op##l_imm0, "lock " #op "l $0, (%[p])", OFF, MEM, 4)                                        \
    S(lock_##op##l_imm31, "lock " #op "l $31, (%[p])", OFF, MEM, 4)                                      \
    S(lock_##op##l_imm45, "lock " #op "l $45, (%[p])", OFF, MEM, 4)                                      \
    S(lock_##op##q_imm7, "lock " #op "q $7, (%[p])", OFF, MEM, 8)                                        \
    S(lock_##op##q_imm63, "lock " #op "q $63, (%[p])", OFF, MEM, 8)                                      \
    S(lock_##op##q_imm100, "lock " #op "q $100, (%[p])", OFF, MEM, 8)                                    \
    S(op##l_imm5, #op "l $5, (%[p])", OFF, MEM, 4)                                                       \
    S(lock_##op##w_reg, "lock " #op "w %%cx, (%[p])", 2048, BITOFF, 2)                                   \
    S(lock_##op##l_reg, "lock " #op "l %%ecx, (%[p])", 2048, BITOFF, 4)                                  \
    S(lock_##op##q_reg, "lock " #op "q %%rcx, (%[p])", 2048, BITOFF, 8)                                  \
    S(op##q_reg, #op "q %%rcx, (%[p])", 2048, BITOFF, 8)

#define SETCC(cc) S(set##cc, "set" #cc " (%[p])", OFF, FLAGS, 1)

#define FORMS                                                                                            \
    /* mov from registers (incl. a high byte, a REX byte register, r9) and immediates */                 \
    S(movb_reg, "movb %%cl, (%[p])", OFF, MEMREG, 1)                                                     \
    H(movb_ch, "movb %%ch, (%%rbx)", OFF, MEMREG, 1)                                                      \
    S(movb_sil, "movb %%sil, (%[p])", OFF, MEMREG, 1)                                                    \
    S(movw_reg, "movw %%cx, (%[p])", OFF, MEMREG, 2)                                                     \
    S(movl_reg, "movl %%ecx, (%[p])", OFF, MEMREG, 4)                                                    \
    S(movq_reg, "movq %%rcx, (%[p])", OFF, MEMREG, 8)                                                    \
    F(movq_r9, "mov %%rcx, %%r9", "movq %%r9, (%[p])", "", OFF, MEMREG, 8, ANY, 0, 0, 0, 0, 0, 0, 0)    \
    S(movb_imm, "movb $0x81, (%[p])", OFF, MEM, 1)                                                       \
    S(movw_imm, "movw $0x8001, (%[p])", OFF, MEM, 2)                                                     \
    S(movl_imm, "movl $0x80000001, (%[p])", OFF, MEM, 4)                                                 \
    S(movq_imm_m2, "movq $-2, (%[p])", OFF, MEM, 8)                                                      \
    S(movq_imm_7fffffff, "movq $0x7fffffff, (%[p])", OFF, MEM, 8)                                        \
    S(movnti_l, "movnti %%ecx, (%[p])", OFF, MEMREG, 4)                                                  \
    S(movnti_q, "movnti %%rcx, (%[p])", OFF, MEMREG, 8)                                                  \
    F(movbe_w, "", "movbew %%cx, (%[p])", "", OFF, MEMREG, 2, MOVBE, 0, 0, 0, 0, 0, 0, 0)               \
    F(movbe_l, "", "movbel %%ecx, (%[p])", "", OFF, MEMREG, 4, MOVBE, 0, 0, 0, 0, 0, 0, 0)              \
    F(movbe_q, "", "movbeq %%rcx, (%[p])", "", OFF, MEMREG, 8, MOVBE, 0, 0, 0, 0, 0, 0, 0)              \
    /* read-modify-write arithmetic and logic */                                                         \
    RMW(add) RMW(adc) RMW(sub) RMW(sbb) RMW(and) RMW(or) RMW(xor)                                        \
    H(addb_ch, "addb %%ch, (%%rbx)", OFF, MEMREG, 1)                                                      \
    S(subb_sil, "subb %%sil, (%[p])", OFF, MEMREG, 1)                                                    \
    UNARY(inc) UNARY(dec) UNARY(neg) UNARY(not)                                                          \
    /* exchanges: the register gets the old memory value (8/16-bit merge, 32-bit zero-extend) */         \
    S(xchgb, "xchgb %%cl, (%[p])", OFF, MEMREG, 1)                                                       \
    H(xchgb_ah, "xchgb %%ah, (%%rbx)", OFF, MEMREG, 1)                                                    \
    S(xchgw, "xchgw %%cx, (%[p])", OFF, MEMREG, 2)                                                       \
    S(xchgl, "xchgl %%ecx, (%[p])", OFF, MEMREG, 4)                                                      \
    S(xchgq, "xchgq %%rcx, (%[p])", OFF, MEMREG, 8)                                                      \
    S(lock_xchgq, "lock xchgq %%rcx, (%[p])", OFF, MEMREG, 8)                                            \
    S(lock_xaddb, "lock xaddb %%cl, (%[p])", OFF, MEMREG, 1)                                             \
    H(lock_xaddb_ch, "lock xaddb %%ch, (%%rbx)", OFF, MEMREG, 1)                                          \
    S(lock_xaddw, "lock xaddw %%cx, (%[p])", OFF, MEMREG, 2)                                             \
    S(lock_xaddl, "lock xaddl %%ecx, (%[p])", OFF, MEMREG, 4)                                            \
    S(lock_xaddq, "lock xaddq %%rcx, (%[p])", OFF, MEMREG, 8)                                            \
    S(xaddl, "xaddl %%ecx, (%[p])", OFF, MEMREG, 4)                                                      \
    /* cmpxchg: rax the expected value, rdx the new one; VALS meets itself (success) and others */      \
    S(lock_cmpxchgb, "lock cmpxchgb %%dl, (%[p])", OFF, MEMREG, 1)                                       \
    H(lock_cmpxchgb_dh, "lock cmpxchgb %%dh, (%%rbx)", OFF, MEMREG, 1)                                    \
    S(lock_cmpxchgw, "lock cmpxchgw %%dx, (%[p])", OFF, MEMREG, 2)                                       \
    S(lock_cmpxchgl, "lock cmpxchgl %%edx, (%[p])", OFF, MEMREG, 4)                                      \
    S(lock_cmpxchgq, "lock cmpxchgq %%rdx, (%[p])", OFF, MEMREG, 8)                                      \
    S(cmpxchgl, "cmpxchgl %%edx, (%[p])", OFF, MEMREG, 4)                                                \
    F(lock_cmpxchgq_success, "", "lock cmpxchgq %%rdx, (%[p])", "", OFF, ONCE, 8, ANY, 0x1122334455667788, \
      0x1122334455667788, 0, 0x8877665544332211, 0, 0, 0)                                                \
    F(lock_cmpxchgq_failure, "", "lock cmpxchgq %%rdx, (%[p])", "", OFF, ONCE, 8, ANY, 0x1122334455667788, \
      0x1122334455667789, 0, 0x8877665544332211, 0, 0, 0)                                                \
    F(lock_cmpxchgl_success, "", "lock cmpxchgl %%edx, (%[p])", "", OFF, ONCE, 4, ANY, 0x1122334455667788, \
      0xdeadbeef55667788, 0, 0x8877665544332211, 0, 0, 0)                                                \
    F(lock_cmpxchgl_failure, "", "lock cmpxchgl %%edx, (%[p])", "", OFF, ONCE, 4, ANY, 0x1122334455667788, \
      0xdeadbeef55667789, 0, 0x8877665544332211, 0, 0, 0)                                                \
    BITS(bts) BITS(btr) BITS(btc)                                                                        \
    SETCC(o) SETCC(no) SETCC(b) SETCC(ae) SETCC(e) SETCC(ne) SETCC(be) SETCC(a)                          \
    SETCC(s) SETCC(ns) SETCC(p) SETCC(np) SETCC(l) SETCC(ge) SETCC(le) SETCC(g)                          \
    /* SSE register-to-memory moves */                                                                   \
    V(movups, "movups %%xmm0, (%[p])", OFF)                                                              \
    V(movups_xmm9, "movups %%xmm9, (%[p])", OFF)                                                         \
    V(movaps, "movaps %%xmm0, (%[p])", OFF)                                                              \
    V(movupd, "movupd %%xmm0, (%[p])", OFF)                                                              \
    V(movapd, "movapd %%xmm9, (%[p])", OFF)                                                              \
    V(movdqu, "movdqu %%xmm0, (%[p])", OFF)                                                              \
    V(movdqa, "movdqa %%xmm9, (%[p])", OFF)                                                              \
    V(movntps, "movntps %%xmm0, (%[p])", OFF)                                                            \
    V(movntpd, "movntpd %%xmm0, (%[p])", OFF)                                                            \
    V(movntdq, "movntdq %%xmm9, (%[p])", OFF)                                                            \
    V(movq_xmm, "movq %%xmm0, (%[p])", OFF)                                                              \
    V(movq_xmm9, "movq %%xmm9, (%[p])", OFF)                                                             \
    /* movq r/m64, xmm0 (66 REX.W 0F 7E) at [r10], the other encoding of the 64-bit store */            \
    F(movq_rexw_7e, XMM_PRE "\n\tmov %[p], %%r10", ".byte 0x66, 0x49, 0x0f, 0x7e, 0x02", "", OFF, ONCE, \
      8, ANY, 0, 0, 0, 0, 0, 0, 0)                                                                       \
    V(movd_xmm, "movd %%xmm0, (%[p])", OFF)                                                              \
    V(movd_xmm9, "movd %%xmm9, (%[p])", OFF)                                                             \
    V(movss, "movss %%xmm0, (%[p])", OFF)                                                                \
    V(movsd_xmm, "movsd %%xmm0, (%[p])", OFF)                                                            \
    V(movlps, "movlps %%xmm0, (%[p])", OFF)                                                              \
    V(movhps, "movhps %%xmm0, (%[p])", OFF)                                                              \
    V(movhps_xmm9, "movhps %%xmm9, (%[p])", OFF)                                                         \
    V(movlpd, "movlpd %%xmm0, (%[p])", OFF)                                                              \
    V(movhpd, "movhpd %%xmm9, (%[p])", OFF)                                                              \
    /* AVX: 32-byte stores from ymm, VEX 16/8/4-byte stores from xmm */                                  \
    Y(vmovdqu_ymm, "vmovdqu %%ymm0, (%[p])", OFF)                                                        \
    Y(vmovdqu_ymm15, "vmovdqu %%ymm15, (%[p])", OFF)                                                     \
    Y(vmovups_ymm, "vmovups %%ymm0, (%[p])", OFF)                                                        \
    Y(vmovupd_ymm, "vmovupd %%ymm15, (%[p])", OFF)                                                       \
    Y(vmovaps_ymm, "vmovaps %%ymm0, (%[p])", OFF)                                                        \
    Y(vmovdqa_ymm, "vmovdqa %%ymm15, (%[p])", OFF)                                                       \
    Y(vmovntdq_ymm, "vmovntdq %%ymm0, (%[p])", OFF)                                                      \
    Y(vmovdqu_xmm, "vmovdqu %%xmm0, (%[p])", OFF)                                                        \
    Y(vmovups_xmm15, "vmovups %%xmm15, (%[p])", OFF)                                                     \
    Y(vmovq, "vmovq %%xmm0, (%[p])", OFF)                                                                \
    Y(vmovd, "vmovd %%xmm15, (%[p])", OFF)                                                               \
    Y(vmovss, "vmovss %%xmm0, (%[p])", OFF)                                                              \
    Y(vmovsd, "vmovsd %%xmm15, (%[p])", OFF)                                                             \
    Y(vmovlps, "vmovlps %%xmm0, (%[p])", OFF)                                                            \
    Y(vmovhps, "vmovhps %%xmm15, (%[p])", OFF)                                                           \
    /* RIP-relative operands (how compiled code reaches globals) */                                      \
    R(movl_rip, "", "movl %%ecx, ", "+0x10(%%rip)", 0x10, MEMREG)                                        \
    R(addq_imm_rip, "", "addq $0x7f, ", "+0x18(%%rip)", 0x18, MEM)                                       \
    R(lock_incl_rip, "", "lock incl ", "+0x20(%%rip)", 0x20, MEM)                                        \
    R(movb_imm_rip, "", "movb $0x5a, ", "+0xfff(%%rip)", 0xfff, MEM)                                     \
    R(movups_rip, XMM_PRE, "movups %%xmm9, ", "+0x30(%%rip)", 0x30, ONCE)                                \
    R(movq_past_end_rip, "", "movq %%rcx, ", "+4092(%%rip)", 4092, MEMREG)                               \
    /* unaligned stores straddling two 8-byte granules (within one cache line: no split locks) */        \
    S(movq_unaligned, "movq %%rcx, (%[p])", 0x104, MEMREG, 8)                                            \
    S(movl_unaligned, "movl %%ecx, (%[p])", 0x106, MEMREG, 4)                                            \
    S(movw_unaligned, "movw %%cx, (%[p])", 0x107, MEMREG, 2)                                             \
    S(addq_unaligned, "addq %%rcx, (%[p])", 0x10c, MEMREG, 8)                                            \
    S(lock_xaddq_unaligned, "lock xaddq %%rcx, (%[p])", 0x144, MEMREG, 8)                                \
    S(lock_cmpxchgl_unaligned, "lock cmpxchgl %%edx, (%[p])", 0x186, MEMREG, 4)                          \
    V(movups_unaligned, "movups %%xmm0, (%[p])", 0x1c5)                                                  \
    Y(vmovdqu_ymm_unaligned, "vmovdqu %%ymm0, (%[p])", 0x203)                                            \
    /* stores straddling the end of the watched page into the next, ordinary one */                     \
    S(movq_past_end, "movq %%rcx, (%[p])", 4092, MEMREG, 8)                                              \
    S(movl_past_end, "movl %%ecx, (%[p])", 4094, MEMREG, 4)                                              \
    S(movw_past_end, "movw %%cx, (%[p])", 4095, MEMREG, 2)                                               \
    S(movl_imm_past_end, "movl $0x89abcdef, (%[p])", 4093, MEM, 4)                                       \
    S(addq_past_end, "addq %%rcx, (%[p])", 4093, MEMREG, 8)                                              \
    S(incl_past_end, "incl (%[p])", 4094, MEM, 4)                                                        \
    S(notq_past_end, "notq (%[p])", 4090, MEM, 8)                                                        \
    S(cmpxchgq_past_end, "cmpxchgq %%rdx, (%[p])", 4092, MEMREG, 8)                                      \
    S(setb_last_byte, "setb (%[p])", 4095, FLAGS, 1)                                                     \
    V(movups_past_end, "movups %%xmm0, (%[p])", 4088)                                                    \
    V(movhps_past_end, "movhps %%xmm0, (%[p])", 4092)                                                    \
    Y(vmovdqu_ymm_past_end, "vmovdqu %%ymm0, (%[p])", 4080)                                              \
    /* string stores, inside the watched page: STR(name, insn, rdi, rsi, rcx, rax) */                    \
    STR(stosb, "stosb", 0x101, 0, 7, 0x11)                                                               \
    STR(stosq, "stosq", 0x108, 0, 7, 0x1122334455667788)                                                 \
    STR(rep_stosb, "rep stosb", 100, 0, 333, 0xa5)                                                       \
    STR(rep_stosw, "rep stosw", 0x202, 0, 100, 0x1234)                                                   \
    STR(rep_stosl, "rep stosl", 0x303, 0, 100, 0xdeadbeef)                                               \
    STR(rep_stosq, "rep stosq", 0x208, 0, 100, 0x0123456789abcdef)                                       \
    STR(rep_stosq_rcx0, "rep stosq", 0x208, 0, 0, 0x0123456789abcdef)                                    \
    STR(movsb, "movsb", 0x101, 0x801, 9, 0)                                                              \
    STR(movsq, "movsq", 0x108, 0x808, 9, 0)                                                              \
    STR(rep_movsb, "rep movsb", 0x800, 0x300, 500, 0)                                                    \
    STR(rep_movsw, "rep movsw", 0x802, 0x300, 200, 0)                                                    \
    STR(rep_movsl, "rep movsl", 0x804, 0x300, 150, 0)                                                    \
    STR(rep_movsq, "rep movsq", 0xa00, 0x10, 64, 0)                                                      \
    STR(rep_movsb_overlap, "rep movsb", 0x401, 0x400, 200, 0)                                            \
    STR(rep_movsq_from_after, "rep movsq", 0x100, 4096 + 256, 100, 0)                                    \
    STR(rep_stosl_unaligned, "rep stosl", 0x103, 0, 20, 0xcafef00d)                                      \
    STR(std_rep_stosb, "std\n\trep stosb", 300, 0, 200, 0x3c)                                            \
    STR(std_rep_stosq, "std\n\trep stosq", 0x800, 0, 50, 0xfedcba9876543210)                             \
    STR(std_rep_movsb, "std\n\trep movsb", 0x700, 0x900, 100, 0)                                         \
    STR(std_rep_movsq, "std\n\trep movsq", 0x700, 0x900, 40, 0)                                          \
    STR(std_rep_stosb_into_watched, "std\n\trep stosb", 4096 + 200, 0, 400, 0x77)                        \
    /* string stores running past the end of the watched page into ordinary memory */                    \
    STR(rep_stosq_past_end, "rep stosq", 4096 - 64, 0, 600, 0x0f0e0d0c0b0a0908)                          \
    STR(rep_stosb_past_end, "rep stosb", 4000, 0, 500, 0x42)                                             \
    STR(rep_movsb_past_end, "rep movsb", 4000, 0x100, 300, 0)                                            \
    STR(rep_movsq_past_end, "rep movsq", 4096 - 40, 0x100, 30, 0)                                        \
    STR(stosq_unaligned_past_end, "stosq", 4092, 0, 1, 0x1122334455667788)                               \
    STR(rep_stosq_unaligned_past_end, "rep stosq", 4092 - 16, 0, 8, 0x1122334455667788)                  \
    STR(rep_stosl_unaligned_past_end, "rep stosl", 4094 - 12, 0, 8, 0x55667788)

/* The functions. */
#define F(n, pre, insn, post, ...) FORM_FN(f_##n, pre, insn, post)
#define R(n, pre, head, tail, ...) FORM_FN(f_##n##_m, pre, head "mirror" tail, "") FORM_FN(f_##n##_w, pre, head "watched" tail, "")
FORMS
#undef F
#undef R

/* The table. */
#define F(n, pre, insn, post, off, sw, w, need, mem, a, c, d, si, di, fl)                                \
    {#n, f_##n, f_##n, off, sw, w, need, mem, {a, 0, c, d, si, di, fl}},
#define R(n, pre, head, tail, off, sw) {#n, f_##n##_m, f_##n##_w, off, sw, 0, ANY, 0, {0}},
static const struct form forms[] = {FORMS};
#undef F
#undef R

/* Operand values: zero, ones, sign boundaries, nibble carries (AF), mixed patterns. */
static const uint64_t VALS[] = {
    0,
    1,
    2,
    0x0f,
    0x10,
    0x7f,
    0x80,
    0xff,
    0x7fff,
    0x8000,
    0xffff,
    0x7fffffff,
    0x80000000,
    0xffffffff,
    0x7fffffffffffffff,
    0x8000000000000000,
    0xffffffffffffffff,
    0x123456789abcdef0,
    0xfedcba9876543210,
};
#define NVALS (sizeof VALS / sizeof VALS[0])

/* Bit offsets for register forms at p = area + 2048: within the operand, past it, negative;
 * and per width, registers whose upper bits the instruction must ignore. All stay in the
 * watched page (|offset| / 8 <= 1000 bytes). */
static const int64_t BITOFFS[] = {0,  1,   7,   15,  16,  31,  32,  63,  64,    65,   100,  1000,
                                  4000, 8000, -1, -8, -16, -17, -32, -33, -64, -65, -1000, -8000};
static const uint64_t BITOFFS_W[] = {0x12340005, 0xabcd0fff, 0xabcdf000, 0xffffffffffff0123};
static const uint64_t BITOFFS_L[] = {0x1234567800000100, 0x00000001fffffff0, 0xdeadbeef00003000};

/* Source bytes of the vector forms: 64 distinct bytes. */
static unsigned char vec[64];

/* The initial contents of both areas. */
static uint64_t pattern[AREA_WORDS];

typedef uint64_t u64_unaligned __attribute__((aligned(1), may_alias));

/* Bring an area back to the pattern, storing only the words that differ: every store to the
 * watched page traps. Volatile word stores: no vectorised libc or compiler code runs on it. */
static void reset(struct area *ar)
{
    const uint64_t *cur = (const uint64_t *)ar;
    volatile uint64_t *out = (volatile uint64_t *)ar;
    if (memcmp(cur, pattern, sizeof pattern) == 0)
        return;
    for (size_t i = 0; i < AREA_WORDS; i++)
        if (cur[i] != pattern[i])
            out[i] = pattern[i];
}

static int have_avx, have_movbe;

/* Run form `f` on both areas from `in`, with `mem` at the operand, `reps` times back to back.
 * 1: identical; 0: `why` says what differs. */
static int pair(const struct form *f, const struct io *in, uint64_t mem, int reps, char *why, size_t n)
{
    unsigned char *pm = (unsigned char *)&mirror + f->off, *pw = (unsigned char *)&watched + f->off;
    struct io om = *in, ow = *in;
    reset(&mirror);
    reset(&watched);
    *(volatile u64_unaligned *)pm = mem;
    *(volatile u64_unaligned *)pw = mem;
    if (memcmp(&mirror, &watched, sizeof mirror) != 0) {
        snprintf(why, n, "the areas differ before the form runs");
        return 0;
    }
    for (int r = 0; r < reps; r++) {
        om = *in;
        f->fn_mirror(pm, &om, vec);
    }
    for (int r = 0; r < reps; r++) {
        ow = *in;
        f->fn_watched(pw, &ow, vec);
    }
    const unsigned char *bm = (const unsigned char *)&mirror, *bw = (const unsigned char *)&watched;
    for (size_t i = 0; i < sizeof mirror; i++)
        if (bm[i] != bw[i]) {
            size_t j = i;
            while (j < sizeof mirror && bm[j] != bw[j])
                j++;
            snprintf(why, n, "memory at p%+ld (%zu bytes differ from there): cpu %02x, emulated %02x",
                     (long)i - (long)f->off, j - i, bm[i], bw[i]);
            return 0;
        }
    static const char *const names[] = {"rax", "rbx", "rcx", "rdx", "rsi", "rdi"};
    const uint64_t rm[] = {om.a, om.b, om.c, om.d, om.si, om.di};
    const uint64_t rw[] = {ow.a, ow.b, ow.c, ow.d, ow.si, ow.di};
    for (int i = 0; i < 6; i++)
        if (rm[i] != rw[i]) {
            snprintf(why, n, "%s: cpu %#" PRIx64 ", emulated %#" PRIx64, names[i], rm[i], rw[i]);
            return 0;
        }
    if ((om.flags & F_COMPARED) != (ow.flags & F_COMPARED)) {
        snprintf(why, n, "rflags: cpu %#" PRIx64 ", emulated %#" PRIx64, om.flags & F_COMPARED,
                 ow.flags & F_COMPARED);
        return 0;
    }
    return 1;
}

/* One pair under a sweep; the first mismatch of a form is described in `first`. */
static int sweep_pair(const struct form *f, const struct io *in, uint64_t mem, int reps, int *bad,
                      char *first, size_t n)
{
    char why[200];
    if (pair(f, in, mem, reps, why, sizeof why))
        return 1;
    if ((*bad)++ == 0)
        snprintf(first, n, "[in: mem %#" PRIx64 " rax %#" PRIx64 " rcx %#" PRIx64 " rdx %#" PRIx64
                 " rflags %#" PRIx64 "] %s",
                 mem, in->a, in->c, in->d, in->flags, why);
    return 0;
}

/* Run every input of a form's sweep; returns the number of mismatching runs. */
static int run_form(const struct form *f, char *first, size_t n)
{
    int bad = 0;
    struct io in = f->in;
    static const uint64_t flag_states[] = {F_BASE, F_BASE | F_ARITH};
    switch (f->sweep) {
    case ONCE:
        in.flags |= F_BASE;
        sweep_pair(f, &in, f->mem, 1, &bad, first, n);
        break;
    case MEM:
        for (size_t m = 0; m < NVALS; m++)
            for (size_t s = 0; s < 2; s++) {
                in.flags = flag_states[s];
                sweep_pair(f, &in, VALS[m], 1, &bad, first, n);
            }
        break;
    case MEMREG:
        for (size_t m = 0; m < NVALS; m++)
            for (size_t r = 0; r < NVALS; r++)
                for (size_t s = 0; s < 2; s++) {
                    in.a = in.b = in.c = in.si = in.di = VALS[r];
                    in.d = ~VALS[r];
                    in.flags = flag_states[s];
                    sweep_pair(f, &in, VALS[m], 1, &bad, first, n);
                }
        break;
    case BITOFF: {
        uint64_t offs[64];
        size_t k = 0;
        for (size_t i = 0; i < sizeof BITOFFS / sizeof BITOFFS[0]; i++)
            offs[k++] = (uint64_t)BITOFFS[i];
        if (f->width == 2)
            for (size_t i = 0; i < sizeof BITOFFS_W / sizeof BITOFFS_W[0]; i++)
                offs[k++] = BITOFFS_W[i];
        if (f->width == 4)
            for (size_t i = 0; i < sizeof BITOFFS_L / sizeof BITOFFS_L[0]; i++)
                offs[k++] = BITOFFS_L[i];
        for (size_t i = 0; i < k; i++)
            for (size_t s = 0; s < 2; s++) {
                in.c = offs[i];
                in.flags = flag_states[s];
                /* Twice: the second run finds the bit as the first left it. */
                sweep_pair(f, &in, 0x5555aaaa3333cccc, 2, &bad, first, n);
            }
        break;
    }
    case FLAGS:
        for (unsigned bits = 0; bits < 32; bits++) {
            in.flags = F_BASE | (bits & 1 ? F_CF : 0) | (bits & 2 ? F_PF : 0) | (bits & 4 ? F_ZF : 0) |
                       (bits & 8 ? F_SF : 0) | (bits & 16 ? F_OF : 0);
            sweep_pair(f, &in, 0x0101010101010101, 1, &bad, first, n);
        }
        break;
    }
    return bad;
}

/* The permissions of the mapping holding `addr` ("r--s" when libvmsrs watches it). */
static void print_perms(const char *what, const void *addr)
{
    char line[512], perms[8] = "?";
    FILE *maps = fopen("/proc/self/maps", "r");
    while (maps && fgets(line, sizeof line, maps)) {
        uintptr_t lo, hi;
        char p[8];
        if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %7s", &lo, &hi, p) == 3 && lo <= (uintptr_t)addr &&
            (uintptr_t)addr < hi) {
            strcpy(perms, p);
            break;
        }
    }
    if (maps)
        fclose(maps);
    printf("%s page: %s\n", what, perms);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    __builtin_cpu_init();
    have_avx = __builtin_cpu_supports("avx");
    unsigned eax, ebx, ecx, edx;
    /* No __builtin_cpu_supports name for movbe: CPUID.1:ECX bit 22. */
    have_movbe = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 22));
    for (size_t i = 0; i < sizeof vec; i++)
        vec[i] = (unsigned char)(0x81 + 7 * i);
    uint64_t x = 0x9e3779b97f4a7c15;
    for (size_t i = 0; i < AREA_WORDS; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        pattern[i] = x;
    }
    print_perms("watched", watched.w);
    print_perms("after", watched.after);

    int ok = 0, bad = 0;
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        const struct form *f = &forms[i];
        if ((f->need == AVX && !have_avx) || (f->need == MOVBE && !have_movbe)) {
            printf("SKIP %s (the CPU has no %s)\n", f->name, f->need == AVX ? "AVX" : "MOVBE");
            continue;
        }
        char first[512] = "";
        int n = run_form(f, first, sizeof first);
        if (n == 0) {
            printf("FORM %s ok\n", f->name);
            ok++;
        } else {
            printf("FORM %s MISMATCH (%d runs) first %s\n", f->name, n, first);
            bad++;
        }
    }
    print_perms("watched", watched.w);
    if (bad) {
        printf("forms: %d ok, %d MISMATCH\n", ok, bad);
        return 1;
    }
    printf("forms: %d ok\n", ok);
    return 0;
}
