// Writes the fuzzers' seed corpora: one valid input per frame type and payload decoder, and a
// few learners' byte streams for the server fuzzer.
// Usage: make_corpus DIRECTORY [SERVER_DIRECTORY] (the committed corpora live in tests/fuzz/corpus
// and tests/fuzz/server_corpus).
#include <flotilla/algorithms/secure_aggregation/messages.hpp>
#include <flotilla/parameters.hpp>
#include <flotilla/wire/messages.hpp>
#include <flotilla/transport/tcp/protocol.hpp>

#include <fstream>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>

namespace {
using params = flotilla::parameters<float>;

void write(const std::string& path, std::uint8_t mode, std::span<const std::byte> bytes) {
  std::ofstream out(path, std::ios::binary);
  out.put(static_cast<char>(mode));
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::vector<std::byte> framed(const flotilla::tcp::outgoing_frame& frame) {
  std::vector<std::byte> bytes(frame.header.begin(), frame.header.end());
  for (const auto piece : frame.payload) bytes.insert(bytes.end(), piece.begin(), piece.end());
  return bytes;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 2 && argc != 3) return 2;
  const std::string dir = argv[1];
  using flotilla::tcp::frame_type;
  params p(flotilla::tensor_layout({{"w", {2, 3}}, {"b", {2}}}));
  for (std::size_t i = 0; i < p.size(); ++i) p.values()[i] = float(i) / 4;
  const auto task = std::make_shared<const flotilla::byte_buffer>(flotilla::encode(flotilla::task<params>{
      flotilla::task_kind::fit, 3, std::make_shared<const params>(p), {3, 9, {{"epochs", 1}}}}));
  const auto reply = std::make_shared<const flotilla::byte_buffer>(
      flotilla::encode(flotilla::reply<params>{4, flotilla::task_kind::fit, 3, {10, {{"loss", 0.5}}}, p}));
  flotilla::tcp::challenge_nonce nonce{};
  const auto hello = flotilla::tcp::encode_hello({4, flotilla::tcp::prove("token", nonce, 4), {{"device", "cpu"}, {"examples", std::int64_t{600}}}});
  const auto reason = flotilla::tcp::encode_reason(flotilla::task_kind::evaluate, "out of memory");

  write(dir + "/frame-task", 0, framed(flotilla::tcp::make_frame(frame_type::task, 3, task)));
  write(dir + "/frame-reply", 0, framed(flotilla::tcp::make_frame(frame_type::reply, 3, reply)));
  write(dir + "/frame-hello", 0, framed(flotilla::tcp::make_frame(frame_type::hello, 0, hello)));
  write(dir + "/frame-opening", 0, framed(flotilla::tcp::make_frame(frame_type::opening, 0)));
  write(dir + "/frame-failure", 0, framed(flotilla::tcp::make_frame(frame_type::failure, 3, reason)));
  write(dir + "/frame-heartbeat", 0, framed(flotilla::tcp::make_frame(frame_type::heartbeat, 0)));
  // Odd first byte: 1 + ((mode >> 1) % 9) is the payload decoder's frame type.
  write(dir + "/payload-hello", 1, *hello);
  write(dir + "/payload-reason", 11, *reason);
  write(dir + "/payload-task", 7, *task);
  write(dir + "/payload-reply", 9, *reply);
  write(dir + "/payload-parameters", 15, flotilla::encode(p));
  // Secure aggregation's stages: a task and a reply each, their payloads the stage's messages.
  namespace secagg = flotilla::secure_aggregation;
  const secagg::advertised_keys keys{2, {}, {}};
  const secagg::sealed_shares sealed{1, 2, std::vector<std::uint8_t>(secagg::sealed_shares_bytes, 5)};
  const secagg::share held{.x = 2, .y = {1, 2, 3, 4, 5}};
  const auto stage = [&](flotilla::task_kind kind, std::vector<std::uint8_t> to_learner, std::vector<std::uint8_t> back,
                         const char* name) {
    flotilla::task<params> work{.kind = kind, .round = 3, .payload = std::move(to_learner)};
    if (kind == secagg::masked_input_kind) work.parameters = std::make_shared<const params>(p);
    write(dir + "/payload-task-" + name, 7, flotilla::encode(work));
    flotilla::reply<params> answer{.learner = 4, .kind = kind, .round = 3, .result = {1, {}}, .payload = std::move(back)};
    write(dir + "/payload-reply-" + name, 9, flotilla::encode(answer));
  };
  stage(secagg::advertise_keys_kind,
        secagg::encode(secagg::round_setup{.round = 3, .learners = 3, .index = 2, .neighbours = {1, 3}, .threshold = 2, .values = 8}),
        secagg::encode(keys), "advertise");
  stage(secagg::share_keys_kind, secagg::encode(std::span(&keys, 1)), secagg::encode(std::span(&sealed, 1)), "share");
  stage(secagg::masked_input_kind, secagg::encode(std::span(&sealed, 1)),
        secagg::encode(secagg::masked_input{2, std::vector<std::uint32_t>(8, 77), {1, 3}}), "masked");
  stage(secagg::unmasking_kind, secagg::encode(secagg::unmask_request{{1}, {3}}),
        secagg::encode(secagg::unmask_response{2, {{1, held}}, {}}), "unmask");
  // Coded parameters in tasks and coded updates in replies (wire format 5).
  namespace compression = flotilla::compression;
  for (const char* name : {"float16", "int8:4", "int4:4"}) {
    auto coded = std::make_shared<const compression::coded_values>(compression::encode(p.values(), compression::parse_codec(name), 1));
    auto received = std::make_shared<params>(p);
    compression::decode(*coded, received->values());
    const flotilla::task<params> work{.kind = flotilla::task_kind::fit, .round = 3, .parameters = std::move(received),
                                      .config = {3, 9, {}}, .payload = {}, .reply_codec = compression::parse_codec("top_k:0.25"),
                                      .coded_parameters = std::move(coded)};
    write(dir + "/payload-task-" + std::string(name).substr(0, 5), 7, flotilla::encode(work));
  }
  compression::top_k_encoder top(0.25);
  for (const char* name : {"top_k:0.25", "bfloat16", "int4:4"}) {
    const auto spec = compression::parse_codec(name);
    flotilla::reply<params> answer{.learner = 4, .kind = flotilla::task_kind::fit, .round = 3, .result = {10, {}}};
    answer.coded_update = spec.kind == compression::codec::top_k ? compression::encode(p.values(), top, spec)
                                                                : compression::encode(p.values(), spec, 2);
    write(dir + "/payload-reply-" + std::string(name).substr(0, 5), 9, flotilla::encode(answer));
  }
  if (argc < 3) return 0;

  // The server fuzzer's seeds: whole byte streams of a learner. The first byte is the number
  // of connections less one; a seed with two connections repeats its stream on both halves.
  const std::string server_dir = argv[2];
  const auto joined = [](std::initializer_list<std::vector<std::byte>> frames) {
    std::vector<std::byte> out;
    for (const auto& f : frames) out.insert(out.end(), f.begin(), f.end());
    return out;
  };
  // Every connection starts with the learner's opening frame, then its hello.
  const auto opening = framed(flotilla::tcp::make_frame(frame_type::opening, 0));
  const auto hello_frame = joined({opening, framed(flotilla::tcp::make_frame(frame_type::hello, 0, hello))});
  const auto heartbeat = framed(flotilla::tcp::make_frame(frame_type::heartbeat, 0));
  const auto failure = framed(flotilla::tcp::make_frame(frame_type::failure, 3, reason));
  const auto reply_frame = framed(flotilla::tcp::make_frame(frame_type::reply, 3, reply));
  write(server_dir + "/stream-registers", 0, joined({hello_frame, heartbeat, heartbeat}));
  write(server_dir + "/stream-unsolicited", 0, joined({hello_frame, failure, failure, heartbeat}));
  write(server_dir + "/stream-reply", 0, joined({hello_frame, reply_frame}));
  write(server_dir + "/stream-two", 1, joined({hello_frame, heartbeat, hello_frame, failure}));
  flotilla::reply<params> coded_reply{.learner = 4, .kind = flotilla::task_kind::fit, .round = 3, .result = {10, {}}};
  coded_reply.coded_update = flotilla::compression::encode(p.values(), flotilla::compression::parse_codec("int8:4"), 3);
  const auto coded_bytes = std::make_shared<const flotilla::byte_buffer>(flotilla::encode(coded_reply));
  write(server_dir + "/stream-coded-reply", 0, joined({hello_frame, framed(flotilla::tcp::make_frame(frame_type::reply, 3, coded_bytes))}));
}
