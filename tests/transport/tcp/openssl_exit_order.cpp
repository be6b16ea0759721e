// OpenSSL registers its exit-time cleanup at its first real use. A transport calls
// initialize_openssl() before starting its thread so that this registration comes before any exit
// handler of the user's (a static transport's destructor), and so runs after it: otherwise a
// connection served while the process exits draws a challenge from a generator already torn
// down. The order is decided once per process, so it is checked here, in a fresh one: a handler
// registered after initialize_openssl() must still find OpenSSL working.
#include <flotilla/transport/tcp/authentication.hpp>

#include <cstdio>
#include <cstdlib>

int main() {
  flotilla::tcp::initialize_openssl();
  std::atexit([] {
    try {
      (void)flotilla::tcp::make_challenge();
    } catch (const std::exception& error) {
      std::fprintf(stderr, "a challenge drawn at exit failed: %s\n", error.what());
      std::_Exit(1);
    }
    std::fputs("OpenSSL still works in an exit handler registered after initialize_openssl()\n", stdout);
    std::fflush(stdout);
  });
  (void)flotilla::tcp::make_challenge();  // the first real use, as a transport's thread makes it
  return 0;
}
