#!/usr/bin/env python3
"""Client of GIMP 2.10's Script-Fu server (plug-in-script-fu-server), for the dialog tests.

    sf-client.py PORT 'SCHEME'   prints the value the server returns; exit 1 on a Script-Fu
                                 error, 2 when the server cannot be reached or closes.

Protocol (script-fu-server.c): request 'G', 16-bit big-endian length, the text; reply 'G',
an error byte (0 = success), 16-bit big-endian length, the output.
"""
import socket
import struct
import sys


def call(port, cmd, timeout=600):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    body = cmd.encode()
    s.sendall(b"G" + struct.pack(">H", len(body)) + body)

    def read(n):
        data = b""
        while len(data) < n:
            chunk = s.recv(n - len(data))
            if not chunk:
                raise EOFError("the Script-Fu server closed the connection")
            data += chunk
        return data

    head = read(4)
    if head[0:1] != b"G":
        raise EOFError("not a Script-Fu server reply: %r" % head)
    out = read(struct.unpack(">H", head[2:4])[0]).decode(errors="replace")
    return head[1], out


if __name__ == "__main__":
    try:
        err, out = call(int(sys.argv[1]), sys.argv[2])
    except (OSError, EOFError) as e:
        print(e, file=sys.stderr)
        sys.exit(2)
    print(out.strip())
    sys.exit(1 if err else 0)
