"""Which process owns a running run, and whether that process is still there.

A run killed with SIGKILL (or by a power cut) never writes its end, so its
row says 'running' forever unless the next reader notices its process is gone.
A pid alone is not enough: pids are reused, so the process's create time is
stored with it and must match too.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

import psutil

# psutil derives create times from clock ticks: allow for rounding, not for reuse.
_CREATE_TIME_TOLERANCE_S = 0.05


@dataclass(frozen=True)
class Owner:
    pid: int
    hostname: str
    created: float  # process create time, seconds since the epoch


def current_owner() -> Owner:
    pid = os.getpid()
    return Owner(pid, socket.gethostname(), psutil.Process(pid).create_time())


def owner_gone(pid: int | None, hostname: str | None, created: float | None) -> bool:
    """True when the owner has surely ended: on this host, its pid is dead, a zombie or reused.

    A run owned by another host is left alone: its process cannot be seen from here.
    """
    if pid is None:
        return True  # nobody recorded as owner: nobody will ever finish it
    if hostname != socket.gethostname():
        return False
    try:
        proc = psutil.Process(pid)
        if created is not None and abs(proc.create_time() - created) > _CREATE_TIME_TOLERANCE_S:
            return True
        return proc.status() == psutil.STATUS_ZOMBIE  # killed, not yet reaped by its parent
    except psutil.NoSuchProcess:
        return True
    except psutil.AccessDenied:  # another user's process holds the pid: it is alive
        return False
