/*
 * rescue.c: the C++ exception a `throw` rescue point raises (VMSRS_USER_CALL=SYMBOL:throw).
 *
 * src/rescue.rs jumps here, instead of returning, when a call of a `throw` hook ended with its
 * user faulted: the stack holds the caller's return address on top, exactly as if the call
 * site had called this function, and the caller's callee-saved registers are restored. This
 * function has ordinary unwind tables, so the C++ unwinder steps from it to the call site and
 * on into the caller's handlers and cleanups, as for an exception thrown by SYMBOL itself.
 *
 * The C++ runtime is not linked: its functions are looked up once, at start-up, in the process
 * (a C++ server has loaded libstdc++). The exception is a std::runtime_error, the type a C++
 * server's `catch (const std::exception &)` takes.
 */
#include <dlfcn.h>
#include <stddef.h>

typedef void *(*allocate_fn)(size_t);
typedef void (*construct_fn)(void *, const char *);
typedef void (*destroy_fn)(void *);
typedef void (*throw_fn)(void *, void *, destroy_fn) __attribute__((noreturn));

static allocate_fn cxa_allocate_exception;
static construct_fn runtime_error_ctor;
static destroy_fn runtime_error_dtor;
static void *runtime_error_typeinfo;
static throw_fn cxa_throw;

/* sizeof(std::runtime_error) in libstdc++ (a vtable pointer and a reference-counted string),
 * in both its string ABIs. */
#define RUNTIME_ERROR_SIZE 16

int vmsrs__rescue_throw_init(void)
{
    if (cxa_throw)
        return 0;
    cxa_allocate_exception = (allocate_fn)dlsym(RTLD_DEFAULT, "__cxa_allocate_exception");
    runtime_error_ctor = (construct_fn)dlsym(RTLD_DEFAULT, "_ZNSt13runtime_errorC1EPKc");
    runtime_error_dtor = (destroy_fn)dlsym(RTLD_DEFAULT, "_ZNSt13runtime_errorD1Ev");
    runtime_error_typeinfo = dlsym(RTLD_DEFAULT, "_ZTISt13runtime_error");
    throw_fn t = (throw_fn)dlsym(RTLD_DEFAULT, "__cxa_throw");
    if (!cxa_allocate_exception || !runtime_error_ctor || !runtime_error_dtor || !runtime_error_typeinfo || !t)
        return -1;
    cxa_throw = t;
    return 0;
}

const char *vmsrs__rescue_message(size_t hook);

/* Realigns its stack: the call site it stands in for may have called SYMBOL with the stack 8
 * bytes off (a compiler may, for a callee it knows needs no alignment). `hook` is the hook's
 * index + 1; what() names its SYMBOL. */
__attribute__((noreturn, force_align_arg_pointer)) void vmsrs__rescue_throw(size_t hook)
{
    void *e = cxa_allocate_exception(RUNTIME_ERROR_SIZE);
    runtime_error_ctor(e, vmsrs__rescue_message(hook));
    cxa_throw(e, runtime_error_typeinfo, runtime_error_dtor);
}
