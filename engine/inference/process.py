"""A :class:`~engine.inference.case.Scorer` whose models live in a separate process.

The workstation never imports torch: importing it (and building the models) in a thread of the
GUI process held the GIL and froze the event loop for 1.2-1.7 s (issue 17). :class:`ProcessScorer`
starts ``python -m engine.inference.serve`` on its first request and talks to it over the child's
stdin/stdout with a small framed protocol (:func:`send` / :func:`receive`):

* a frame is ``<Q header length><I buffer count>``, each buffer's ``<Q length>``, the pickled
  header (protocol 5) and the raw bytes of every buffer. numpy arrays (images in, saliency maps
  out) travel out of band: no copy into the pickle;
* on Linux a buffer of :data:`FD_MIN_BYTES` or more does not go through the pipe at all: it is
  written once into an anonymous memory file (``memfd_create``) whose descriptor travels over a
  Unix socket beside the pipe (``SCM_RIGHTS``), and the receiver maps it copy-on-write, so the
  array it gets is that memory: one copy instead of the pipe's two plus a page fault per 4 KiB
  written. Its length field carries :data:`_VIA_FD`. Nothing is left behind if either end dies
  (the kernel closes the descriptors), and ``/dev/shm``'s size limit does not apply;
* requests ``{"op": "score" | "warm" | "info" | "cancel", "id": n, ...}``; replies
  ``{"id": n, "kind": "progress" | "result" | "error", ...}``. Progress drives the caller's
  callback; ``cancel`` stops the child at its next :func:`engine.progress.check`;
* a child that dies (crash, kill, out of memory) becomes one :class:`ModelProcessError` naming
  its exit status and its last stderr line; the next request starts a new child;
* the child exits when its stdin closes, which the kernel does when this process ends, however
  it ends (``os._exit`` after the window closes, a kill): it never outlives the workstation.

Results are plain data: scores, numpy maps and :mod:`engine.results`' torch-free
:class:`~engine.results.LesionAssessment` / :class:`~engine.results.SaliencyMap`, the same
classes the engine makes, so unpickling them here never imports torch.
"""

from __future__ import annotations

import ctypes
import functools
import io
import mmap
import os
import pickle
import select
import socket
import struct
import subprocess
import sys
import threading
import weakref
from collections import deque
from collections.abc import Sequence
from typing import IO, Any

from engine.errors import BreastReaderError, Cancelled, ModelNotFoundError
from engine.inference.case import CaseInput, CaseScores, ModelInfo
from engine.progress import ProgressCallback

_HEAD = struct.Struct("<QI")
_LEN = struct.Struct("<Q")
#: Out-of-band buffers this large travel as a memory file over the side socket (when there is one).
FD_MIN_BYTES = 1 << 20
#: Flag bit in a buffer's length field: its bytes come as a descriptor on the side socket.
_VIA_FD = 1 << 63
#: How often a waiting caller looks at its cancel token (s).
POLL_S = 0.05
#: Nice increment of the model process: the GUI process wins the CPU on a busy machine.
CHILD_NICE = 5


class ModelProcessError(BreastReaderError):
    """The model process stopped or could not be started (it is restarted on the next request)."""


# ------------------------------------------------------------------------------------ frames
def fd_passing() -> bool:
    """Whether this platform can pass buffers as memory files (Linux: memfd + SCM_RIGHTS)."""
    return hasattr(os, "memfd_create") and hasattr(socket, "send_fds") and hasattr(socket, "AF_UNIX")


def side_channel() -> tuple[socket.socket, socket.socket] | None:
    """A connected pair of Unix datagram sockets for :func:`send`'s ``fds`` (None where unsupported)."""
    if not fd_passing():
        return None
    try:
        return socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    except OSError:
        return None


def _memfd(raw: memoryview) -> int:
    """A memory file holding ``raw``'s bytes (its descriptor; the caller closes it)."""
    fd = os.memfd_create("breast-reader-buffer", os.MFD_CLOEXEC)
    try:
        view = raw.cast("B")
        while view.nbytes:
            view = view[os.write(fd, view):]
    except BaseException:
        os.close(fd)
        raise
    return fd


def send(fh: IO[bytes], msg: Any, fds: socket.socket | None = None) -> None:
    """Write one frame: ``msg`` pickled (protocol 5) with its contiguous buffers out of band.

    With ``fds`` (one end of :func:`side_channel`) buffers of :data:`FD_MIN_BYTES` or more are
    sent as memory files on it, before the frame, in order; the receiver must read the frame
    with the other end.
    """
    bufs: list[pickle.PickleBuffer] = []
    head = pickle.dumps(msg, protocol=5, buffer_callback=bufs.append)
    raws = [b.raw() for b in bufs]
    via_fd = [fds is not None and r.nbytes >= FD_MIN_BYTES for r in raws]
    for r, v in zip(raws, via_fd):
        if v:
            assert fds is not None
            fd = _memfd(r)
            try:
                socket.send_fds(fds, [b"F"], [fd])
            finally:
                os.close(fd)
    lens = b"".join(_LEN.pack(r.nbytes | (_VIA_FD if v else 0)) for r, v in zip(raws, via_fd))
    _write_all(fh, _HEAD.pack(len(head), len(raws)) + lens)
    _write_all(fh, head)
    for r, v in zip(raws, via_fd):
        if not v:
            _write_all(fh, r)
    fh.flush()


def _write_all(fh: IO[bytes], data: bytes | memoryview) -> None:
    """Unbuffered pipe writes may be partial: write until every byte is out."""
    view = memoryview(data).cast("B")
    while view.nbytes:
        n = fh.write(view)
        if n is None:  # a non-blocking pipe that is full; ours are blocking
            continue
        view = view[n:]


def _read_exact(fh: IO[bytes], n: int) -> bytearray:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = fh.readinto(view[got:])  # type: ignore[attr-defined]
        if not k:
            raise EOFError("the other end closed the pipe")
        got += k
    return buf


@functools.cache
def _libc_mmap() -> Any:
    """libc's mmap/munmap through ctypes (None where there is none): maps that hold no descriptor.
    Looked up on the first memory file received, not when the workstation imports this module."""
    if not fd_passing():
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                              ctypes.c_long]
        libc.munmap.restype = ctypes.c_int
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        return libc
    except (OSError, AttributeError):
        return None


_MAP_FAILED = ctypes.c_void_p(-1).value


def _map_private(fd: int, n: int) -> Any:
    """``fd``'s first ``n`` bytes mapped copy-on-write as a ctypes array, unmapped when it is
    garbage (Python's ``mmap.mmap`` would keep a duplicate of ``fd`` open as long as the array
    lives: a workstation caching saliency maps would run out of descriptors). None on failure."""
    libc = _libc_mmap()
    if libc is None:
        return None
    addr = libc.mmap(None, n, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_PRIVATE, fd, 0)
    if addr is None or addr == _MAP_FAILED:
        return None
    buf = (ctypes.c_ubyte * n).from_address(addr)
    fin = weakref.finalize(buf, libc.munmap, addr, n)
    fin.atexit = False  # at exit the kernel unmaps it; unmapping earlier could pull memory from under a late reader
    return buf


def _mapped(fds: socket.socket | None, n: int) -> Any:
    """The next memory file on ``fds`` as a writable buffer private to this process: mapped
    copy-on-write (no copy), or read into memory where it cannot be mapped."""
    if fds is None:
        raise pickle.UnpicklingError("a frame refers to a memory file but there is no side socket")
    _, got, _, _ = socket.recv_fds(fds, 1, 1)
    if len(got) != 1:
        raise EOFError("the side socket closed")
    fd = got[0]
    try:
        if os.fstat(fd).st_size < n:
            raise pickle.UnpicklingError("a memory file is shorter than its frame says")
        buf = _map_private(fd, n)
        if buf is None:
            buf = bytearray(n)
            view, off = memoryview(buf), 0
            # pread from 0: the descriptor shares the sender's file offset, which its write left at the end
            while off < n:
                k = os.preadv(fd, [view[off:]], off)
                if not k:
                    raise EOFError("a memory file ended early")
                off += k
        return buf
    finally:
        os.close(fd)


def receive(fh: IO[bytes], fds: socket.socket | None = None) -> Any:
    """Read one frame written by :func:`send` (EOFError when the pipe is closed)."""
    n_head, n_bufs = _HEAD.unpack(_read_exact(fh, _HEAD.size))
    lens = [_LEN.unpack_from(b)[0] for b in [_read_exact(fh, _LEN.size) for _ in range(n_bufs)]]
    head = _read_exact(fh, n_head)
    bufs = [_mapped(fds, n & ~_VIA_FD) if n & _VIA_FD else _read_exact(fh, n) for n in lens]
    return pickle.loads(head, buffers=bufs)


# ------------------------------------------------------------------------------------ client
class ProcessScorer:
    """The engine's :class:`~engine.inference.case.CaseScorer`, run in a child process.

    Implements the :class:`~engine.inference.case.Scorer` Protocol (blocking: call it off the
    GUI thread) plus :meth:`warm_up` and :meth:`model_info`. One request at a time.

    Args:
        loader: ``"module:function"`` the child loads its models with (default: the installed
            weights); tests give a fake one.
        nice: Nice increment of the child (:data:`CHILD_NICE`).
        env: Extra environment variables of the child.
    """

    def __init__(self, loader: str | None = None, *, nice: int = CHILD_NICE,
                 env: dict[str, str] | None = None) -> None:
        self.loader = loader
        self.nice = nice
        self.env = dict(env or {})
        self.model_choice: dict[str, str | None] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._fds: socket.socket | None = None  # this end of the running child's side socket
        self._lock = threading.Lock()  # one request (and one start) at a time
        self._ids = 0
        self._stderr_tail: deque[str] = deque(maxlen=6)
        self.starts = 0  # how many children were started (a crash restarts one)
        self._finalizer: weakref.finalize | None = None  # type: ignore[type-arg]

    # -- life cycle
    @property
    def pid(self) -> int | None:
        """The running child's pid, or None."""
        p = self._proc
        return p.pid if p is not None and p.poll() is None else None

    def start(self) -> None:
        """Start the child now if none is running (returns at once; it imports torch meanwhile)."""
        with self._lock:
            self._ensure()

    def _ensure(self) -> subprocess.Popen[bytes]:
        p = self._proc
        if p is not None and p.poll() is None:
            return p
        env = dict(os.environ, **self.env)
        # the child sees the modules this process sees (a test's fake loader, a source checkout)
        env["PYTHONPATH"] = os.pathsep.join(x for x in [*sys.path, env.get("PYTHONPATH", "")] if x)
        cmd = [sys.executable, "-m", "engine.inference.serve", "--nice", str(self.nice)]
        if self.loader:
            cmd += ["--loader", self.loader]
        pair = side_channel()  # a new one per child: nothing a dead child queued can reach the next
        if pair is not None:
            cmd += ["--fd-socket", str(pair[1].fileno())]
        try:
            p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 env=env, bufsize=0, pass_fds=[pair[1].fileno()] if pair else [])
        except OSError as exc:
            if pair is not None:
                pair[0].close()
            raise ModelProcessError(f"cannot start the model process ({exc})") from exc
        finally:
            if pair is not None:
                pair[1].close()  # the child's end lives in the child only
        self._close_fds()
        self._fds = pair[0] if pair is not None else None
        self._proc = p
        self.starts += 1
        self._stderr_tail.clear()
        threading.Thread(target=self._pump_stderr, args=(p,), name="model-process-stderr", daemon=True).start()
        if self._finalizer is None:
            self._finalizer = weakref.finalize(self, ProcessScorer._stop, self)
        return p

    def _pump_stderr(self, p: subprocess.Popen[bytes]) -> None:
        """Forward the child's stderr to ours, keeping its last lines for a crash message."""
        assert p.stderr is not None
        for raw in iter(p.stderr.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                self._stderr_tail.append(line)
                try:
                    print(f"[model process] {line}", file=sys.stderr)
                except (OSError, ValueError):
                    pass

    def _close_fds(self) -> None:
        fds, self._fds = self._fds, None
        if fds is not None:
            fds.close()

    def close(self, timeout_s: float = 0.5) -> None:
        """Stop the child: its stdin closes (it exits), then a kill if it has not within ``timeout_s``."""
        p, self._proc = self._proc, None
        if p is None:
            self._close_fds()
            return
        try:
            if p.stdin is not None:
                p.stdin.close()
            p.wait(timeout_s)
        except (OSError, subprocess.TimeoutExpired):
            p.kill()
            try:
                p.wait(1.0)
            except subprocess.TimeoutExpired:
                pass
        self._close_fds()

    @staticmethod
    def _stop(self_: ProcessScorer) -> None:
        self_.close(0.2)

    # -- requests
    def _died(self, p: subprocess.Popen[bytes]) -> ModelProcessError:
        try:
            rc = p.wait(2.0)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = p.wait()
        if self._proc is p:
            self._proc = None
            self._close_fds()
        why = f"signal {-rc}" if rc is not None and rc < 0 else f"exit code {rc}"
        tail = next((x for x in reversed(self._stderr_tail) if x.strip()), "")
        return ModelProcessError(f"the model process stopped ({why}{': ' + tail if tail else ''}); "
                                 "it restarts on the next request")

    def _call(self, op: str, progress: ProgressCallback | None = None, cancel: Any = None, **kw: Any) -> Any:
        with self._lock:
            p = self._ensure()
            assert p.stdin is not None and p.stdout is not None
            self._ids += 1
            rid = self._ids
            try:
                send(p.stdin, {"op": op, "id": rid, "choice": dict(self.model_choice), **kw}, self._fds)
            except (BrokenPipeError, OSError):
                raise self._died(p) from None
            sent_cancel = False
            while True:
                if cancel is not None and not sent_cancel:
                    while not select.select([p.stdout], [], [], POLL_S)[0]:
                        if getattr(cancel, "cancelled", False):
                            try:
                                send(p.stdin, {"op": "cancel", "id": rid})
                            except OSError:
                                pass
                            sent_cancel = True
                            break
                try:
                    msg = receive(p.stdout, self._fds)
                except (EOFError, OSError, pickle.UnpicklingError):
                    raise self._died(p) from None
                if msg.get("id") != rid:
                    continue  # a late reply to a request abandoned earlier
                kind = msg["kind"]
                if kind == "progress":
                    if progress is not None:
                        progress(int(msg["done"]), int(msg["total"]), str(msg["msg"]))
                    continue
                if kind == "result":
                    return msg["value"]
                err = str(msg.get("msg", ""))
                etype = msg.get("type")
                if etype == "Cancelled":
                    raise Cancelled(err or "cancelled by the user")
                if etype == "ModelNotFoundError":
                    raise ModelNotFoundError(err)
                raise BreastReaderError(err)

    def score_case(self, case: CaseInput, methods: Sequence[str] = (), *, progress: ProgressCallback | None = None,
                   cancel: Any = None) -> CaseScores:
        """Score ``case`` in the model process (see :meth:`engine.inference.case.CaseScorer.score_case`)."""
        res: CaseScores = self._call("score", progress, cancel, case=case, methods=tuple(methods))
        return res

    def warm_up(self, modalities: Sequence[str] = (), *, progress: ProgressCallback | None = None,
                cancel: Any = None) -> list[str]:
        """Start the child, import the model stack there and load ``modalities``' models.

        Returns:
            One line per modality whose model could not be loaded.
        """
        out: list[str] = self._call("warm", progress, cancel, modalities=tuple(modalities))
        return out

    def model_info(self, modality: str) -> ModelInfo:
        """The :class:`ModelInfo` of the modality's model (ModelNotFoundError when none)."""
        info: ModelInfo = self._call("info", modality=modality)
        return info


def frame_size(msg: Any) -> int:
    """Bytes :func:`send` writes for ``msg`` (for benchmarks)."""
    b = io.BytesIO()
    send(b, msg)
    return len(b.getvalue())

