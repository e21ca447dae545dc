"""Server settings, checked before the model is loaded so a bad flag fails in a second, not a minute."""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass
from typing import Any

from ..core.errors import Ar3dError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
TOKEN_ENV = "AR3D_SERVER_TOKEN"
MAX_SAMPLES = 8


class ServerConfigError(Ar3dError):
    """The server cannot start with these settings (no token on a public address, port taken …)."""


def is_local(host: str) -> bool:
    """True for loopback addresses: only processes on this machine can connect to them."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to a public interface


@dataclass
class ServerConfig:
    """host/port: where to listen. token: the bearer token every request but /v1/health must
    carry (required off loopback). max_queue: jobs allowed to wait (the running one not counted).
    keep_jobs: finished jobs remembered, with their GLBs; the oldest are evicted.
    rank_rewards: a reward preset ("geometry", "demo", "paper") or a TOML file; None = no ranking.
    rank_views: let ranking use rewards that read renders (needs bpy); None = when bpy imports.
    """

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: str | None = None
    max_queue: int = 8
    keep_jobs: int = 64
    rank_rewards: str | None = None
    rank_views: bool | None = None

    def validate(self) -> "ServerConfig":
        if self.token is not None and not self.token.strip():
            raise ServerConfigError("the token is empty: pass a non-empty --token or unset AR3D_SERVER_TOKEN")
        if not is_local(self.host) and not self.token:
            raise ServerConfigError(
                f"refusing to listen on {self.host} without a token: anyone who can reach this machine could "
                f"use it. Pass --token SECRET (or set {TOKEN_ENV}), or bind --host 127.0.0.1 for local use only."
            )
        if not 0 <= self.port <= 65535:
            raise ServerConfigError(f"--port must be in 0..65535, got {self.port}")
        if self.max_queue < 1:
            raise ServerConfigError(f"--max-queue must be >= 1, got {self.max_queue}")
        if self.keep_jobs < 1:
            raise ServerConfigError(f"--keep-jobs must be >= 1, got {self.keep_jobs}")
        return self

    @classmethod
    def from_args(cls, args: Any) -> "ServerConfig":
        token = args.token if args.token is not None else os.environ.get(TOKEN_ENV) or None
        return cls(host=args.host, port=args.port, token=token, max_queue=args.max_queue, keep_jobs=args.keep_jobs,
                   rank_rewards=args.rank_rewards).validate()  # fmt: skip


def check_port_free(host: str, port: int) -> None:
    """Fail before the (slow) model load when the address is taken or unknown."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise ServerConfigError(f"cannot listen on '{host}': {e.strerror}; pass an IP address or host name of this machine") from e
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as e:
            raise ServerConfigError(
                f"cannot listen on {host}:{port}: {e.strerror}. Is another `ar3d serve` running? Pass --port N."
            ) from e
