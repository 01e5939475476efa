// Edges of a `throw` rescue point (VMSRS_USER_CALL=handle:throw), from the hostile review of
// the feature; handle() is in regress_dropin_throw_edges_lib.cpp.
//   g++ -O2 -rdynamic regress_dropin_throw_edges.cpp regress_dropin_throw_edges_lib.cpp -o edges
//   env VMSRS_USER_CALL=handle:throw LD_PRELOAD=.../libvmsrs.so ./edges MODE
// MODE catch: exceptions thrown and caught inside the call leave it a rescue call: a later
//   fault still fails it (kinds 2-4 print "vmsrs"; before the fix the first internal throw
//   ended the user and the fault was not contained, or the call returned 7).
// MODE longjmp: after a call was left by longjmp, a fault deeper in the stack than its dead
//   frame is not unwound into that frame (unwind: the process dies by SIGSEGV after "deep").
// MODE pexit: pthread_exit inside the call runs the caller's destructors ("mutex free").
// MODE signal: a SIGALRM handler that faults inside the call is unwound with the call, and
//   SIGALRM is not left blocked ("blocked no", "raised 3").
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
extern "C" __attribute__((noinline)) void escape(void) { longjmp(jb, 1); }

static const char *call(int kind)
{
    try {
        return handle(kind) == 7 ? "7" : "bad value";
    } catch (const std::runtime_error &e) {
        return std::strncmp(e.what(), "vmsrs: handle faulted", 21) == 0 ? "vmsrs" : e.what();
    }
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
        for (int kind = 0; kind <= 4; ++kind)
            std::printf("kind %d: %s\n", kind, call(kind));
    } else if (!std::strcmp(mode, "longjmp")) {
        left_by_longjmp();
        std::printf("after longjmp: %s\n", call(0));
        left_by_longjmp();
        std::printf("deep\n");
        deep_fault(20);
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
