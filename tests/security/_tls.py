"""A private CA (trustme) and minimal OTLP receivers behind TLS, on 127.0.0.1."""

from __future__ import annotations

import gzip
import http.server
import ssl
import threading
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import trustme
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)


@dataclass
class Pki:
    ca_file: Path  # the CA certificate (the bundle a client needs)
    cert_file: Path  # the server's chain
    key_file: Path
    other_ca_file: Path  # a CA that did not sign the server's certificate

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self.cert_file), str(self.key_file))
        return context


def make_pki(directory: Path) -> Pki:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    pki = Pki(
        ca_file=directory / "ca.pem",
        cert_file=directory / "server.pem",
        key_file=directory / "server.key",
        other_ca_file=directory / "other-ca.pem",
    )
    ca.cert_pem.write_to_path(str(pki.ca_file))
    cert.private_key_pem.write_to_path(str(pki.key_file))
    with open(pki.cert_file, "wb") as handle:
        for blob in cert.cert_chain_pems:
            handle.write(blob.bytes())
    trustme.CA().cert_pem.write_to_path(str(pki.other_ca_file))
    return pki


def _count(body: bytes) -> int:
    request = ExportLogsServiceRequest.FromString(body)
    return sum(len(scope.log_records) for rl in request.resource_logs for scope in rl.scope_logs)


class TlsOtlpReceiver:
    """OTLP logs over gRPC (TLS) and HTTP/protobuf (HTTPS); counts the records it gets."""

    def __init__(self, pki: Pki) -> None:
        self.pki = pki
        self.records = 0
        self._lock = threading.Lock()
        self._grpc: Any = None
        self._http: http.server.ThreadingHTTPServer | None = None
        self.grpc_port = 0
        self.http_port = 0

    def _add(self, n: int) -> None:
        with self._lock:
            self.records += n

    def start(self) -> TlsOtlpReceiver:
        def export(request: bytes, context: Any) -> bytes:
            self._add(_count(request))
            return bytes(ExportLogsServiceResponse().SerializeToString())

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    "opentelemetry.proto.collector.logs.v1.LogsService",
                    {"Export": grpc.unary_unary_rpc_method_handler(export)},
                ),
            )
        )
        credentials = grpc.ssl_server_credentials(
            [(self.pki.key_file.read_bytes(), self.pki.cert_file.read_bytes())]
        )
        self.grpc_port = server.add_secure_port("127.0.0.1:0", credentials)
        server.start()
        self._grpc = server

        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                receiver._add(_count(body))
                payload = ExportLogsServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.socket = self.pki.server_context().wrap_socket(httpd.socket, server_side=True)
        self.http_port = httpd.server_address[1]
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        self._http = httpd
        return self

    def stop(self) -> None:
        if self._grpc is not None:
            self._grpc.stop(0)
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()

    def __enter__(self) -> TlsOtlpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def grpc_endpoint(self) -> str:
        return f"https://127.0.0.1:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        return f"https://127.0.0.1:{self.http_port}"
