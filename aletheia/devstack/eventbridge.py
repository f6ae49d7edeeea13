"""Local stand-in for Eventarc: Pub/Sub bucket notifications -> CloudEvents -> function.

In Google Cloud, Eventarc turns each Cloud Storage OBJECT_FINALIZE
notification into a ``google.cloud.storage.object.v1.finalized`` CloudEvent
and retries delivery until the function answers 2xx. This process does the
same against the local emulators: it pulls notifications from the Pub/Sub
emulator, posts each one to functions-framework as a binary-mode CloudEvent,
and acknowledges only on 2xx, so a failed delivery is redelivered (with
backoff) — at least once, never silently dropped.

Run by ``aletheia local up`` as ``python -m aletheia.devstack.eventbridge ...``.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

log = logging.getLogger("aletheia.devstack.eventbridge")

FINALIZED = "google.cloud.storage.object.v1.finalized"
_PULL_BATCH = 10
_PULL_TIMEOUT_S = 90.0
_POST_TIMEOUT_S = 540.0  # a 2nd-gen function's default timeout is 60 s; allow long analyses
_MAX_BACKOFF_S = 60


@dataclass
class Counters:
    """Delivery counters, served on ``/healthz`` for ``aletheia local status``.

    ``in_flight`` counts the pulled events not yet acknowledged or handed back: while it
    is 0 the function is working on no event of this bridge (tests wait for it before
    they wipe the stack, so one test's profiling never writes into the next one's).
    """

    delivered: int = 0
    failed: int = 0
    ignored: int = 0
    in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def bump(self, name: str, by: int = 1) -> None:
        """Add ``by`` to a counter."""
        with self.lock:
            setattr(self, name, getattr(self, name) + by)

    def as_dict(self) -> dict[str, int]:
        """A JSON-friendly copy."""
        with self.lock:
            return {
                "delivered": self.delivered,
                "failed": self.failed,
                "ignored": self.ignored,
                "in_flight": self.in_flight,
            }


def to_cloudevent(message: dict[str, Any]) -> tuple[dict[str, str], bytes] | None:
    """Headers and body of the binary-mode CloudEvent Eventarc sends for a notification.

    Returns ``None`` for notifications that are not OBJECT_FINALIZE.
    """
    attrs = message.get("attributes", {})
    if attrs.get("eventType") != "OBJECT_FINALIZE":
        return None
    data = base64.b64decode(message.get("data", ""))
    obj = json.loads(data)
    headers = {
        "ce-specversion": "1.0",
        "ce-id": str(message.get("messageId")),
        "ce-type": FINALIZED,
        "ce-source": f"//storage.googleapis.com/projects/_/buckets/{attrs['bucketId']}",
        "ce-subject": f"objects/{attrs['objectId']}",
        "ce-time": obj.get("updated") or message.get("publishTime", ""),
        "content-type": "application/json",
    }
    return headers, data


class Bridge:
    """Pull, deliver, ack (or back off); one loop, no hidden state but counters."""

    def __init__(self, pubsub: str, project: str, subscription: str, target: str) -> None:
        self.sub_url = f"http://{pubsub}/v1/projects/{project}/subscriptions/{subscription}"
        self.target = target
        self.counters = Counters()
        self.session = requests.Session()

    def run_forever(self) -> None:
        """Deliver until killed. Errors talking to Pub/Sub are logged and retried."""
        while True:
            try:
                self.pump_once()
            except requests.RequestException as exc:
                log.warning("pubsub pull failed: %s", exc)
                threading.Event().wait(1.0)

    def pump_once(self) -> int:
        """Pull one batch (blocking until messages arrive) and deliver it."""
        resp = self.session.post(
            f"{self.sub_url}:pull", json={"maxMessages": _PULL_BATCH}, timeout=_PULL_TIMEOUT_S
        )
        resp.raise_for_status()
        received = resp.json().get("receivedMessages", [])
        left = len(received)
        self.counters.bump("in_flight", left)
        try:
            for item in received:
                self._deliver(item)
                left -= 1
                self.counters.bump("in_flight", -1)
        finally:  # a failed ack abandons the rest of the batch: Pub/Sub redelivers it
            self.counters.bump("in_flight", -left)
        return len(received)

    def _deliver(self, item: dict[str, Any]) -> None:
        ack_id = item["ackId"]
        event = to_cloudevent(item["message"])
        if event is None:
            self.counters.bump("ignored")
            self._ack(ack_id)
            return
        headers, body = event
        try:
            resp = self.session.post(
                self.target, headers=headers, data=body, timeout=_POST_TIMEOUT_S
            )
            ok = 200 <= resp.status_code < 300
            detail = f"HTTP {resp.status_code}"
        except requests.RequestException as exc:
            ok, detail = False, str(exc)
        if ok:
            self.counters.bump("delivered")
            self._ack(ack_id)
            return
        self.counters.bump("failed")
        attempt = int(item.get("deliveryAttempt") or 1)
        backoff = min(2**attempt, _MAX_BACKOFF_S)
        subject = headers["ce-subject"]
        log.warning("delivery of %s failed (%s); retry in %ss", subject, detail, backoff)
        self._retry_after(ack_id, backoff)

    def _ack(self, ack_id: str) -> None:
        self.session.post(f"{self.sub_url}:acknowledge", json={"ackIds": [ack_id]}, timeout=10)

    def _retry_after(self, ack_id: str, seconds: int) -> None:
        body: dict[str, Any] = {"ackIds": [ack_id], "ackDeadlineSeconds": seconds}
        self.session.post(f"{self.sub_url}:modifyAckDeadline", json=body, timeout=10)


def _serve_health(bridge: Bridge, host: str, port: int) -> ThreadingHTTPServer:
    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # http.server calls it by this name
            body = json.dumps({"status": "ok", **bridge.counters.as_dict()}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m aletheia.devstack.eventbridge``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pubsub", required=True, help="Pub/Sub emulator host:port")
    parser.add_argument("--project", required=True)
    parser.add_argument("--subscription", required=True)
    parser.add_argument("--target", required=True, help="URL of the function")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--health-port", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    bridge = Bridge(args.pubsub, args.project, args.subscription, args.target)
    _serve_health(bridge, args.host, args.health_port)
    log.info("delivering %s to %s", bridge.sub_url, args.target)
    bridge.run_forever()


if __name__ == "__main__":
    main()
