// A `throw` rescue point called with a misaligned stack (VMSRS_USER_CALL=handle:throw): the C
// caller in regress_dropin_throw_misaligned.c calls handle() with rsp = 8 (mod 16), and the
// exception crosses that C frame (unwind tables, no handler) to this C++ catch.
//   gcc -O2 -c regress_dropin_throw_misaligned.c -o m.o
//   g++ -O2 -rdynamic regress_dropin_throw_misaligned.cpp m.o -o throw_misaligned
// Expected: "kind 0 -> 8", "kind 1 caught: vmsrs...", "kind 2 caught: vmsrs...", repeated for
// 100 rounds, then "end"; exit 0.
#include <cstdio>
#include <cstring>
#include <stdexcept>

extern "C" int c_caller(int kind);

int main()
{
    int bad = 0;
    for (int round = 0; round < 100; ++round) {
        for (int kind = 0; kind < 3; ++kind) {
            try {
                int r = c_caller(kind);
                if (round == 0)
                    std::printf("kind %d -> %d\n", kind, r);
                bad += kind != 0 || r != 8;
            } catch (const std::exception &e) {
                if (round == 0)
                    std::printf("kind %d caught: %.6s\n", kind, e.what());
                bad += kind == 0 || std::strncmp(e.what(), "vmsrs:", 6) != 0;
            }
        }
    }
    std::printf("end bad=%d\n", bad);
    return bad != 0;
}
