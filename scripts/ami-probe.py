#!/usr/bin/env python3
"""ami-probe.py - one AMI action on one Asterisk, and the events it causes on others.

Used by the Asterisk tests (Tests/AsteriskTests) and by hand, inside a test-bed namespace:

  scripts/asterisk-testbed.sh exec 1 python3 scripts/ami-probe.py \
      --action 10.214.0.1 MWIUpdate Mailbox=1234@default NewMessages=2 OldMessages=5 \
      --expect 10.214.0.2 MessageWaiting Mailbox=1234@default --expect 10.214.0.3 MessageWaiting Mailbox=1234@default

Every --expect host is logged in to (events on) before the action is sent; the probe then waits
until each host has raised an event of that name whose fields include every KEY=VALUE given, and
prints one JSON object: {"response": {...}, "events": [{"host": H, "seconds": S, "at": T, "event": {...}}, ...],
"missing": [...]} (S: seconds since the action was sent; T: the wall-clock time it arrived).
Exit status: 0 when every expectation was met, 1 on a timeout (the JSON says which were not), 2 on
usage errors or when a host cannot be reached. Without --action it only waits. Bounded by --timeout
(default 5 s) in total; connections close on exit.
"""
import argparse
import json
import socket
import sys
import time
import os

TRACE = os.environ.get("AMI_PROBE_TRACE")  # a file to append every chunk read to (debugging)


class AMI:
    def __init__(self, host, port, user, secret, deadline):
        self.host = host
        self.sock = socket.create_connection((host, port), timeout=max(0.1, deadline - time.monotonic()))
        self.buf = b""
        self.partial = {}
        self.read_line(deadline)  # banner
        self.send({"Action": "Login", "Username": user, "Secret": secret, "Events": "on"})
        while True:
            message = self.read_message(deadline)
            if message is None:
                raise TimeoutError(f"no login answer from {host}")
            if message.get("Response") in ("Success", "Error"):
                if message["Response"] != "Success":
                    raise PermissionError(f"login refused by {host}: {message}")
                return

    def send(self, fields):
        text = "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n"
        self.sock.sendall(text.encode())

    def read_line(self, deadline):
        while b"\r\n" not in self.buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return None
            if not data:
                raise EOFError(f"{self.host} closed the connection")
            if TRACE:
                with open(TRACE, "a") as trace:
                    trace.write(f"{time.time():.6f} {self.host} {data!r}\n")
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode(errors="replace")

    def read_message(self, deadline):
        """The next whole message, or None at the deadline (a partial one is kept for the next call)."""
        while True:
            line = self.read_line(deadline)
            if line is None:
                return None
            if line == "":
                if self.partial:
                    message, self.partial = self.partial, {}
                    return message
                continue
            key, _, value = line.partition(":")
            self.partial[key.strip()] = value.strip()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def fields(pairs):
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"ami-probe: expected KEY=VALUE, got {pair!r}")
        out[key] = value
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--action", nargs="+", metavar=("HOST ACTION", "KEY=VALUE"),
                        help="host, action name, then the action's fields")
    parser.add_argument("--expect", nargs="+", action="append", default=[], metavar=("HOST EVENT", "KEY=VALUE"),
                        help="host, event name, then fields the event must carry (repeatable)")
    parser.add_argument("--port", type=int, default=5038)
    parser.add_argument("--user", default="admin")
    parser.add_argument("--secret", default="adminpw")
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args()
    if args.action is not None and len(args.action) < 2:
        parser.error("--action needs HOST and ACTION")
    for expectation in args.expect:
        if len(expectation) < 2:
            parser.error("--expect needs HOST and EVENT")
    deadline = time.monotonic() + args.timeout
    connections = {}
    try:
        try:
            hosts = [e[0] for e in args.expect] + ([args.action[0]] if args.action else [])
            for host in hosts:
                if host not in connections:
                    connections[host] = AMI(host, args.port, args.user, args.secret, deadline)
        except (OSError, TimeoutError, PermissionError, EOFError) as error:
            print(json.dumps({"error": f"cannot log in: {error}"}))
            return 2
        expectations = [{"host": e[0], "event": e[1], "fields": fields(e[2:]), "met": None} for e in args.expect]
        response = None
        start = time.monotonic()
        if args.action:
            host, name = args.action[0], args.action[1]
            action = {"Action": name, "ActionID": "probe-1"}
            action.update(fields(args.action[2:]))
            connections[host].send(action)
        seen = []  # every event read, for the report of a failure
        # Read every connection in turn (short slices) until all expectations are met.
        pending_response = args.action is not None
        for _ in range(100000):
            if time.monotonic() >= deadline:
                break
            if not pending_response and all(e["met"] for e in expectations):
                break
            for host, connection in connections.items():
                slice_end = min(deadline, time.monotonic() + 0.02)
                message = connection.read_message(slice_end)
                if message is None:
                    continue
                now = time.monotonic()
                wall = time.time()
                if "Event" in message:
                    seen.append(f'{host} {message.get("Event")} ' + " ".join(f"{k}={v}" for k, v in message.items() if k in ("Mailbox", "Device", "State", "New", "Old")))
                if pending_response and host == args.action[0] and message.get("ActionID") == "probe-1" and "Response" in message:
                    response = message
                    pending_response = False
                for e in expectations:
                    if e["met"] is None and e["host"] == host and message.get("Event") == e["event"] \
                            and all(message.get(k) == v for k, v in e["fields"].items()):
                        e["met"] = {"host": host, "seconds": round(now - start, 6), "at": round(wall, 6), "event": message}
        ok = all(e["met"] for e in expectations) and not pending_response
        if not ok:
            print("ami-probe: events seen: " + ("; ".join(seen[-40:]) or "none"), file=sys.stderr)
        print(json.dumps({
            "response": response,
            "events": [e["met"] for e in expectations if e["met"]],
            "missing": [{"host": e["host"], "event": e["event"], "fields": e["fields"]} for e in expectations if not e["met"]],
        }))
        return 0 if ok else 1
    except EOFError as error:
        print(json.dumps({"error": str(error)}))
        return 2
    finally:
        for connection in connections.values():
            connection.close()


if __name__ == "__main__":
    sys.exit(main())
