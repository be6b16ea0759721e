#!/bin/sh
# A job whose rank dies ends (MPI's semantics); a new mpirun resumes it from the checkpoint and
# ends where an uninterrupted job does. Usage: resume.sh <work dir> <resume_job> <mpirun and its options...>
set -u
work="$1" job="$2"
shift 2
rm -rf "$work" && mkdir -p "$work"
"$@" "$job" --rounds 6 --out "$work/uninterrupted.txt" || { echo "the uninterrupted job failed"; exit 1; }
if "$@" "$job" --rounds 6 --checkpoint "$work/job.checkpoint" --die-in 4 >"$work/died.log" 2>&1; then
  echo "the job went on after rank 1 died"; exit 1
fi
echo "the job ended when rank 1 died in round 4, as MPI ends a job that loses a rank"
"$@" "$job" --rounds 6 --checkpoint "$work/job.checkpoint" --resume --expect "$work/uninterrupted.txt"
