// Compile-time baseline: <asio.hpp> alone, with a use.
#include <asio.hpp>

int main() {
  asio::io_context io;
  asio::ip::tcp::socket socket(io);
  return socket.is_open() ? 1 : 0;
}
