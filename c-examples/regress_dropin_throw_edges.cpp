// Edges of a `throw` rescue point (VMSRS_USER_CALL=handle:throw), from the hostile review of
// the feature; handle() is in regress_dropin_throw_edges_lib.cpp.
//   g++ -O2 -rdynamic regress_dropin_throw_edges.cpp regress_dropin_throw_edges_lib.cpp -o edges
//   env VMSRS_USER_CALL=handle:throw LD_PRELOAD=.../libvmsrs.so ./edges MODE
// MODE catch: exceptions thrown and caught inside the call leave it a rescue call: a later
//   fault still fails it (kinds 2-4 print "vmsrs"; before the fix the first internal throw
//   ended the user and the fault was not contained, or the call returned 7); one that leaves
//   the call reaches its caller (kind 8: "inner").
// MODE dtor: a destructor of the caller calls handle() while an exception unwinds it (one
//   that left an earlier call, or the caller's own): that call is a rescue call too.
// MODE longjmp: after a call was left by longjmp, a call one frame deeper is a rescue call
//   ("helper: vmsrs"), and a fault deeper in the stack than a dead call's frame, under a frame
//   that covers its slot without writing it, is not unwound into it (unwind: the process dies
//   by SIGSEGV after "deep").
// MODE pexit: pthread_exit inside the call runs the caller's destructors ("mutex free").
// MODE signal: after 5 SIGALRM handlers left by siglongjmp, a SIGALRM handler that faults
//   inside the call is unwound with the call, and SIGALRM is not left blocked ("blocked no",
//   "raised 3").
#include <atomic>
#include <csetjmp>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <pthread.h>
#include <stdexcept>

extern "C" int handle(int kind);
extern "C" void deep_fault(int depth);

static jmp_buf jb;
static sigjmp_buf sjb;
static volatile sig_atomic_t alrm_jumps;
extern "C" __attribute__((noinline)) void escape(void) { longjmp(jb, 1); }

static const char *call(int kind)
{
    try {
        return handle(kind) == 7 ? "7" : "bad value";
    } catch (const std::runtime_error &e) {
        return std::strncmp(e.what(), "vmsrs: handle faulted", 21) == 0 ? "vmsrs" : e.what();
    }
}

__attribute__((noinline)) static const char *one_frame_deeper() { return call(1); }

__attribute__((noinline)) static void under_a_stale_buffer()
{
    volatile char buf[512];
    buf[0] = 0; // the rest is what the dead frames left
    deep_fault(0);
    __asm__ volatile("" ::"r"(buf) : "memory");
}

struct Guard {
    int kind;
    __attribute__((noinline)) ~Guard() { std::printf("cleanup: %s\n", call(kind)); }
};
__attribute__((noinline)) static void escaped_then_cleanup()
{
    Guard g{1};
    handle(8);
}
__attribute__((noinline)) static void own_throw_then_cleanup()
{
    Guard g{2};
    throw std::logic_error("outer");
}

__attribute__((noinline)) static void left_by_longjmp()
{
    volatile char pad[256];
    std::memset((char *)pad, 0, sizeof pad);
    if (setjmp(jb) == 0)
        call(5);
}

static std::mutex m;
static void *worker(void *)
{
    std::lock_guard<std::mutex> g(m);
    call(6);
    return nullptr;
}

static volatile sig_atomic_t hits, handler_faults;
static int *volatile null_ptr;
static void on_alrm(int)
{
    if (alrm_jumps)
        siglongjmp(sjb, 1);
    hits++;
    if (handler_faults)
        *null_ptr = 9;
}
static bool alrm_blocked()
{
    sigset_t s;
    sigprocmask(SIG_BLOCK, nullptr, &s);
    return sigismember(&s, SIGALRM);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, nullptr, _IONBF, 0);
    const char *mode = argc > 1 ? argv[1] : "catch";
    if (!std::strcmp(mode, "catch")) {
        for (int kind : {0, 1, 2, 3, 4, 8})
            std::printf("kind %d: %s\n", kind, call(kind));
    } else if (!std::strcmp(mode, "dtor")) {
        for (auto f : {escaped_then_cleanup, own_throw_then_cleanup}) {
            try {
                f();
            } catch (const std::exception &e) {
                std::printf("caught %s\n", e.what());
            }
        }
    } else if (!std::strcmp(mode, "longjmp")) {
        left_by_longjmp();
        std::printf("helper: %s\n", one_frame_deeper());
        left_by_longjmp();
        std::printf("deep\n");
        under_a_stale_buffer();
        std::printf("deep_fault returned\n");
    } else if (!std::strcmp(mode, "pexit")) {
        pthread_t t;
        pthread_create(&t, nullptr, worker, nullptr);
        void *ret;
        pthread_join(t, &ret);
        bool free_ = m.try_lock();
        if (free_)
            m.unlock();
        std::printf("exit value %ld, mutex %s\n", (long)ret, free_ ? "free" : "STILL HELD");
    } else if (!std::strcmp(mode, "signal")) {
        struct sigaction sa;
        std::memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_alrm;
        sigaction(SIGALRM, &sa, nullptr);
        alrm_jumps = 1;
        for (int i = 0; i < 5; ++i)
            if (sigsetjmp(sjb, 1) == 0)
                raise(SIGALRM);
        alrm_jumps = 0;
        for (int round = 0; round < 2; ++round) {
            handler_faults = round;
            std::printf("round %d: %s, blocked %s\n", round, call(7), alrm_blocked() ? "YES" : "no");
        }
        handler_faults = 0;
        raise(SIGALRM);
        std::printf("raised %d\n", (int)hits);
    }
    std::printf("end\n");
    return 0;
}
