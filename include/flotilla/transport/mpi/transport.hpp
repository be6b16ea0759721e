#pragma once
// A federation spread over the ranks of an MPI job. Every rank hosts a share of the learners in a
// local transport of its own (in_memory_transport or on_demand_transport); rank 0 also runs the
// coordinator, over this transport. A task goes out once to all ranks by broadcast. In a fit
// phase whose rule can send its partial state (PartialAggregator: the mean family and the server
// optimizers over it), each rank checks and folds its own learners' replies and sends rank 0 one
// partial aggregate, so rank 0 receives a model per rank, not per learner; any other reply (an
// evaluation, a rule that gathers every update) travels alone.
//
// A rank calls MPI from one thread at a time; nonblocking sends and a posted broadcast keep every
// rank responsive while its learners train. A rank that dies ends the job, as MPI does: resume
// from a checkpoint (persistence/checkpoint.hpp) with a new mpirun.

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include "flotilla/concepts/aggregator.hpp"
#include "flotilla/concepts/transport.hpp"
#include "flotilla/messages.hpp"
#include "flotilla/round/door.hpp"
#include "flotilla/round/phases.hpp"
#include "flotilla/round/reply_collector.hpp"
#include "flotilla/transport/mpi/environment.hpp"
#include "flotilla/wire/codec.hpp"
#include "flotilla/wire/messages.hpp"

namespace flotilla::mpi {

struct transport_options {
  /// Bounds on what a rank accepts from another, checked before anything is allocated.
  decode_limits limits{};
  /// How long a waiting rank sleeps between looks for MPI traffic: the latency a rank adds to a
  /// command or a reply from another rank.
  std::chrono::microseconds poll_interval{200};
};

/// What rank 0 has received from the other ranks: the cost a federation puts on it.
struct traffic {
  std::uint64_t partial_aggregates = 0;  ///< one per rank and folded fit exchange
  std::uint64_t messages = 0;            ///< replies and failures sent on one by one
  std::uint64_t bytes = 0;               ///< all of it
};

namespace detail {

enum tag : int { reply_tag = 1, failure_tag = 2, partial_tag = 3, done_tag = 4 };
enum class command : std::uint64_t { task = 1, close = 2, finish = 3 };
inline constexpr std::size_t chunk_bytes = std::size_t{1} << 30;  // MPI counts are ints

inline int to_int(std::size_t count) { return static_cast<int>(count); }

/// Sends without blocking: every message is a byte count, then its bytes in chunks of at most
/// 1 GiB, all with one tag (MPI keeps messages of one sender and tag in order). Buffers live
/// until their sends complete.
class outbox {
 public:
  outbox(MPI_Comm comm, int to) : comm_(comm), to_(to) {}
  outbox(const outbox&) = delete;
  outbox& operator=(const outbox&) = delete;
  ~outbox() { drain(); }

  void post(int tag, byte_buffer bytes) {
    auto& sent = pending_.emplace_back();
    sent.size = bytes.size();
    sent.bytes = std::move(bytes);
    sent.requests.emplace_back();
    flotilla::mpi::detail::check(MPI_Isend(&sent.size, 1, MPI_UINT64_T, to_, tag, comm_, &sent.requests.back()), "MPI_Isend");
    for (std::size_t at = 0; at < sent.bytes.size(); at += chunk_bytes) {
      sent.requests.emplace_back();
      check(MPI_Isend(sent.bytes.data() + at, to_int(std::min(chunk_bytes, sent.bytes.size() - at)), MPI_BYTE, to_, tag,
                      comm_, &sent.requests.back()),
            "MPI_Isend");
    }
  }

  /// Lets MPI move what it can and frees what has gone.
  void progress() {
    while (!pending_.empty()) {
      int done = 0;
      auto& first = pending_.front();
      check(MPI_Testall(to_int(first.requests.size()), first.requests.data(), &done, MPI_STATUSES_IGNORE), "MPI_Testall");
      if (!done) return;
      pending_.pop_front();
    }
  }

  /// Waits until everything posted has gone.
  void drain() {
    for (auto& sent : pending_)
      MPI_Waitall(to_int(sent.requests.size()), sent.requests.data(), MPI_STATUSES_IGNORE);
    pending_.clear();
  }

 private:
  struct sending {
    std::uint64_t size = 0;
    byte_buffer bytes;
    std::vector<MPI_Request> requests;
  };
  MPI_Comm comm_;
  int to_;
  std::deque<sending> pending_;  // a deque: buffers never move while MPI reads them
};

/// A message from another rank: who sent it, its tag, its bytes.
struct incoming {
  int source = 0;
  int tag = 0;
  byte_buffer bytes;
};

/// Receives a message if one has begun to arrive (any source and tag), checking its announced
/// size against `max_bytes` before allocating.
inline std::optional<incoming> try_receive(MPI_Comm comm, std::uint64_t max_bytes) {
  int waiting = 0;
  MPI_Status status;
  check(MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, comm, &waiting, &status), "MPI_Iprobe");
  if (!waiting) return std::nullopt;
  incoming message{status.MPI_SOURCE, status.MPI_TAG, {}};
  std::uint64_t size = 0;
  check(MPI_Recv(&size, 1, MPI_UINT64_T, message.source, message.tag, comm, MPI_STATUS_IGNORE), "MPI_Recv");
  if (size > max_bytes)
    throw mpi_error("rank " + std::to_string(message.source) + " announced a message of " + std::to_string(size) +
                    " bytes; the limit is " + std::to_string(max_bytes));
  message.bytes.resize(static_cast<std::size_t>(size));
  for (std::size_t at = 0; at < message.bytes.size(); at += chunk_bytes)
    check(MPI_Recv(message.bytes.data() + at, to_int(std::min(chunk_bytes, message.bytes.size() - at)), MPI_BYTE,
                   message.source, message.tag, comm, MPI_STATUS_IGNORE),
          "MPI_Recv");
  return message;
}

/// Broadcasts `bytes` (of a size every rank knows) from rank 0, in chunks.
inline void broadcast(MPI_Comm comm, std::span<std::byte> bytes) {
  for (std::size_t at = 0; at < bytes.size(); at += chunk_bytes) {
    MPI_Request request;
    check(MPI_Ibcast(bytes.data() + at, to_int(std::min(chunk_bytes, bytes.size() - at)), MPI_BYTE, 0, comm, &request),
          "MPI_Ibcast");
    check(MPI_Wait(&request, MPI_STATUS_IGNORE), "MPI_Wait");
  }
}

// A failure: learner, kind, round and reason (cut to what a reader accepts).
inline byte_buffer encode_failure(const failure& failed, const decode_limits& limits) {
  byte_buffer bytes;
  {
    wire_writer out(bytes);
    out.write(static_cast<std::uint64_t>(failed.learner));
    out.write(static_cast<std::uint8_t>(failed.kind));
    out.write(failed.round);
    out.write_string(failed.reason.substr(0, limits.max_string));
  }
  return bytes;
}

inline failure decode_failure(std::span<const std::byte> bytes, const decode_limits& limits) {
  wire_reader in(bytes, limits);
  failure failed;
  failed.learner = in.read<std::uint64_t>("learner id");
  failed.kind = flotilla::detail::read_kind(in);
  failed.round = in.read<std::uint64_t>("round");
  failed.reason = in.read_string("failure reason");
  return failed;
}

// What a rank folded in one fit exchange: the replies it admitted, the rejections and failures it
// recorded, then the rule's partial state.
template <class Rule>
byte_buffer encode_partial(std::span<const admitted_reply> admitted, std::span<const rejection> rejected,
                           const Rule& rule, const decode_limits& limits) {
  byte_buffer bytes;
  {
    wire_writer out(bytes);
    out.write(static_cast<std::uint64_t>(admitted.size()));
    for (const auto& answer : admitted) {
      out.write(static_cast<std::uint64_t>(answer.learner));
      out.write(answer.examples);
      flotilla::detail::write_map(out, answer.metrics);
    }
    out.write(static_cast<std::uint64_t>(rejected.size()));
    for (const auto& entry : rejected) {
      out.write(static_cast<std::uint64_t>(entry.learner));
      out.write(static_cast<std::uint8_t>(entry.kind));
      out.write(entry.round);
      out.write_string(entry.reason.substr(0, limits.max_string));
    }
    rule.write_partial(out);
  }
  return bytes;
}

}  // namespace detail

/// @brief A `Transport` over the ranks of an MPI job, each hosting learners in a `Local`
/// transport of its own. Construct it on every rank (collectively); on rank 0 hand it to a
/// coordinator, and call `finish()` when the run is over; on every other rank call `serve(rule)`,
/// which returns once rank 0 has finished.
///
/// Rank 0 hosts a share too, so one rank is a whole simulation. Learner ids must differ across
/// ranks (mpi::share deals them out). Messages from other ranks are checked against
/// `transport_options::limits` before they are trusted.
template <Transport Local>
class transport {
 public:
  using parameters_type = typename Local::parameters_type;
  using P = parameters_type;

  /// Collective: every rank of `comm` constructs one, with its own learners in `local`.
  /// @throws configuration_error on rank 0 if two ranks host the same learner id.
  transport(MPI_Comm comm, Local& local, transport_options options = {})
      : comm_(comm), local_(local), options_(options) {
    detail::check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
    detail::check(MPI_Comm_size(comm_, &ranks_), "MPI_Comm_size");
    gather_hosts();
    if (rank_ != 0) to_coordinator_.emplace(comm_, 0);
  }
  transport(const transport&) = delete;
  transport& operator=(const transport&) = delete;

  /// On rank 0, ends the job's federation if finish() was not called (see finish()).
  ~transport() {
    if (rank_ == 0 && !finished_) {
      try {
        finish();
      } catch (...) {  // a destructor cannot report it; the other ranks then wait for MPI to end them
      }
    }
  }

  [[nodiscard]] bool coordinates() const { return rank_ == 0; }
  /// Rank 0: what the other ranks have sent it so far.
  [[nodiscard]] const mpi::traffic& traffic() const { return traffic_; }
  [[nodiscard]] int rank() const { return rank_; }
  [[nodiscard]] int ranks() const { return ranks_; }

  /// Rank 0: every learner of the job that is not at work, in id order (as a single process
  /// would list them, so selection draws the same).
  [[nodiscard]] std::vector<learner_id> available() const {
    auto ids = local_.available();
    for (const auto& [id, host] : hosts_)
      if (host != 0 && !busy_.contains(id)) ids.push_back(id);
    std::ranges::sort(ids);
    return ids;
  }

  /// Rank 0: broadcasts `work` once to every rank, which starts it on its learners among `to`.
  void send(const task<P>& work, std::span<const learner_id> to) { start(work, to, false, 0); }

  /// Rank 0: the next message from this rank's learners or another rank's, or nothing once
  /// `deadline` has passed.
  [[nodiscard]] std::optional<message<P>> receive(deadline_clock::time_point deadline) {
    for (;;) {
      if (auto next = local_.receive(deadline_clock::now())) return next;
      if (auto in = receive_remote()) return remote_message(*in);
      const auto now = deadline_clock::now();
      if (now >= deadline) return std::nullopt;
      if (auto next = local_.receive(std::min(deadline, now + options_.poll_interval))) return next;
    }
  }

  /// Rank 0, in a fit phase (see FoldingTransport): sends `work` to the door's learners; replies
  /// of this rank's learners go through `door` to `consume`; every other rank with learners
  /// selected folds its own into a copy of the rule and sends one partial state, merged into
  /// `rule`. At the deadline the ranks still folding are told to send what they have.
  template <class Rule, class Consume>
    requires PartialAggregator<Rule, P>
  exchange_outcome fold_exchange(const task<P>& work, reply_door<P>& door, Rule& rule, const exchange_options& options,
                                 rejection_log& log, const Consume& consume) {
    const std::vector<learner_id> asked(door.pending().begin(), door.pending().end());
    if (work.coded_parameters) {  // a coded reply is decoded against rank 0's own global parameters
      send(work, asked);
      return collect_replies(*this, door, options, log, consume);
    }
    auto folding = start(work, asked, true, door.max_examples());
    reply_tally<P> tally(door, log);
    auto& batch = tally.batch();
    const auto deadline = deadline_clock::now() + std::chrono::duration_cast<deadline_clock::duration>(options.timeout);
    bool closed = false;
    const auto take_remote = [&](detail::incoming& in) {
      if (in.tag != detail::partial_tag) {
        auto next = remote_message(in);
        tally.take(next);
        return;
      }
      if (!folding.erase(in.source))
        throw mpi_error("rank " + std::to_string(in.source) + " sent a partial aggregate it was not asked for");
      merge_partial(in, tally, log, rule);
    };
    while (!door.pending().empty() && !(closed && folding.empty())) {
      bool heard = false;  // this rank's replies already waiting are folded together, as collect_replies does
      for (std::optional<message<P>> next; batch.size() < largest_fold_batch && (next = local_.receive(deadline_clock::now()));
           heard = true)
        tally.take(*next);
      if (auto in = receive_remote()) {
        take_remote(*in);
        heard = true;
      }
      if (!heard && deadline_clock::now() >= deadline) {
        if (!closed && !folding.empty()) broadcast_command(detail::command::close, {});
        closed = true;
        std::this_thread::sleep_for(options_.poll_interval);  // the other ranks answer a close at once
      } else if (!heard) {
        if (auto waited = local_.receive(std::min(deadline, deadline_clock::now() + options_.poll_interval)))
          tally.take(*waited);
      }
      if (!batch.empty()) consume(std::span(batch));
      batch.clear();
    }
    for (auto id : door.pending()) busy_.erase(id);  // not heard of in time: selectable again
    return tally.finish(options);
  }

  /// Rank 0: tells every rank that the run is over and waits until each has sent all it had.
  void finish() {
    if (rank_ != 0 || finished_) return;
    finished_ = true;
    broadcast_command(detail::command::finish, {});
    for (int remaining = ranks_ - 1; remaining > 0;) {
      if (auto in = receive_remote()) remaining -= in->tag == detail::done_tag;
      else std::this_thread::sleep_for(options_.poll_interval);
    }
  }

  /// Every rank but 0: hosts this rank's learners until rank 0 finishes. `rule` is the
  /// coordinator's rule, used to fold this rank's fit replies when it can send its partial state.
  /// @throws mpi_error or decode_error if rank 0's messages cannot be read: the job then ends.
  template <class Rule>
  void serve(Rule rule) {
    if (rank_ == 0) throw usage_error("rank 0 coordinates; serve() is for the other ranks");
    std::array<std::uint64_t, 2> header{};
    MPI_Request listening = MPI_REQUEST_NULL;
    std::size_t outstanding = 0;  // tasks started here and not yet answered
    std::optional<fold_state> fold;
    bool finishing = false;
    for (;;) {
      if (!finishing && listening == MPI_REQUEST_NULL)
        detail::check(MPI_Ibcast(header.data(), 2, MPI_UINT64_T, 0, comm_, &listening), "MPI_Ibcast");
      int arrived = 0;
      if (!finishing) detail::check(MPI_Test(&listening, &arrived, MPI_STATUS_IGNORE), "MPI_Test");
      if (arrived) {
        byte_buffer payload(static_cast<std::size_t>(header[1]));
        detail::broadcast(comm_, payload);
        switch (static_cast<detail::command>(header[0])) {
          case detail::command::task: outstanding += start_here(payload, rule, fold); break;
          case detail::command::close:
            if (fold) send_partial(*fold, rule);
            fold.reset();
            break;
          case detail::command::finish: finishing = true; break;
          default: throw mpi_error("rank 0 sent unknown command " + std::to_string(header[0]));
        }
        fold_waiting(rule, fold);  // sends at once when nothing of this rank was asked
        continue;
      }
      if (finishing && outstanding == 0) break;
      auto next = local_.receive(deadline_clock::now() + options_.poll_interval);
      for (std::size_t taken = 1; next; next = taken++ < largest_fold_batch ? local_.receive(deadline_clock::now()) : std::nullopt) {
        --outstanding;
        take_here(*next, fold);
      }
      fold_waiting(rule, fold);
      to_coordinator_->progress();
    }
    to_coordinator_->post(detail::done_tag, {});
    to_coordinator_->drain();
  }

 private:
  // A fit exchange this rank folds: its own door and tally, the rule started from the global.
  struct fold_state {
    fold_state(const task<P>& work, std::span<const learner_id> mine, std::int64_t max_examples,
               std::function<std::optional<std::string>(const P&)> screen)
        : base(work.parameters), door(work, mine, reply_parameters::required, max_examples, std::move(screen)) {}
    std::shared_ptr<const P> base;  // the global parameters: what a coded reply's change is added to
    reply_door<P> door;
    std::vector<rejection> rejected;
    rejection_log log{rejected, 64};
    reply_tally<P> tally{door, log};
  };

  // A message from another rank, if one is arriving; counted.
  std::optional<detail::incoming> receive_remote() {
    auto in = detail::try_receive(comm_, max_message_bytes());
    if (in) {
      traffic_.bytes += in->bytes.size();
      if (in->tag == detail::partial_tag) ++traffic_.partial_aggregates;
      else if (in->tag != detail::done_tag) ++traffic_.messages;
    }
    return in;
  }

  std::uint64_t max_message_bytes() const {
    return options_.limits.max_scalars * sizeof(typename P::scalar_type) + options_.limits.max_payload + (1u << 24);
  }

  // Every rank's learner ids, gathered at rank 0: which rank hosts which learner.
  void gather_hosts() {
    const auto mine = local_.available();
    const auto count = static_cast<std::uint64_t>(mine.size());
    std::vector<std::uint64_t> counts(rank_ == 0 ? static_cast<std::size_t>(ranks_) : 0);
    detail::check(MPI_Gather(&count, 1, MPI_UINT64_T, counts.data(), 1, MPI_UINT64_T, 0, comm_), "MPI_Gather");
    std::vector<int> sizes, offsets;
    std::size_t total = 0;
    for (auto each : counts) {
      offsets.push_back(detail::to_int(total));
      sizes.push_back(detail::to_int(each));
      total += each;
    }
    std::vector<std::uint64_t> own(mine.begin(), mine.end()), all(total);
    detail::check(MPI_Gatherv(own.data(), detail::to_int(own.size()), MPI_UINT64_T, all.data(), sizes.data(),
                              offsets.data(), MPI_UINT64_T, 0, comm_),
                  "MPI_Gatherv");
    for (int rank = 0; rank < static_cast<int>(counts.size()); ++rank)
      for (int i = 0; i < sizes[rank]; ++i) {
        const auto id = static_cast<learner_id>(all[static_cast<std::size_t>(offsets[rank] + i)]);
        if (auto [at, added] = hosts_.emplace(id, rank); !added)
          throw configuration_error("learner " + std::to_string(id) + " is hosted by ranks " + std::to_string(at->second) +
                                    " and " + std::to_string(rank) + "; give each rank its own share of the ids");
      }
  }

  void broadcast_command(detail::command what, byte_buffer payload) {
    std::array<std::uint64_t, 2> header{static_cast<std::uint64_t>(what), payload.size()};
    MPI_Request request;
    detail::check(MPI_Ibcast(header.data(), 2, MPI_UINT64_T, 0, comm_, &request), "MPI_Ibcast");
    detail::check(MPI_Wait(&request, MPI_STATUS_IGNORE), "MPI_Wait");
    detail::broadcast(comm_, payload);
  }

  // Rank 0: starts `work` here on this rank's learners among `to`, and broadcasts it when other
  // ranks host some. Returns the other ranks that will send a partial aggregate.
  std::set<int> start(const task<P>& work, std::span<const learner_id> to, bool fold, std::int64_t max_examples) {
    if (rank_ != 0) throw usage_error("only rank 0 sends tasks; the other ranks serve()");
    std::vector<learner_id> here, elsewhere;
    std::set<int> folding;
    for (auto id : to) {
      const auto host = hosts_.find(id);
      if (host == hosts_.end() || host->second == 0) {
        here.push_back(id);  // an unknown id fails in the local transport, with its reason
      } else {
        elsewhere.push_back(id);
        busy_.insert(id);
        folding.insert(host->second);
      }
    }
    if (!elsewhere.empty()) {
      byte_buffer payload;
      {
        wire_writer out(payload);
        out.write(static_cast<std::uint8_t>(fold));
        out.write(max_examples);
        out.write(static_cast<std::uint64_t>(elsewhere.size()));
        for (auto id : elsewhere) out.write(static_cast<std::uint64_t>(id));
      }
      const auto encoded = encode(work);
      payload.insert(payload.end(), encoded.begin(), encoded.end());
      broadcast_command(detail::command::task, std::move(payload));
    }
    if (!here.empty()) local_.send(work, here);
    if (!fold) folding.clear();
    return folding;
  }

  // Another rank: starts a broadcast task on its own learners among those named; opens `fold`
  // when asked to fold. Returns how many learners it started.
  template <class Rule>
  std::size_t start_here(std::span<const std::byte> payload, Rule& rule, std::optional<fold_state>& fold) {
    wire_reader in(payload, options_.limits);
    const bool folds = in.read<std::uint8_t>("fold flag") != 0;
    const auto max_examples = in.read<std::int64_t>("largest example count");
    const auto count = in.read_count(options_.limits.max_scalars, 8, "learner count");
    std::vector<learner_id> mine;
    for (std::uint64_t i = 0; i < count; ++i) {
      const auto id = static_cast<learner_id>(in.read<std::uint64_t>("learner id"));
      if (own_.contains(id)) mine.push_back(id);
    }
    const auto consumed = payload.size() - static_cast<std::size_t>(in.remaining());
    const auto work = decode_task<P>(payload.subspan(consumed), options_.limits);
    if (folds) {
      if constexpr (PartialAggregator<Rule, P>) {
        if (fold) send_partial(*fold, rule);  // a fold left open: its round is over
        std::function<std::optional<std::string>(const P&)> screen;
        if constexpr (ScreeningAggregator<Rule, P>) screen = [&rule](const P& update) { return rule.screen(update); };
        rule.start(*work.parameters);
        fold.emplace(work, mine, max_examples, std::move(screen));
      } else {
        throw mpi_error("rank 0 asked this rank to fold replies with a rule that cannot send its partial state");
      }
    }
    if (!mine.empty()) local_.send(work, mine);
    return mine.size();
  }

  // Another rank: a message of this rank's learners joins the open fold's batch when it answers
  // that fold, and is sent to rank 0 on its own otherwise.
  void take_here(message<P>& next, std::optional<fold_state>& fold) {
    const bool belongs = fold && std::visit([&](const auto& m) { return fold->door.answers(m.learner, m.kind, m.round); }, next);
    if (belongs) fold->tally.take(next);
    else if (auto* answer = std::get_if<reply<P>>(&next)) to_coordinator_->post(detail::reply_tag, encode(*answer));
    else to_coordinator_->post(detail::failure_tag, detail::encode_failure(std::get<failure>(next), options_.limits));
  }

  // Another rank: folds the admitted replies waiting in one pass, and sends the partial aggregate
  // once every learner of this rank asked has answered.
  template <class Rule>
  void fold_waiting(Rule& rule, std::optional<fold_state>& fold) {
    if (!fold) return;
    auto& batch = fold->tally.batch();
    if (!batch.empty()) fold_replies(rule, std::span(batch), *fold->base);
    batch.clear();
    if (fold->door.pending().empty()) {
      send_partial(*fold, rule);
      fold.reset();
    }
  }

  template <class Rule>
  void send_partial(fold_state& fold, const Rule& rule) {
    if constexpr (PartialAggregator<Rule, P>)
      to_coordinator_->post(detail::partial_tag,
                            detail::encode_partial(fold.tally.admitted(), fold.rejected, rule, options_.limits));
  }

  // Rank 0: a reply or failure from another rank, checked as it is decoded.
  message<P> remote_message(detail::incoming& in) {
    message<P> next = [&]() -> message<P> {
      switch (in.tag) {
        case detail::reply_tag: return decode_reply<P>(in.bytes, options_.limits);
        case detail::failure_tag: return detail::decode_failure(in.bytes, options_.limits);
        default:
          throw mpi_error("rank " + std::to_string(in.source) + " sent a message with tag " + std::to_string(in.tag) +
                          " outside a fit exchange");
      }
    }();
    const auto learner = std::visit([](const auto& m) { return m.learner; }, next);
    if (const auto host = hosts_.find(learner); host == hosts_.end() || host->second != in.source)
      throw mpi_error("rank " + std::to_string(in.source) + " sent a message for learner " + std::to_string(learner) +
                      ", which it does not host");
    busy_.erase(learner);
    return next;
  }

  // Rank 0: one rank's partial aggregate: its admitted replies and rejections into the tally
  // and the log, its rule state into `rule`.
  template <class Rule>
  void merge_partial(detail::incoming& in, reply_tally<P>& tally, rejection_log& log, Rule& rule) {
    wire_reader reader(in.bytes, options_.limits);
    const auto from = [&](learner_id learner) {
      const auto host = hosts_.find(learner);
      if (host == hosts_.end() || host->second != in.source)
        throw mpi_error("rank " + std::to_string(in.source) + " reported learner " + std::to_string(learner) +
                        ", which it does not host");
      busy_.erase(learner);
      return learner;
    };
    const auto admitted = reader.read_count(options_.limits.max_scalars, 20, "admitted reply count");
    for (std::uint64_t i = 0; i < admitted; ++i) {
      admitted_reply answer;
      answer.learner = from(static_cast<learner_id>(reader.read<std::uint64_t>("learner id")));
      answer.examples = reader.read<std::int64_t>("example count");
      answer.metrics = flotilla::detail::read_map(reader, "metrics");
      if (auto problem = tally.take_checked(std::move(answer)))
        throw mpi_error("rank " + std::to_string(in.source) + " folded a reply this round cannot admit: " + *problem);
    }
    const auto rejected = reader.read_count(options_.limits.max_scalars, 21, "rejection count");
    for (std::uint64_t i = 0; i < rejected; ++i) {
      const auto learner = from(static_cast<learner_id>(reader.read<std::uint64_t>("learner id")));
      const auto kind = flotilla::detail::read_kind(reader);
      const auto round = reader.read<std::uint64_t>("round");
      auto reason = reader.read_string("rejection reason");
      tally.release(learner, kind, round);
      log.record(learner, kind, round, std::move(reason));
    }
    rule.merge_partial(reader);
  }

  MPI_Comm comm_;
  Local& local_;
  transport_options options_;
  int rank_ = 0;
  int ranks_ = 1;
  std::unordered_map<learner_id, int> hosts_;  // rank 0: every learner's rank
  std::unordered_set<learner_id> own_ = [this] {
    const auto mine = local_.available();
    return std::unordered_set<learner_id>(mine.begin(), mine.end());
  }();
  std::unordered_set<learner_id> busy_;  // rank 0: learners of other ranks at work
  std::optional<detail::outbox> to_coordinator_;  // the other ranks
  mpi::traffic traffic_;
  bool finished_ = false;
};

}  // namespace flotilla::mpi
