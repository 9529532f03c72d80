#!/usr/bin/env python3
"""A real SMTP server (aiosmtpd) for the integration tests.

Every message it accepts is parsed with Python's email package and written as one JSON file
(envelope recipients, subject, Message-ID, text and HTML parts, content types) into --dir, so the
tests read what a mail client would show, quoted-printable and base64 already decoded.

    python3 smtp_sink.py --dir DIR [--port 0]

Prints the bound port on stdout once it accepts connections, and exits when its stdin closes
(the test process that started it has gone).
"""

import argparse
import asyncio
import email
import email.policy
import json
import os
import sys
import threading
import uuid

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, directory):
        self.directory = directory

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        parts = []
        for part in msg.walk():
            if part.is_multipart():
                continue
            parts.append({"content_type": part.get_content_type(), "body": part.get_content()})
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": [r.lower() for r in envelope.rcpt_tos],
            "subject": str(msg.get("Subject", "")),
            "message_id": str(msg.get("Message-ID", "")),
            "from": str(msg.get("From", "")),
            "to": str(msg.get("To", "")),
            "content_type": msg.get_content_type(),
            "text": next((p["body"] for p in parts if p["content_type"] == "text/plain"), None),
            "html": next((p["body"] for p in parts if p["content_type"] == "text/html"), None),
            "parts": [p["content_type"] for p in parts],
        }
        name = f"{uuid.uuid4().hex}.json"
        tmp = os.path.join(self.directory, "." + name)
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(self.directory, name))
        return "250 Message accepted for delivery"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    port = args.port
    if port == 0:
        import socket

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
    controller = Controller(Sink(args.dir), hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    print(port, flush=True)
    # Block until the parent closes our stdin (or dies).
    threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
    try:
        asyncio.run(asyncio.Event().wait())
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
