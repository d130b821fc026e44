#!/usr/bin/env python3
"""A real SMTP server for berth's notification tests (aiosmtpd): each mail it accepts is
written to OUTDIR as one .eml file (renamed into place whole), its body decoded.

usage: smtp_sink.py PORT OUTDIR [--user U --password P] [--cert C --key K (--starttls | --tls)]
Prints READY once it listens; stops on SIGTERM.
"""
import argparse
import email
import os
import signal
import ssl
import threading
import uuid

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Save:
    def __init__(self, outdir):
        self.outdir = outdir

    async def handle_DATA(self, server, session, envelope):
        name = os.path.join(self.outdir, uuid.uuid4().hex + ".eml")
        # Headers as sent, then the body decoded (quoted-printable or base64).
        mail = email.message_from_bytes(envelope.original_content or envelope.content)
        with open(name + ".tmp", "w") as f:
            f.write("X-Envelope-To: " + ", ".join(envelope.rcpt_tos) + "\n")
            for key, value in mail.items():
                f.write(key + ": " + value + "\n")
            f.write("\n" + mail.get_payload(decode=True).decode())
        os.replace(name + ".tmp", name)
        return "250 accepted"


def authenticator(user, password):
    def check(server, session, envelope, mechanism, data):
        ok = (isinstance(data, LoginPassword) and data.login == user.encode()
              and data.password == password.encode())
        # handled=False: a refused login gets its 535 answer.
        return AuthResult(success=ok, handled=False)
    return check


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("outdir")
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--starttls", action="store_true")
    mode.add_argument("--tls", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.outdir, exist_ok=True)
    kw = dict(hostname="127.0.0.1", port=a.port, server_hostname="localhost",
              auth_require_tls=a.starttls)
    if a.starttls or a.tls:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.cert, a.key)
        if a.starttls:
            kw.update(tls_context=ctx, require_starttls=True)
        else:
            kw.update(ssl_context=ctx)
    if a.user:
        kw.update(authenticator=authenticator(a.user, a.password), auth_required=True)
    controller = Controller(Save(a.outdir), **kw)
    controller.start()
    print("READY", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
