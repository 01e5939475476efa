// Drop-in rescue point on a C++ function that lets an exception propagate to its caller
// (ordinary C++ error handling; no fault anywhere).
//   g++ -O2 -g -rdynamic dropin_throw.cpp -o dropin_throw
//   timeout 20 env VMSRS_USER_CALL=handle:-1 LD_PRELOAD=$PWD/../target/release/libvmsrs.so ./dropin_throw
// Expected (as without libvmsrs): "caught: bad request" then "end", exit 0.
#include <cstdio>
#include <stdexcept>
#include <thread>
extern "C" __attribute__((noinline)) int handle(int mode) {
    if (mode == 1) throw std::runtime_error("bad request");
    return 7;
}
int main() {
    std::thread t([] {
        try {
            handle(1);
        } catch (const std::exception &e) {
            std::printf("caught: %s\n", e.what());
        }
        std::printf("after: %d\n", handle(0));
    });
    t.join();
    std::printf("end\n");
    return 0;
}
