"""Untrusted-file work in budgeted child processes: one tenant's file cannot stall another's.

Recognition, page counting and rendering of an uploaded file run in a small pool of
child processes (``forkserver`` start method: a fork of the threaded web server would
copy its locks mid-use).  Each child holds its own pdfium, so no process-wide lock
is shared across tenants, and each job runs under

* a wall-clock budget enforced by the parent, per step (opening the file, then each
  page the readers report through :func:`portal.files.limits.tick`) and for the whole file:
  on overrun the child is killed and a fresh one takes its place;
* a memory budget (``RLIMIT_AS`` set in the child: its own baseline plus the budget)
  and a CPU-time ``RLIMIT_CPU`` as a second line;
* the one limits set of :mod:`portal.files.limits` (pages, pixel bytes, zip, XML, draw ops).

The pool size caps concurrent heavy work, and one tenant may hold only
``per_tenant`` workers at once, so the others always find one free.  Over-budget
files raise :class:`Refused` with a Chinese message; nothing has been stored then.

No Flask imports: callers pass the config mapping.
"""
from __future__ import annotations

import collections
import logging
import multiprocessing
import os
import resource
import threading
import time
from dataclasses import dataclass
from typing import Any, Mapping

from . import limits as limits_mod
from . import media
from .limits import SafeZip, UnsafeFile
from ..recognition import Invoice, recognise
from ..recognition import ocr as ocr_engine  # the engine itself loads only on an OCR read

log = logging.getLogger(__name__)

MSG_TIME = "文件过于复杂，无法在限定时间内（每页 {step:g} 秒，整个文件 {total:g} 秒）处理，已拒绝"
MSG_MEMORY = "文件过于复杂，处理所需内存超出上限，已拒绝"
MSG_CRASH = "文件无法处理（解析进程异常退出），已拒绝"
MSG_BUSY = "文件处理繁忙，请稍后重试"

# A child is replaced after this many jobs, so slow leaks in the C libraries stay bounded.
JOBS_PER_CHILD = 500


class Refused(Exception):
    """A file is refused (or cannot be handled now); ``message`` is Chinese, ``status`` HTTP."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass
class Inspected:
    """What a child learnt about an uploaded file: its type, page count and invoices."""

    media_type: str | None  # None: not an accepted kind
    pages: int
    readings: list[Invoice]


# --------------------------------------------------------------------------- child side


def _inspect(data: bytes, ocr: bool, ocr_threads: int = 0) -> Inspected:
    """Sniff, count pages and recognise, opening an OFD's zip once for all three.

    ``ocr`` (the OCR job's pool only) adds OCR with ``ocr_threads`` onnxruntime threads (0: the engine's default).
    """
    if ocr and ocr_threads:
        ocr_engine.use_threads(ocr_threads)
    media_type = media.sniff_file(data)
    if media_type is None:
        return Inspected(None, 0, [])
    source: Any = data
    if media_type == media.OFD:
        try:
            source = SafeZip(data)
        except UnsafeFile as exc:
            raise media.MediaError(str(exc)) from exc
        except ValueError as exc:
            raise media.MediaError(media.MSG_CORRUPT) from exc
    pages = media.page_count(source, media_type)
    return Inspected(media_type, pages, recognise(source, media_type, ocr=ocr))


def _render(data: bytes, media_type: str, page: int, max_side: int, thumb: bool) -> bytes:
    if thumb:
        return media.thumbnail(data, media_type, max_side=max_side)
    return media.render_preview(data, media_type, page, max_side=max_side)


_TASKS = {"inspect": _inspect, "render": _render}


def _vm_size() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _child_main(conn, memory_bytes: int) -> None:
    """Serve jobs from the parent until the pipe closes; each under the limits it brings."""
    try:
        os.nice(5)  # the web server's own threads come first on a shared CPU
    except OSError:
        pass
    if memory_bytes:
        ceiling = _vm_size() + memory_bytes
        resource.setrlimit(resource.RLIMIT_AS, (ceiling, ceiling))
    while True:
        try:
            task, args, limits = conn.recv()
        except (EOFError, OSError):
            return
        used = resource.getrusage(resource.RUSAGE_SELF)
        cpu = int(used.ru_utime + used.ru_stime + limits.work_total_seconds) + 2
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, resource.RLIM_INFINITY))
        try:
            with limits_mod.using(limits, on_tick=lambda: conn.send(("tick", None))):
                reply = ("ok", _TASKS[task](*args))
        except (media.MediaError, UnsafeFile) as exc:
            reply = ("refused", str(exc))
        except MemoryError:
            reply = ("memory", None)
        except Exception as exc:  # untrusted bytes: any other failure is "unreadable"
            log.debug("file work %s failed", task, exc_info=True)
            reply = ("error", repr(exc)[:200])
        try:
            conn.send(reply)
        except MemoryError:
            conn.send(("memory", None))
        if reply[0] == "memory":
            return  # a child that ran out of memory is not trusted with the next job


# --------------------------------------------------------------------------- parent side


def _time_message(limits: limits_mod.Limits) -> str:
    return MSG_TIME.format(step=limits.work_seconds, total=limits.work_total_seconds)


class _Child:
    def __init__(self, ctx, memory_bytes: int):
        self.conn, child_conn = ctx.Pipe()
        self.proc = ctx.Process(target=_child_main, args=(child_conn, memory_bytes), daemon=True,
                                name="portal-filework")
        self.proc.start()
        child_conn.close()
        self.jobs = 0

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.join(2)
        finally:
            self.conn.close()


class Pool:
    """A fixed number of worker slots, each with at most one child process."""

    def __init__(self, workers: int, per_tenant: int, memory_bytes: int):
        self.workers = max(1, workers)
        self.per_tenant = max(1, min(per_tenant, self.workers))
        self.memory_bytes = memory_bytes
        self._ctx = multiprocessing.get_context("forkserver")
        # The fork server imports the parsers once; each child is a cheap fork of it.
        self._ctx.set_forkserver_preload(["portal.files.filework"])
        self._cond = threading.Condition()
        self._free: list[_Child | None] = [None] * self.workers
        self._held: collections.Counter = collections.Counter()
        self.closed = False

    # -- slots --------------------------------------------------------------

    def _acquire(self, tenant: Any, wait: float) -> _Child | None:
        deadline = time.monotonic() + wait
        with self._cond:
            while True:
                if self.closed:
                    raise Refused(MSG_BUSY, 503)
                if self._free and (tenant is None or self._held[tenant] < self.per_tenant):
                    self._held[tenant] += 1
                    return self._free.pop()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise Refused(MSG_BUSY, 503)
                self._cond.wait(remaining)

    def _release(self, tenant: Any, child: _Child | None) -> None:
        with self._cond:
            self._held[tenant] -= 1
            if self._held[tenant] <= 0:
                del self._held[tenant]
            if self.closed and child is not None:
                child.kill()
                child = None
            self._free.append(child)
            self._cond.notify_all()

    # -- jobs ---------------------------------------------------------------

    def run(self, task: str, args: tuple, *, limits: limits_mod.Limits, tenant: Any = None, wait: float = 10.0) -> Any:
        """Run ``task`` in a child under ``limits``; raises Refused when over budget or busy."""
        child = self._acquire(tenant, wait)
        try:
            child, reply = self._call(child, task, args, limits)
        finally:
            self._release(tenant, child)
        status, payload = reply
        if status == "ok":
            return payload
        if status == "refused":
            raise Refused(payload)
        if status == "memory":
            raise Refused(MSG_MEMORY)
        if status == "crash":
            raise Refused(MSG_CRASH)
        raise Refused(media.MSG_CORRUPT)

    def _call(self, child: _Child | None, task: str, args: tuple, limits: limits_mod.Limits):
        """Send one job and wait for its answer; returns the (possibly replaced) child and the reply."""
        for attempt in (1, 2):
            if child is None or not child.proc.is_alive() or child.jobs >= JOBS_PER_CHILD:
                if child is not None:
                    child.kill()
                child = _Child(self._ctx, self.memory_bytes)
            try:
                child.conn.send((task, args, limits))
                break
            except (BrokenPipeError, ConnectionResetError, EOFError, OSError):
                child.kill()  # died between jobs: one fresh child, then give up
                child = None
                if attempt == 2:
                    return None, ("crash", None)
        child.jobs += 1
        started = time.monotonic()
        step_ends = started + limits.work_seconds
        while True:
            # Each finished page (a "tick") gives the next one a fresh step budget,
            # never beyond the whole file's budget.
            wait = min(step_ends, started + limits.work_total_seconds) - time.monotonic()
            if wait <= 0 or not child.conn.poll(wait):
                log.warning("file work %s over budget: child %s killed", task, child.proc.pid)
                child.kill()
                return None, ("refused", _time_message(limits))
            try:
                reply = child.conn.recv()
            except (EOFError, OSError):
                reply = None
                break
            if reply[0] != "tick":
                break
            step_ends = time.monotonic() + limits.work_seconds
        if reply is None:
            child.proc.join(1)
            code = child.proc.exitcode
            child.kill()
            log.warning("file work %s: child exited with %s", task, code)
            # Killed by RLIMIT_CPU (SIGXCPU) or a failed allocation in C code.
            if code in (-24, -9):
                return None, ("refused", _time_message(limits))
            return None, (("memory", None) if code in (-6, -11) else ("crash", None))
        if reply[0] == "memory":
            child.kill()
            child = None
        return child, reply

    def close(self) -> None:
        """Stop every idle child; busy ones stop when their job returns."""
        with self._cond:
            self.closed = True
            for child in self._free:
                if child is not None:
                    child.kill()
            self._free = [None] * len(self._free)
            self._cond.notify_all()


_pool: Pool | None = None
_pool_key: tuple | None = None
_pool_lock = threading.Lock()


def pool(config: Mapping[str, Any]) -> Pool:
    """The process-wide pool for ``config``'s worker settings (rebuilt when they change)."""
    global _pool, _pool_key
    key = (int(config.get("FILE_WORKERS") or 2), int(config.get("FILE_WORKERS_PER_TENANT") or 1),
           int(config.get("FILE_WORK_MEMORY") or 0))
    with _pool_lock:
        if _pool is None or _pool_key != key:
            if _pool is not None:
                _pool.close()
            _pool, _pool_key = Pool(*key), key
        return _pool


def _queue_wait(config: Mapping[str, Any]) -> float:
    return float(config.get("FILE_WORK_QUEUE_SECONDS") or 10.0)


def inspect(data: bytes, *, config: Mapping[str, Any], tenant: Any = None) -> Inspected:
    """Type, pages and invoices of an uploaded file, worked out in a budgeted child.

    Raises Refused for corrupt, unsafe or over-budget files (422) and when no worker
    came free in time (503).  ``Inspected.media_type`` is None for unaccepted kinds.
    """
    lim = limits_mod.from_config(config)
    # No OCR here: the upload pool's memory budget is far below the engine's; OCR is the background job's.
    return pool(config).run("inspect", (data, False), limits=lim, tenant=tenant,
                            wait=_queue_wait(config))


def render(data: bytes, media_type: str, page: int, *, max_side: int, thumb: bool = False,
           config: Mapping[str, Any], tenant: Any = None) -> bytes:
    """Encoded render of one page (or the thumbnail), made in a budgeted child; raises Refused."""
    lim = limits_mod.from_config(config)
    return pool(config).run("render", (data, media_type, page, max_side, thumb), limits=lim, tenant=tenant,
                            wait=_queue_wait(config))
