// Drop-in rescue point that throws (VMSRS_USER_CALL=handle:throw): an unmodified C++ program
// whose caller fails one request by catching std::exception, as squid's job dialer does.
//   g++ -O2 -g -rdynamic regress_dropin_throw_on_fault.cpp -o throw_on_fault
//   env VMSRS_USER_CALL=handle:throw LD_PRELOAD=$PWD/../target/release/libvmsrs.so ./throw_on_fault
// Expected: per thread, request kinds 0 (ok), 1 (NULL store: SIGSEGV), 2 (ud2: SIGILL) and 3
// (a std::logic_error of the program's own) in turn. 0 answers 7; 1 and 2 are caught as the
// std::runtime_error libvmsrs throws (its what() names handle); 3 as the program's exception.
// The guard in the caller's try block is destroyed every time (the unwinder ran the caller's
// cleanups), and the values the caller keeps in callee-saved registers across the calls are
// intact. Last line: "end bad=0".
#include <atomic>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <thread>
#include <vector>

static int *volatile null_ptr;
static std::atomic<int> guards_alive, bad;

struct Guard {
    Guard() { guards_alive++; }
    ~Guard() { guards_alive--; }
};

extern "C" __attribute__((noinline)) int handle(int kind)
{
    if (kind == 1)
        *null_ptr = 1;
    if (kind == 2)
        __builtin_trap();
    if (kind == 3)
        throw std::logic_error("own error");
    return 7;
}

static void worker(int id)
{
    // Kept in callee-saved registers across handle() at -O2.
    unsigned long sum = 0, mix = 0x9e3779b97f4a7c15ul * (id + 1);
    for (int i = 0; i < 40; ++i) {
        const int kind = i % 4;
        const char *got = "none";
        try {
            Guard g;
            sum += handle(kind);
            got = "ok";
        } catch (const std::runtime_error &e) {
            got = std::strncmp(e.what(), "vmsrs: handle faulted;", 22) == 0 ? "vmsrs" : e.what();
        } catch (const std::logic_error &) {
            got = "own";
        }
        mix = mix * 31 + i;
        const char *want = kind == 0 ? "ok" : kind == 3 ? "own" : "vmsrs";
        if (std::strcmp(got, want) != 0) {
            std::printf("thread %d request %d kind %d: got %s, want %s\n", id, i, kind, got, want);
            bad++;
        }
    }
    unsigned long want_mix = 0x9e3779b97f4a7c15ul * (id + 1);
    for (int i = 0; i < 40; ++i)
        want_mix = want_mix * 31 + i;
    if (sum != 10 * 7 || mix != want_mix) {
        std::printf("thread %d: sum %lu (want 70), mix %s\n", id, sum, mix == want_mix ? "ok" : "corrupt");
        bad++;
    }
}

int main()
{
    std::vector<std::thread> ts;
    for (int id = 0; id < 4; ++id)
        ts.emplace_back(worker, id);
    for (auto &t : ts)
        t.join();
    if (guards_alive != 0) {
        std::printf("%d guards never destroyed\n", guards_alive.load());
        bad++;
    }
    std::printf("end bad=%d\n", bad.load());
    return bad != 0;
}
