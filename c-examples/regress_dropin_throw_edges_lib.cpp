// The other file of regress_dropin_throw_edges.cpp: the rescue point handle() and what it
// calls. In its own file, so that the caller's compiler cannot prove handle() never throws.
#include <csignal>
#include <pthread.h>
#include <stdexcept>

extern "C" void escape(void);
static int *volatile null_ptr;

extern "C" __attribute__((noinline)) int inner_may_throw(int k)
{
    if (k)
        throw std::runtime_error("inner");
    return 0;
}

extern "C" int handle(int kind)
{
    switch (kind) {
    case 1: // a fault
        *null_ptr = 1;
        break;
    case 2: // an exception thrown and caught inside the call, then a fault
        try {
            inner_may_throw(1);
        } catch (const std::exception &) {
        }
        *null_ptr = 1;
        break;
    case 3: // a fault (skipped under oblivious), then an exception caught inside
        *null_ptr = 1;
        try {
            inner_may_throw(1);
        } catch (const std::exception &) {
        }
        break;
    case 4: // a caught exception rethrown and caught again inside, then a fault
        try {
            try {
                inner_may_throw(1);
            } catch (...) {
                throw;
            }
        } catch (const std::exception &) {
        }
        *null_ptr = 1;
        break;
    case 5: // left by longjmp
        escape();
        break;
    case 6: // pthread_exit inside the call
        pthread_exit((void *)1);
    case 7: // a signal handler runs inside the call (main's handler may fault)
        raise(SIGALRM);
        break;
    case 8: // an exception leaves the call (the caller catches it)
        inner_may_throw(1);
        break;
    }
    return 7;
}

extern "C" __attribute__((noinline)) void deep_fault(int depth)
{
    volatile char pad[64];
    pad[0] = 0;
    if (depth) {
        deep_fault(depth - 1);
        pad[1] = 1;
        return;
    }
    *null_ptr = 5;
}
