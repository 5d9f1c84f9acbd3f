#!/usr/bin/env python3
"""Sends N GET /hello requests over one keep-alive HTTP/1.1 connection and
checks every answer is 200 (scripts/instructions.sh).

Usage: keepalive_client.py host port n [header ...]
"""
import socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
headers = sys.argv[4:]
for _ in range(600):
    try:
        s = socket.create_connection((host, port)); break
    except OSError:
        time.sleep(0.05)
req = ("GET /hello HTTP/1.1\r\nHost: x\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n").encode()
buf = b""
for i in range(n):
    s.sendall(req)
    # read one response: headers then content-length body
    while b"\r\n\r\n" not in buf:
        buf += s.recv(65536)
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    while len(rest) < length:
        rest += s.recv(65536)
    status = head.split(b" ")[1]
    if status != b"200":
        sys.exit(f"request {i}: status {status.decode()}")
    buf = rest[length:]
s.close()
