"""Data-parallel training over MPI: one process (rank) per core group or host, started
by mpirun, each running the training step of a contiguous block of the streams.

    N streams (--batch-size, global), R ranks: rank r runs streams r*N//R .. (r+1)*N//R,
    the same cut threads.ranges makes for R threads, so the parts are the same.

One step: every rank computes the gradient of its streams; the flat gradients are
summed across the ranks in rank order (g0 + g1 + ... + g(R-1), as a process adds its
threads' parts), so every rank holds the same bits; clipping and the optimizer step
are then identical everywhere. MPI_Allreduce would move the same bytes, but its
reduction order is the library's choice (it differs between algorithms, message sizes
and rank counts), and a rerun must give the same checkpoint bit for bit.

Communicator() is Single() unless the environment says this process is one of more
than one ranks (mpirun sets OMPI_COMM_WORLD_SIZE, PMI_SIZE or MV2_COMM_WORLD_SIZE):
a run without mpirun never imports mpi4py.
"""
import os
import sys
import time
import zlib

import numpy as np

from charrnn import CharrnnError

# (size, rank) variables of Open MPI, MPICH/Intel MPI (Hydra), MVAPICH2
ENV = (("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"), ("PMI_SIZE", "PMI_RANK"),
       ("MV2_COMM_WORLD_SIZE", "MV2_COMM_WORLD_RANK"))
CHECK_EVERY = 200  # steps between comparisons of the parameters across ranks
ECHO_DELAY = 5.0  # s a rank other than 0 waits before reporting an error: rank 0 may have the same


def world():
    """(rank, size) from mpirun's environment; (0, 1) without it."""
    for size, rank in ENV:
        if os.environ.get(size, "").isdigit() and os.environ.get(rank, "").isdigit():
            return int(os.environ[rank]), int(os.environ[size])
    return 0, 1


class Single:
    """The communicator of a run in one process: every collective is the identity."""
    rank, size = 0, 1

    @property
    def is_root(self):
        return self.rank == 0

    def block(self, n):
        """This rank's contiguous share lo..hi of n streams (or evaluation parts)."""
        return self.rank * n // self.size, (self.rank + 1) * n // self.size

    def reduce(self, grad, total):
        """Sums grad (flat, in place) and the loss total over the ranks; returns the total."""
        return total

    def agree(self, code):
        """The largest of every rank's code (int), so all take the same branch."""
        return code

    def gather(self, state):
        """Fills the other ranks' streams of state (L, S, N, H) with theirs."""
        return state

    def evaluate(self, cfg, p, ids):
        from charrnn.evaluate import evaluate
        return evaluate(cfg, p, ids)[0]

    def check(self, flat, step):
        """Stops every rank with one line if the parameters differ between them."""


class Mpi(Single):
    def __init__(self, comm):
        from mpi4py import MPI
        self.MPI, self.comm = MPI, comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self._layout = None

    def _segments(self, n):
        """Each rank owns segment r of the flat gradient and sums it: counts, starts."""
        if self._layout is None or self._layout[0] != n:
            counts = np.array([(r + 1) * n // self.size - r * n // self.size
                               for r in range(self.size)])
            starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
            self._layout = n, counts, starts, None
        return self._layout[1], self._layout[2]

    def reduce(self, grad, total):
        """A reduce-scatter (every rank receives its segment from every rank and adds
        them in rank order), then an allgather of the summed segments, in place."""
        counts, starts = self._segments(grad.size)
        c = int(counts[self.rank])
        n, _, _, recv = self._layout
        if recv is None or recv.dtype != grad.dtype:
            recv = np.empty((self.size, c), dtype=grad.dtype)
            self._layout = n, counts, starts, recv
        self.comm.Alltoallv([grad, (counts, starts)],
                            [recv, ([c] * self.size, [r * c for r in range(self.size)])])
        mine = grad[starts[self.rank]:starts[self.rank] + c]
        mine[:] = recv[0]
        for r in range(1, self.size):
            mine += recv[r]
        self.comm.Allgatherv(self.MPI.IN_PLACE, [grad, (counts, starts)])
        return sum(self.comm.allgather(total))  # 0 + t0 + t1 ...: the threads' order

    def agree(self, code):
        return self.comm.allreduce(int(code), op=self.MPI.MAX)

    def gather(self, state):
        N = state.shape[2]
        lo, hi = self.block(N)
        parts = self.comm.allgather(np.ascontiguousarray(state[:, :, lo:hi]))
        state[:] = np.concatenate(parts, axis=2)
        return state

    def evaluate(self, cfg, p, ids):
        """evaluate()'s loss, its parts split across the ranks; the chunks' sums are
        added in the order one process adds them."""
        from charrnn.evaluate import chunk_sums, num_parts
        if len(ids) < 2:
            return float("nan")
        mine = chunk_sums(cfg, p, ids, parts=self.block(num_parts(len(ids))))
        lists = [s for s in self.comm.allgather(mine) if s]
        k = min(len(s) for s in lists)
        total = 0.0
        for i in range(k):
            total += sum(s[i] for s in lists)
        for s in lists[-1][k:]:  # the last part's continuation
            total += s
        return total / (len(ids) - 1)

    def check(self, flat, step):
        sums = self.comm.allgather(zlib.crc32(flat.view(np.uint8)))
        if len(set(sums)) > 1:
            odd = [r for r, s in enumerate(sums) if s != sums[0]]
            raise CharrnnError(f"the parameters of rank(s) {', '.join(map(str, odd))} differ "
                               f"from rank 0's at step {step}; the ranks must run the same "
                               f"charrnn, numpy and CPU type: resume from the last checkpoint")


def communicator():
    """Single(), or Mpi() of MPI_COMM_WORLD when mpirun started more than one rank."""
    rank, size = world()
    if size <= 1:
        return Single()
    try:
        import mpi4py
        mpi4py.rc.thread_level = "funneled"  # only the main thread calls MPI
        from mpi4py import MPI
    except ImportError:
        raise CharrnnError("charrnn runs under mpirun but mpi4py is not installed: "
                           "pip install 'charrnn[mpi]'")
    sys.excepthook = _abort_on_exception
    return Mpi(MPI.COMM_WORLD)


def _abort_on_exception(kind, value, tb):
    """A bug on one rank: its traceback, then the job ends rather than hang."""
    sys.__excepthook__(kind, value, tb)
    abort(1)


def abort(code):
    """Ends every rank: MPI's Abort when MPI is running, else this process's exit."""
    MPI = sys.modules.get("mpi4py.MPI")
    if MPI is not None and MPI.Is_initialized() and not MPI.Is_finalized():
        sys.stderr.flush()
        MPI.COMM_WORLD.Abort(code)
    sys.exit(code)


def fail(message, code, usage=False):
    """Reports an error of this rank on one line and ends the job. A usage error is
    the same on every rank (the same command line): rank 0 alone says it. Other
    errors name the rank. A rank other than 0 waits a moment first, so that rank 0,
    when it meets the same error, says it and ends the job before the others exit
    (mpirun ends every rank when one exits with an error)."""
    rank, size = world()
    if size <= 1:
        print(f"charrnn: error: {message}", file=sys.stderr)
        sys.exit(code)
    if rank:
        time.sleep(ECHO_DELAY)
    if usage:
        if rank == 0:
            print(f"charrnn: error: {message}", file=sys.stderr, flush=True)
        sys.exit(code)
    print(f"charrnn: error: rank {rank}: {message}", file=sys.stderr, flush=True)
    abort(code)
