#!/usr/bin/python3
"""Describe endpoint strings as Twisted reads them, for tether's interop tests.

Reads one request per line on stdin and writes one JSON line per request on
stdout, in the same order:

  - a JSON string: an endpoint string, read in the role given by the first
    command-line argument ("server", the default, or "client");
  - a JSON array ["server" or "client", STRING]: the string in that role, so
    that one process can describe a whole corpus of both roles.

Each answer is either

  {"ok": true, "role": ROLE, "type": TYPE, "args": {...}}

built by introspecting the endpoint object that serverFromString or
clientFromString returned, with the conventions of `tether describe`
(numbers as numbers, flags as booleans, a file mode as an octal string such
as "0666", an absent optional argument as null, bindAddress as just the
host), or

  {"ok": false, "error": "ExceptionType: message"}

when Twisted raises. An endpoint class this script does not know is
reported as type "twisted:ClassName" with empty args, so that it shows up as
a difference instead of passing silently.

Run it with Debian's /usr/bin/python3, which has python3-twisted.
"""

import json
import sys

from twisted.internet import endpoints, reactor


def octal(mode):
    if mode < 0:
        return "-%04o" % -mode
    return "%04o" % mode


def server_args(ep):
    # TCP6ServerEndpoint and TCP4ServerEndpoint are siblings, not subclasses
    # of each other; test the exact classes.
    if type(ep) is endpoints.TCP6ServerEndpoint:
        return "tcp6", {
            "port": ep._port,
            "backlog": ep._backlog,
            "interface": ep._interface,
        }
    if type(ep) is endpoints.TCP4ServerEndpoint:
        return "tcp", {
            "port": ep._port,
            "interface": ep._interface,
            "backlog": ep._backlog,
        }
    if type(ep) is endpoints.UNIXServerEndpoint:
        return "unix", {
            "address": ep._address,
            "mode": octal(ep._mode),
            "backlog": ep._backlog,
            "lockfile": bool(ep._wantPID),
        }
    return "twisted:" + type(ep).__name__, {}


def client_args(ep):
    if type(ep) is endpoints.TCP4ClientEndpoint:
        bind = ep._bindAddress
        return "tcp", {
            "host": ep._host,
            "port": ep._port,
            "timeout": ep._timeout,
            "bindAddress": None if bind is None else bind[0],
        }
    if type(ep) is endpoints.UNIXClientEndpoint:
        # Twisted passes checkPID on as it is and tests its truth when it
        # connects (Connector: "if checkPID and not isLocked(...)"), so any
        # non-empty checkPID= text, even "0", is on.
        return "unix", {
            "path": ep._path,
            "timeout": ep._timeout,
            "checkPID": bool(ep._checkPID),
        }
    return "twisted:" + type(ep).__name__, {}


def describe(role, s):
    try:
        if role == "server":
            typ, args = server_args(endpoints.serverFromString(reactor, s))
        elif role == "client":
            typ, args = client_args(endpoints.clientFromString(reactor, s))
        else:
            return {"ok": False, "error": "bad role %r (want server or client)" % (role,)}
    except Exception as e:  # Twisted raises ValueError, TypeError, RuntimeError...
        return {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
    return {"ok": True, "role": role, "type": typ, "args": args}


def main():
    default_role = sys.argv[1] if len(sys.argv) > 1 else "server"
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        req = json.loads(line)
        if isinstance(req, str):
            role, s = default_role, req
        else:
            role, s = req
        sys.stdout.write(json.dumps(describe(role, s)) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
