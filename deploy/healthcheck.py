"""Container HEALTHCHECK: asks the service in this container for its gRPC health (the
console: GET /healthz over HTTP, or HTTPS with BRANCH_TLS_CERT_FILE).

`python /app/healthcheck.py [SERVICE]`; without SERVICE it reads the service from the
container's command (`branch serve SERVICE`, process 1). Exit 0 only when SERVING (the
console: 200).
"""

from __future__ import annotations

import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common import channels
from services.common.settings import Settings, load_settings


def service_name(argv: list[str]) -> str:
    if argv:
        return argv[0]
    words = [w.decode() for w in Path("/proc/1/cmdline").read_bytes().split(b"\0") if w]
    if "serve" in words and words.index("serve") + 1 < len(words):
        return words[words.index("serve") + 1]
    raise SystemExit("healthcheck: no `serve SERVICE` in the container's command")


def console_ready(settings: Settings) -> int:
    """GET /healthz of the console in this container: 200 when the directory answers."""
    import ssl
    import urllib.error
    import urllib.request

    scheme, context = "http", None
    if settings.tls_cert_file:  # the console serves HTTPS; its name is not 127.0.0.1
        scheme = "https"
        context = ssl.create_default_context(cafile=settings.tls_ca_file or None)
        context.check_hostname = False
    url = f"{scheme}://127.0.0.1:{settings.console_port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=3, context=context) as reply:
            print(reply.read().decode()[:80])
            return 0 if reply.status == 200 else 1
    except urllib.error.HTTPError as exc:
        print(f"unhealthy: {exc.code} {exc.read().decode()[:80]}")
    except OSError as exc:
        print(f"unhealthy: {exc}")
    return 1


def main(argv: list[str]) -> int:
    settings = load_settings()
    service = service_name(argv)
    if service == "console":
        return console_ready(settings)
    # plaintext or TLS as the service serves (BRANCH_TLS_*): with mutual TLS the container's
    # own certificate is shown; the server's is checked for the name its peers dial.
    with channels.sync_channel(
        settings, service, address=f"127.0.0.1:{settings.port(service)}",
        server_name=channels.server_name_for(settings, service), deadline=3,
    ) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=3
            )
        except grpc.RpcError as exc:
            print(f"unhealthy: {exc.code().name}")  # type: ignore[attr-defined]
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(status)
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
