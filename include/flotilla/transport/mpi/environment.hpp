#pragma once
// MPI for one program: started once per process, ended when the environment goes; and which
// learners each rank hosts. Only this folder includes <mpi.h> (target flotilla::mpi).

#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1  // MPI's C API only: its C++ bindings were deprecated in MPI-2.2
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include <cstddef>
#include <string>
#include <vector>

#include "flotilla/errors.hpp"
#include "flotilla/fwd.hpp"

namespace flotilla::mpi {

namespace detail {
// An MPI call that failed, with MPI's own words. (MPI's default handler ends the job first on
// most errors; this is for what it returns.)
inline void check(int code, const char* call) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw mpi_error(std::string(call) + " failed: " + std::string(text, static_cast<std::size_t>(length)));
}
}  // namespace detail

/// @brief MPI for this process: initialized on construction, finalized on destruction. A rank
/// calls MPI from one thread at a time, not necessarily the main one (MPI_THREAD_SERIALIZED);
/// its learners train on threads of their own that never call MPI.
class environment {
 public:
  /// @throws mpi_error if MPI was started already or cannot give the threading asked for.
  environment(int& argc, char**& argv) {
    int started = 0;
    MPI_Initialized(&started);
    if (started) throw mpi_error("MPI is already initialized: make one flotilla::mpi::environment per process");
    int provided = 0;
    detail::check(MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided), "MPI_Init_thread");
    if (provided < MPI_THREAD_SERIALIZED) {
      MPI_Finalize();
      throw mpi_error("this MPI offers thread level " + std::to_string(provided) +
                      "; Flotilla needs MPI_THREAD_SERIALIZED, as its ranks train learners on threads of their own");
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  environment(const environment&) = delete;
  environment& operator=(const environment&) = delete;
  ~environment() { MPI_Finalize(); }

  [[nodiscard]] int rank() const { return rank_; }
  [[nodiscard]] int size() const { return size_; }
  [[nodiscard]] MPI_Comm world() const { return MPI_COMM_WORLD; }

 private:
  int rank_ = 0;
  int size_ = 1;
};

/// The ids of a federation of `count` learners that rank `rank` of `ranks` hosts: every
/// `ranks`-th, from `rank`. Dealt out in turn, so a uniform selection keeps every rank about
/// equally busy. @throws configuration_error for a rank outside [0, ranks).
[[nodiscard]] inline std::vector<learner_id> share(std::size_t count, int rank, int ranks) {
  if (ranks < 1 || rank < 0 || rank >= ranks)
    throw configuration_error("rank " + std::to_string(rank) + " is not one of " + std::to_string(ranks));
  std::vector<learner_id> ids;
  ids.reserve(count / static_cast<std::size_t>(ranks) + 1);
  for (std::size_t id = static_cast<std::size_t>(rank); id < count; id += static_cast<std::size_t>(ranks)) ids.push_back(id);
  return ids;
}

}  // namespace flotilla::mpi
