"""Safe webhook targets (SSRF): what a channel URL may point at, checked when the channel is created and again on
every request, against every address the host name resolves to, and the connection goes to the address that was
checked (no second DNS lookup that could answer differently).

- https only; http only to hosts in CLOUDTALLY_ALERTS_ALLOW_HOSTS (names, IPs or CIDR networks);
- every resolved address must be public (`ipaddress.is_global`): private (10/8, 172.16/12, 192.168/16), loopback,
  link-local, carrier-grade NAT (100.64/10), unique-local IPv6, multicast, reserved and unspecified addresses are
  refused unless the address or the host is allow-listed;
- cloud metadata endpoints (169.254.169.254, fd00:ec2::254, and IPv4-mapped forms) and link-local ranges are
  refused even when allow-listed;
- no user:password in the URL; redirects are never followed (a 3xx answer is a failed attempt, not a new target).
"""
from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"),
            ipaddress.ip_address("100.100.100.200")}  # AWS/GCP/Azure, AWS IPv6, Alibaba


class UnsafeTarget(ValueError):
    """The URL may not be used as a webhook target; the message says why."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # path + query
    addresses: tuple[str, ...]


def _allow_list(allow_hosts: str) -> tuple[set[str], list]:
    names, nets = set(), []
    for item in filter(None, (x.strip() for x in (allow_hosts or "").split(","))):
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            names.add(item.lower().rstrip("."))
    return names, nets


def _plain(ip):
    return ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped else ip


def resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnsafeTarget(f"host {host!r} does not resolve: {exc.strerror}") from exc
    return list(dict.fromkeys(info[4][0] for info in infos))


def check_url(url: str, allow_hosts: str = "", resolver=resolve) -> Target:
    """The checked target, or UnsafeTarget naming the reason."""
    if not isinstance(url, str) or len(url) > 2000:
        raise UnsafeTarget("the URL must be a string of at most 2000 characters")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise UnsafeTarget(f"not a URL: {exc}") from exc
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower().rstrip(".")
    if scheme not in ("https", "http") or not host:
        raise UnsafeTarget("the URL must be https://host/... (http only to allow-listed hosts)")
    if parts.username or parts.password:
        raise UnsafeTarget("credentials in the URL (user:password@) are not allowed")
    names, nets = _allow_list(allow_hosts)
    port = port or (443 if scheme == "https" else 80)
    addresses = resolver(host, port)
    if not addresses:
        raise UnsafeTarget(f"host {host!r} has no address")
    host_listed = host in names
    all_listed = True
    for text in addresses:
        ip = _plain(ipaddress.ip_address(text.split("%")[0]))
        if ip in METADATA or ip.is_link_local:
            raise UnsafeTarget(f"{host} resolves to {ip}, a link-local / cloud metadata address: never allowed")
        listed = host_listed or any(ip in n for n in nets)
        all_listed &= listed
        if not ip.is_global and not listed:
            raise UnsafeTarget(f"{host} resolves to {ip}, which is not a public address (private, loopback or "
                               f"reserved); allow it with CLOUDTALLY_ALERTS_ALLOW_HOSTS")
    if scheme == "http" and not all_listed:
        raise UnsafeTarget(f"plain http is only allowed to hosts in CLOUDTALLY_ALERTS_ALLOW_HOSTS; use https for "
                           f"{host}")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(scheme, host, port, path, tuple(addresses))


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, target: Target, address: str, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = address

    def connect(self):
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, target: Target, address: str, timeout: float, context: ssl.SSLContext | None):
        super().__init__(target.host, target.port, timeout=timeout, context=context or ssl.create_default_context())
        self._address = address

    def connect(self):
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # SNI and certificate: the name


@dataclass
class Response:
    status: int
    headers: dict
    body: str


def post(target: Target, body: bytes, headers: dict, timeout: float,
         context: ssl.SSLContext | None = None) -> Response:
    """POST to the checked address (the first that connects); never follows redirects. Raises OSError
    (connection refused, timeout, TLS) for network failures."""
    last: OSError | None = None
    for address in target.addresses:
        conn = (_PinnedHTTPS(target, address, timeout, context) if target.scheme == "https"
                else _PinnedHTTP(target, address, timeout))
        try:
            conn.request("POST", target.path, body=body, headers=headers)
            resp = conn.getresponse()
            text = resp.read(4096).decode("utf-8", "replace")
            return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, text)
        except (OSError, http.client.HTTPException) as exc:
            last = exc if isinstance(exc, OSError) else ConnectionError(f"{type(exc).__name__}: {exc}")
            if isinstance(exc, (socket.timeout, TimeoutError)):
                break  # the server took the request: do not send it twice
        finally:
            conn.close()
    raise last or ConnectionError("no address")
