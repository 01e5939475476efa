/*
 * ecap_vmsrs_fault.cpp: an eCAP 1.0 adapter (libecap3-dev) that faults on request, for the
 * real-server tests (tests/squid.rs, tests/squid_dropin.rs). Squid loads it with
 * `loadable_modules` and runs it as a REQMOD service on every request. It does not use
 * vmsrs.h: the server it runs in is unmodified, and libvmsrs (if any) is preloaded.
 *
 *   a URL containing /fault   stores through a NULL pointer the compiler cannot see (a plain
 *                             store: SIGSEGV), then goes on as any other URL
 *   a URL containing /trap    __builtin_trap() (ud2: SIGILL)
 *   any other URL             passed through unchanged (host::Xaction::useVirgin)
 *
 * The check and the fault happen in Xaction::start(), which squid calls from
 * Adaptation::Ecap::XactionRep::start() (one call per adapted transaction).
 *
 * Build: g++ -shared -fPIC ecap_vmsrs_fault.cpp -o ecap_vmsrs_fault.so
 * Config: loadable_modules /path/ecap_vmsrs_fault.so
 *         ecap_enable on
 *         ecap_service vmsrsFault reqmod_precache uri=ecap://vmsrs.invalid/fault bypass=off
 *         adaptation_access vmsrsFault allow all
 */
#include <cstring>
#include <iostream>
#include <string>

#include <libecap/common/autoconf.h> // first: LIBECAP_VERSION, which registry.h uses

#include <libecap/adapter/service.h>
#include <libecap/adapter/xaction.h>
#include <libecap/common/area.h>
#include <libecap/common/errors.h>
#include <libecap/common/header.h>
#include <libecap/common/message.h>
#include <libecap/common/name.h>
#include <libecap/common/named_values.h>
#include <libecap/common/options.h>
#include <libecap/common/registry.h>
#include <libecap/host/xaction.h>

namespace {

/* A NULL pointer the compiler must load at run time: a store through it is a plain store
 * instruction (gcc turns a store through a known NULL into `ud2`). */
int *volatile null_ptr;

/* Does the area (not NUL-terminated) contain `needle`? */
bool contains(const libecap::Area &a, const char *needle)
{
    const size_t n = std::strlen(needle);
    for (size_t i = 0; a.start && i + n <= a.size; ++i) {
        if (std::memcmp(a.start + i, needle, n) == 0)
            return true;
    }
    return false;
}

class Xaction : public libecap::adapter::Xaction {
public:
    explicit Xaction(libecap::host::Xaction *x) : hostx(x) {}

    // libecap::Options: this adapter has no transaction options.
    const libecap::Area option(const libecap::Name &) const override { return libecap::Area(); }
    void visitEachOption(libecap::NamedValueVisitor &) const override {}

    void start() override
    {
        const libecap::RequestLine *rl =
            dynamic_cast<const libecap::RequestLine *>(&hostx->virgin().firstLine());
        if (rl) {
            const libecap::Area uri = rl->uri();
            if (contains(uri, "/fault"))
                *null_ptr = 1; // SIGSEGV
            if (contains(uri, "/trap"))
                __builtin_trap(); // ud2: SIGILL
        }
        // Pass the request through; hostx must not be used after this call.
        libecap::host::Xaction *x = hostx;
        hostx = nullptr;
        x->useVirgin();
    }
    void stop() override { hostx = nullptr; }

    // useVirgin() was called: the host never asks for an adapted body.
    void abDiscard() override {}
    void abMake() override {}
    void abMakeMore() override {}
    void abStopMaking() override {}
    libecap::Area abContent(libecap::size_type, libecap::size_type) override { return libecap::Area(); }
    void abContentShift(libecap::size_type) override {}
    void noteVbContentDone(bool) override {}
    void noteVbContentAvailable() override {}

private:
    libecap::host::Xaction *hostx;
};

class Service : public libecap::adapter::Service {
public:
    std::string uri() const override { return "ecap://vmsrs.invalid/fault"; }
    std::string tag() const override { return "1"; }
    void describe(std::ostream &os) const override { os << "libvmsrs test adapter: faults on /fault, /trap"; }
    void configure(const libecap::Options &) override {}
    void reconfigure(const libecap::Options &) override {}
    bool wantsUrl(const char *) const override { return true; }
    MadeXactionPointer makeXaction(libecap::host::Xaction *hostx) override
    {
        return MadeXactionPointer(new Xaction(hostx));
    }
};

// Registered when squid loads the module.
const bool Registered = libecap::RegisterVersionedService(new Service);

} // namespace
