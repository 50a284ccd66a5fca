"""The naive baseline: what a user would write instead of the bridge.

Plain paging over Daily's REST API with `requests` (list meetings, then `GET /logs` per session
with `offset += len(page)` until a short page), and every record emitted through
opentelemetry-sdk: `LoggerProvider` + `BatchLogRecordProcessor` (default settings) +
`OTLPLogExporter` (gRPC, gzip), with the same body, timestamps, severity and attributes as the
bridge's mapping (including a content-hash `log.record.uid`). Requests are paced at
`--rps` so that it honours the same API budget as the bridge.

No cursor, no de-duplication, no acknowledgement tracking: it is a throughput baseline only.
Run as a subprocess by `bench/run.py naive`; prints one JSON line with its counts on stdout.

    python bench/naive_sdk.py --api-url http://127.0.0.1:P/v1 --api-key KEY \
        --endpoint http://127.0.0.1:4317 [--rps 20] [--page-size 1000] [--since UNIX_S]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from datetime import datetime

import requests
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.exporter import Compression
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource

SEVERITY = {
    0: (SeverityNumber.ERROR, "ERROR"),
    1: (SeverityNumber.INFO, "INFO"),
    2: (SeverityNumber.DEBUG, "DEBUG"),
}


def parse_time_ns(text: str) -> int:
    # Daily sends nine fractional digits; keep them (datetime alone stops at microseconds).
    head, _, frac = text.rstrip("Z").partition(".")
    seconds = int(datetime.fromisoformat(head + "+00:00").timestamp())
    return seconds * 1_000_000_000 + (int(frac.ljust(9, "0")[:9]) if frac else 0)


class Paced:
    def __init__(self, rps: float, session: requests.Session) -> None:
        self.interval = 1.0 / rps
        self.next = time.monotonic()
        self.session = session
        self.count = 0

    def get(self, url: str, params: dict[str, str]) -> dict:
        now = time.monotonic()
        if now < self.next:
            time.sleep(self.next - now)
        self.next = max(now, self.next) + self.interval
        self.count += 1
        resp = self.session.get(url, params=params, timeout=30)
        resp.raise_for_status()
        return resp.json()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--api-url", required=True)
    p.add_argument("--api-key", required=True)
    p.add_argument("--endpoint", required=True)
    p.add_argument("--domain", default="acme")
    p.add_argument("--rps", type=float, default=20.0)
    p.add_argument("--page-size", type=int, default=1000)
    p.add_argument("--since", type=int, default=0, help="timeframe_start for /meetings")
    args = p.parse_args(argv)

    provider = LoggerProvider(
        resource=Resource.create({"service.name": "daily", "daily.domain": args.domain})
    )
    exporter = OTLPLogExporter(endpoint=args.endpoint, insecure=True, compression=Compression.Gzip)
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    logger = provider.get_logger("daily_otel_bridge", "0.1.0")

    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {args.api_key}"
    api = Paced(args.rps, http)

    meetings: list[dict] = []
    after: str | None = None
    while True:
        params = {"limit": "100", "timeframe_start": str(args.since), "no_participants": "true"}
        if after:
            params["starting_after"] = after
        data = api.get(f"{args.api_url}/meetings", params)["data"]
        meetings.extend(data)
        if len(data) < 100:
            break
        after = data[-1]["id"]

    emitted = 0
    end_ms = int(time.time() * 1000)
    for meeting in meetings:
        offset = 0
        while True:
            page = api.get(
                f"{args.api_url}/logs",
                {
                    "mtgSessionId": meeting["id"],
                    "order": "ASC",
                    "startTime": "0",
                    "endTime": str(end_ms),
                    "offset": str(offset),
                    "limit": str(args.page_size),
                },
            )["logs"]
            for rec in page:
                canonical = json.dumps(rec, sort_keys=True, separators=(",", ":"))
                uid = hashlib.blake2b(canonical.encode(), digest_size=16).hexdigest()
                attrs = {
                    "daily.mtg_session_id": rec["mtgSessionId"],
                    "daily.user_session_id": rec["userSessionId"],
                    "daily.log.level": rec["level"],
                    "daily.client_time": rec["clientTime"],
                    "daily.room": meeting["room"],
                    "log.record.uid": uid,
                }
                if rec.get("peerId") is not None:
                    attrs["daily.peer_id"] = rec["peerId"]
                if rec.get("code") is not None:
                    attrs["daily.log.code"] = rec["code"]
                number, text = SEVERITY.get(rec["level"], (SeverityNumber.UNSPECIFIED, "LEVEL"))
                logger.emit(
                    timestamp=parse_time_ns(rec["time"]),
                    observed_timestamp=time.time_ns(),
                    severity_number=number,
                    severity_text=text,
                    body=rec["message"],
                    attributes=attrs,
                    event_name="daily.log",
                )
                emitted += 1
            offset += len(page)
            if len(page) < args.page_size:
                break
    provider.force_flush(60_000)
    provider.shutdown()
    print(json.dumps({"emitted": emitted, "requests": api.count, "meetings": len(meetings)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
