/* The C half of regress_dropin_throw_misaligned.cpp: a C caller of a rescue point in its own
 * file. gcc knows handle() needs no 16-byte stack alignment and calls it with the stack 8
 * bytes off (at -O2: a bare `call`); libvmsrs's stubs and its throw must still work there. */
static int *volatile null_ptr;

__attribute__((noinline)) int handle(int kind)
{
    if (kind == 1)
        *null_ptr = 1;
    if (kind == 2)
        __builtin_trap();
    return 7;
}

int c_caller(int kind) { return handle(kind) + 1; }
