"""The model process behind :class:`engine.inference.process.ProcessScorer`.

    python -m engine.inference.serve [--nice N] [--loader module:function]

Reads request frames on stdin, runs them one at a time on a :class:`CaseScorer` (torch and the
models live here, never in the workstation's process) and writes progress and replies on the
original stdout; anything a library prints goes to stderr instead. A reader thread takes
``cancel`` requests while a job runs, and ends the process when stdin closes (the workstation
ended, however it ended).
"""

from __future__ import annotations

import argparse
import importlib
import os
import queue
import signal
import socket
import sys
import threading
import traceback
from typing import IO, Any

from engine.errors import BreastReaderError, Cancelled, ModelNotFoundError
from engine.inference.case import CaseScorer, Loader, default_loader, model_info
from engine.inference.process import receive, send
from engine.progress import CancelToken, check, report


def _loader(spec: str | None) -> Loader:
    if not spec:
        return default_loader
    mod, _, name = spec.partition(":")
    fn: Loader = getattr(importlib.import_module(mod), name)
    return fn


class Server:
    """Runs requests on one :class:`CaseScorer`; replies through ``out``."""

    def __init__(self, out: IO[bytes], loader: Loader, fds: socket.socket | None = None) -> None:
        self.out = out
        self.fds = fds  # the side socket big buffers travel on (engine.inference.process.send)
        self.scorer = CaseScorer(loader)
        self._write = threading.Lock()
        self._jobs: queue.Queue[dict[str, Any]] = queue.Queue()
        self._tokens: dict[int, CancelToken] = {}
        self._tokens_lock = threading.Lock()

    def reply(self, msg: dict[str, Any]) -> None:
        with self._write:
            send(self.out, msg, self.fds)

    def token(self, rid: int) -> CancelToken:
        with self._tokens_lock:
            return self._tokens.setdefault(rid, CancelToken())

    def read_loop(self, inp: IO[bytes]) -> None:
        """Reader thread: jobs to the queue, cancels to their token; stdin closed -> exit now."""
        while True:
            try:
                msg = receive(inp, self.fds)
            except (EOFError, OSError):
                os._exit(0)  # the workstation is gone: a running forward pass must not keep us alive
            except Exception:  # noqa: BLE001 - a frame we cannot read: the client sees us stop
                traceback.print_exc()
                os._exit(3)
            if msg.get("op") == "cancel":
                self.token(int(msg["id"])).cancel()
            else:
                self._jobs.put(msg)

    def serve(self) -> None:
        """Main thread: run the jobs in order."""
        while True:
            msg = self._jobs.get()
            rid = int(msg["id"])
            tok = self.token(rid)

            def progress(done: int, total: int, text: str = "", rid: int = rid) -> None:
                self.reply({"id": rid, "kind": "progress", "done": done, "total": total, "msg": text})

            try:
                value = self.run(msg, progress, tok)
                self.reply({"id": rid, "kind": "result", "value": value})
            except Cancelled as exc:
                self.reply({"id": rid, "kind": "error", "type": "Cancelled", "msg": str(exc)})
            except ModelNotFoundError as exc:
                self.reply({"id": rid, "kind": "error", "type": "ModelNotFoundError", "msg": str(exc)})
            except BreastReaderError as exc:
                self.reply({"id": rid, "kind": "error", "type": "BreastReaderError", "msg": str(exc)})
            except Exception as exc:  # noqa: BLE001 - one line for the reader, the traceback on stderr
                traceback.print_exc()
                self.reply({"id": rid, "kind": "error", "type": type(exc).__name__,
                            "msg": f"model process error ({type(exc).__name__}: {exc})"})
            finally:
                with self._tokens_lock:
                    self._tokens.pop(rid, None)

    def run(self, msg: dict[str, Any], progress: Any, cancel: CancelToken) -> Any:
        """One request: ``score`` -> CaseScores, ``warm`` -> problems, ``info`` -> ModelInfo."""
        self.scorer.model_choice = dict(msg.get("choice") or {})
        op = msg["op"]
        if op == "score":
            res = self.scorer.score_case(msg["case"], msg["methods"], progress=progress, cancel=cancel)
            return res
        if op == "info":
            return model_info(msg["modality"], self.scorer.model(msg["modality"]))
        if op == "warm":
            return self.warm(tuple(msg["modalities"]), progress, cancel)
        raise BreastReaderError(f"model process: unknown request {op!r}")

    def warm(self, modalities: tuple[str, ...], progress: Any, cancel: CancelToken) -> list[str]:
        """Import torch, the models and the saliency; load the models of ``modalities``."""
        from engine import threads
        from engine.inference import load_stack

        report(progress, 0, len(modalities) + 1, "loading model…")
        load_stack()
        threads.limit_intra_op(reserve=1)  # a core stays with the workstation (bench threads)
        problems: list[str] = []
        for i, m in enumerate(modalities):
            check(cancel)
            report(progress, i + 1, len(modalities) + 1, f"loading {m} model…")
            try:
                self.scorer.model(m)
            except (ModelNotFoundError, BreastReaderError) as exc:
                problems.append(f"{m}: {exc}")
        report(progress, len(modalities) + 1, len(modalities) + 1, "models ready")
        import gc

        gc.freeze()  # the models live as long as the process: no full collection scans them again
        return problems


def main(argv: list[str] | None = None) -> int:
    """Entry point of the model process."""
    p = argparse.ArgumentParser(prog="python -m engine.inference.serve", description=__doc__.split("\n\n")[0])
    p.add_argument("--nice", type=int, default=0)
    p.add_argument("--loader", default=None, help="module:function loading (modality, model) -> model")
    p.add_argument("--fd-socket", type=int, default=None, help="inherited Unix socket for memory-file buffers")
    a = p.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the workstation's to handle
    if a.nice and hasattr(os, "nice"):
        try:
            os.nice(a.nice)
        except OSError:
            pass
    from engine import threads

    threads.apply()
    threads.keep_freed_memory()
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # a library's print() must not corrupt the protocol
    inp = os.fdopen(os.dup(0), "rb", buffering=0)
    fds = socket.socket(fileno=a.fd_socket) if a.fd_socket is not None else None
    server = Server(out, _loader(a.loader), fds)
    threading.Thread(target=server.read_loop, args=(inp,), name="requests", daemon=True).start()
    server.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
