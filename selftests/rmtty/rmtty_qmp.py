#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Drive a QEMU through its QMP socket, for rmtty's shell tests.

    rmtty_qmp.py SOCKET TIMEOUT COMMAND [ARG]

Connects to SOCKET (a -qmp unix:SOCKET,server=on,wait=off), retrying until
QEMU listens, runs COMMAND and disconnects. Everything, connecting included,
must be done within TIMEOUT seconds. Commands:

    ready            print the run state (query-status)
    migrate URI      migrate to URI and wait until the migration ends; print
                     HMP's `info migrate`; exit 0 only if it completed
    start URI        start migrating to URI and return
    status           print the migration's status (query-migrate) and the
                     bytes of device state VFIO has sent (QEMU 8.1 and later;
                     otherwise 0)
    set NAME VALUE   set the migration parameter NAME to the integer VALUE
                     (migrate-set-parameters)
    incoming, wait   wait until the incoming migration (-incoming), or the
                     migration, ends; print HMP's `info migrate`; exit 0
                     only if it completed
    cont             start the VM (cont) and print the run state
    hmp COMMAND...   run HMP commands and print their output
    quit             quit QEMU and wait until it closes the socket

If the environment names QEMU's process id in RMTTY_QMP_PID, connecting
stops waiting as soon as that process is gone.

Exit status: 0, 1 when the command failed (QEMU's error is printed), 2 on a
usage error, 3 on a timeout or a lost connection.
"""

import json
import os
import socket
import sys
import time

# What query-migrate's status is once a migration is over.
FINAL = {"completed", "failed", "cancelled"}


def alive(pid):
    """Whether process @pid (a string; None: unknown) still runs: not gone, not a zombie."""
    if not pid:
        return True
    try:
        with open(f"/proc/{int(pid)}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, ValueError, IndexError):
        return False


class Lost(Exception):
    """The connection failed or the deadline passed."""


class Qmp:
    def __init__(self, path, deadline):
        self.deadline = deadline
        self.buf = b""
        self.next_id = 0
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(self.left())
                sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()
                if not alive(os.environ.get("RMTTY_QMP_PID")):
                    raise Lost("QEMU exited before it answered on its QMP socket")
                if time.monotonic() >= deadline:
                    raise Lost(f"QEMU does not listen on {path}")
                time.sleep(0.2)
            except OSError as err:
                sock.close()
                raise Lost(f"connecting to {path}: {err}")
        self.sock = sock
        greeting = self.receive()
        if "QMP" not in greeting:
            raise Lost(f"not a QMP greeting: {greeting}")
        self.execute("qmp_capabilities")

    def left(self):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise Lost("timed out")
        return left

    def receive(self):
        """The next message from QEMU, an event or a reply."""
        while b"\n" not in self.buf:
            self.sock.settimeout(self.left())
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                raise Lost("timed out waiting for QEMU")
            except OSError as err:
                raise Lost(f"reading from QEMU: {err}")
            if not data:
                raise Lost("QEMU closed the connection")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def send(self, command, **arguments):
        """Send a command; its id."""
        self.next_id += 1
        request = {"execute": command, "id": self.next_id}
        if arguments:
            request["arguments"] = arguments
        self.sock.settimeout(self.left())
        try:
            self.sock.sendall(json.dumps(request).encode() + b"\n")
        except OSError as err:
            raise Lost(f"writing to QEMU: {err}")
        return self.next_id

    def execute(self, command, **arguments):
        """The return value of a command; raises RuntimeError with QEMU's error."""
        self.send(command, **arguments)
        while True:
            reply = self.receive()
            if reply.get("id") != self.next_id:
                continue  # an event
            if "error" in reply:
                raise RuntimeError(f"{command}: {reply['error'].get('desc', reply['error'])}")
            return reply.get("return")

    def hmp(self, command_line):
        """An HMP command's output, with the monitor's CRLF line ends made LF."""
        output = self.execute("human-monitor-command", **{"command-line": command_line})
        return output.replace("\r\n", "\n")

    def wait_closed(self):
        """Wait until QEMU closes the connection (as it does when it exits)."""
        while True:
            self.sock.settimeout(self.left())
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                raise Lost("QEMU did not exit after quit")
            except ConnectionResetError:
                return
            if not data:
                return


def wait_migration(qmp):
    """Poll query-migrate until the migration is over; its final answer."""
    while True:
        info = qmp.execute("query-migrate")
        if info.get("status") in FINAL:
            return info
        time.sleep(0.2)


def report(qmp, info):
    keys = ("status", "total-time", "downtime", "setup-time", "error-desc")
    summary = ", ".join(f"{k} {info[k]}" for k in keys if k in info)
    ram = info.get("ram", {})
    if "transferred" in ram:
        summary += f", ram transferred {ram['transferred']}"
    print(f"query-migrate: {summary}")
    print(qmp.hmp("info migrate").rstrip())
    return 0 if info.get("status") == "completed" else 1


def main(argv):
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    path, timeout, command, args = argv[1], float(argv[2]), argv[3], argv[4:]
    wanted = {"ready": 0, "migrate": 1, "start": 1, "status": 0, "set": 2, "incoming": 0,
              "wait": 0, "cont": 0, "hmp": None, "quit": 0}
    if command not in wanted or (wanted[command] is None and not args) or \
       wanted[command] not in (None, len(args)):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        qmp = Qmp(path, time.monotonic() + timeout)
        if command == "ready":
            print(qmp.execute("query-status")["status"])
        elif command == "migrate":
            qmp.execute("migrate", uri=args[0])
            return report(qmp, wait_migration(qmp))
        elif command == "start":
            qmp.execute("migrate", uri=args[0])
        elif command == "status":
            info = qmp.execute("query-migrate")
            print(info.get("status", "none"), info.get("vfio", {}).get("transferred", 0))
        elif command == "set":
            qmp.execute("migrate-set-parameters", **{args[0]: int(args[1])})
        elif command in ("incoming", "wait"):
            return report(qmp, wait_migration(qmp))
        elif command == "cont":
            qmp.execute("cont")
            print(qmp.execute("query-status")["status"])
        elif command == "hmp":
            for line in args:
                output = qmp.hmp(line).rstrip()
                if output:
                    print(output)
        elif command == "quit":
            # QEMU may close the connection before its reply arrives.
            qmp.send("quit")
            qmp.wait_closed()
    except RuntimeError as err:
        print(f"QMP error: {err}")
        return 1
    except Lost as err:
        print(f"QMP: {err}")
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
