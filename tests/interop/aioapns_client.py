"""Interop client: aioapns (PyPI), pointed at the herald mock APNs server.

Usage: python aioapns_client.py <config.json>

aioapns has no address option: the host and port are class attributes of its protocol classes
(APNS_SERVER on the development client protocol, APNS_PORT on the TLS client protocol). It sends no
ALPN and no :authority (a `host` header), and parses every DATA frame of a response as JSON.
Prints one JSON object: for each auth mode, what aioapns itself reported for each token.
"""

import asyncio
import json
import ssl
import sys

from aioapns import APNs, NotificationRequest, PushType
from aioapns import connection

cfg = json.load(open(sys.argv[1]))

connection.APNsDevelopmentClientProtocol.APNS_SERVER = cfg["host"]
connection.APNsTLSClientProtocol.APNS_PORT = cfg["port"]


def context():
    return ssl.create_default_context(cafile=cfg["ca"])


async def run(mode):
    if mode == "token":
        client = APNs(
            key=open(cfg["p8"]).read(),
            key_id=cfg["key_id"],
            team_id=cfg["team_id"],
            topic=cfg["topic"],
            use_sandbox=True,
            ssl_context=context(),
            max_connection_attempts=1,
        )
    else:
        client = APNs(
            client_cert=cfg["cert_bundle"],
            topic=cfg["topic"],
            use_sandbox=True,
            ssl_context=context(),
            max_connection_attempts=1,
        )

    async def quiet(request, result):
        pass

    client.err_func = quiet
    results = []
    tokens = cfg["tokens"]
    for token in [tokens["ok"], tokens["ok"], tokens["unregistered"], tokens["unknown"]]:
        request = NotificationRequest(
            device_token=token,
            message={"aps": {"alert": f"hello from aioapns ({mode})"}, "interop": "aioapns"},
            push_type=PushType.ALERT,
        )
        result = await asyncio.wait_for(client.send_notification(request), 10)
        results.append(
            {
                "device": token,
                "sent": result.is_successful,
                "status": int(result.status) if str(result.status).isdigit() else result.status,
                "reason": result.description,
                "timestamp": result.timestamp,
                "apns_id": result.notification_id,
            }
        )
    return results


async def main():
    report = {"client": "aioapns", "token": await run("token"), "certificate": await run("certificate")}
    print(json.dumps(report))


asyncio.run(main())
