#!/usr/bin/env python3
"""HTTP transcripts of Capstan beside etcd: every probe and JSON-gateway path, same requests.

    bench/scripts/http-transcripts.py [--capstan PATH] [--etcd34 PATH] [--etcd36 PATH] [--out FILE]

Starts each server as a single member on free 127.0.0.1 ports with a temporary data directory,
sends the same sequence of HTTP/1.1 requests to its client port (and `/livez`, `/readyz` to its
metrics port), and writes a Markdown report: per request, the status, the Content-Type and the
body of every server, and whether the bodies have the same *shape* (the same JSON keys, at every
level, with the same JSON types; strings that hold 64-bit integers count as integers). Values
that must differ between servers (ids, revisions, times, sizes, versions) are not compared;
everything else is shown for a reader to compare.

Ids learnt from one answer (a lease id, a lock key, a member id) are used in later requests to
the same server, so the sequence means the same thing on each.

Capstan reports itself as etcd 3.6, so etcd 3.6 is the reference: exits 0 when every
request got the same status and shape on Capstan as on etcd 3.6 (or, without etcd 3.6, on
Debian's etcd 3.4), 1 otherwise. The report has a column for each etcd found.
"""

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time


def b64(text):
    return base64.b64encode(text.encode()).decode()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One single-member server: its process, client port and metrics port."""

    def __init__(self, label, program, is_capstan):
        self.label = label
        self.program = program
        self.is_capstan = is_capstan
        self.dir = tempfile.mkdtemp(prefix="http-transcripts-")
        self.client = free_port()
        self.peer = free_port()
        self.metrics = free_port()
        peer_url = f"http://127.0.0.1:{self.peer}"
        client_url = f"http://127.0.0.1:{self.client}"
        args = [
            program,
            "--name", "t1",
            "--data-dir", os.path.join(self.dir, "data"),
            "--listen-client-urls", client_url,
            "--advertise-client-urls", client_url,
            "--listen-peer-urls", peer_url,
            "--initial-advertise-peer-urls", peer_url,
            "--initial-cluster", f"t1={peer_url}",
            "--listen-metrics-urls", f"http://127.0.0.1:{self.metrics}",
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
        self.log = open(os.path.join(self.dir, "log"), "wb")
        self.process = subprocess.Popen(args, stdout=self.log, stderr=self.log, env=env)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                status, _, _ = exchange(self.client, "GET", "/health", None, timeout=2)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{label} did not become healthy")

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def read_response(sock, deadline, stream_seconds=None):
    """Reads one response: (status, headers, body). A chunked body is read until its end, or,
    for a stream, for `stream_seconds` (the chunks so far are returned)."""
    data = b""
    while b"\r\n\r\n" not in data:
        sock.settimeout(max(0.05, deadline - time.time()))
        piece = sock.recv(65536)
        if not piece:
            break
        data += piece
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1]) if lines and " " in lines[0] else 0
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        length = int(headers["content-length"])
        while len(rest) < length and time.time() < deadline:
            sock.settimeout(max(0.05, deadline - time.time()))
            piece = sock.recv(65536)
            if not piece:
                break
            rest += piece
        return status, headers, rest[:length]
    if headers.get("transfer-encoding") == "chunked":
        end = deadline if stream_seconds is None else time.time() + stream_seconds
        body = b""
        buffer = rest
        while time.time() < end:
            # Decode complete chunks in the buffer.
            while b"\r\n" in buffer:
                size_line, _, after = buffer.partition(b"\r\n")
                size = int(size_line.split(b";")[0] or b"0", 16)
                if len(after) < size + 2:
                    break
                if size == 0:
                    return status, headers, body
                body += after[:size]
                buffer = after[size + 2:]
            sock.settimeout(max(0.05, end - time.time()))
            try:
                piece = sock.recv(65536)
            except socket.timeout:
                break
            if not piece:
                break
            buffer += piece
        return status, headers, body
    # No length: read until close (or the deadline).
    while time.time() < deadline:
        sock.settimeout(max(0.05, deadline - time.time()))
        try:
            piece = sock.recv(65536)
        except socket.timeout:
            break
        if not piece:
            break
        rest += piece
    return status, headers, rest


def exchange(port, method, path, body, timeout=10, stream_seconds=None, during=None):
    """One request on a fresh connection. `during`, if given, runs after the request is sent
    (e.g. a put that a watch stream should report)."""
    payload = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
        f"Connection: close\r\n\r\n"
    ).encode() + payload
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        if during is not None:
            time.sleep(0.3)
            during()
        return read_response(sock, time.time() + timeout, stream_seconds)


def shape(value):
    """The JSON shape: keys and types, recursively; integer-like strings count as integers."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in sorted(value.items())}
    if isinstance(value, list):
        shapes = []
        for item in value:
            s = shape(item)
            if s not in shapes:
                shapes.append(s)
        # Order does not count (members come sorted by their random ids).
        return sorted(shapes, key=lambda s: json.dumps(s, sort_keys=True))
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "int64-string" if value.lstrip("-").isdigit() and value != "" else "string"
    return "null"


def metric_families(body):
    """The `# TYPE name type` pairs of a Prometheus text body."""
    families = set()
    for line in body.decode("utf-8", "replace").splitlines():
        if line.startswith("# TYPE "):
            parts = line.split()
            if len(parts) == 4:
                families.add((parts[2], parts[3]))
    return families


def body_shape(body):
    text = body.decode("utf-8", "replace")
    if text.startswith("# HELP "):
        return ("metrics", sorted(metric_families(body)))
    objects = []
    for line in text.splitlines() or [text]:
        line = line.strip()
        if not line:
            continue
        try:
            objects.append(shape(json.loads(line)))
        except ValueError:
            return ("text", text if len(text) < 200 else text[:200])
    return ("json", objects)


class Session:
    """The request sequence against one server; ids learnt on the way are kept here."""

    def __init__(self, server):
        self.server = server
        self.results = []
        self.lease = "0"
        self.lock_key = ""
        self.leader_key = None
        self.member_id = "0"

    def call(self, name, method, path, body=None, port=None, stream_seconds=None, during=None):
        port = self.server.client if port is None else port
        try:
            status, headers, data = exchange(
                port, method, path, body, stream_seconds=stream_seconds, during=during
            )
        except OSError as error:
            status, headers, data = 0, {}, str(error).encode()
        self.results.append((name, method, path, status, headers.get("content-type", ""), data))
        try:
            return json.loads(data.decode().splitlines()[0]) if data else {}
        except (ValueError, IndexError):
            return {}

    def put(self, key, value):
        exchange(self.server.client, "POST", "/v3/kv/put", {"key": b64(key), "value": b64(value)})

    def run(self):
        s = self.server
        m = s.metrics
        self.call("health", "GET", "/health")
        self.call("health serializable", "GET", "/health?serializable=true")
        self.call("version", "GET", "/version")
        self.call("livez (metrics port)", "GET", "/livez?verbose", port=m)
        self.call("readyz (metrics port)", "GET", "/readyz?verbose", port=m)
        self.call("readyz one check", "GET", "/readyz/linearizable_read", port=m)
        self.call("health (metrics port)", "GET", "/health", port=m)
        self.call("unknown path", "GET", "/nope")
        self.call("put", "POST", "/v3/kv/put", {"key": b64("foo"), "value": b64("bar")})
        self.call("put prev_kv", "POST", "/v3/kv/put",
                  {"key": b64("foo"), "value": b64("baz"), "prev_kv": True})
        self.call("range", "POST", "/v3/kv/range", {"key": b64("foo")})
        self.call("range prefix", "POST", "/v3/kv/range",
                  {"key": b64("f"), "range_end": b64("g"), "limit": 10})
        self.call("range count only (camelCase)", "POST", "/v3/kv/range",
                  {"key": b64("f"), "rangeEnd": b64("g"), "countOnly": True})
        self.call("range missing", "POST", "/v3/kv/range", {"key": b64("absent")})
        self.call("v3beta range", "POST", "/v3beta/kv/range", {"key": b64("foo")})
        self.call("txn", "POST", "/v3/kv/txn", {
            "compare": [{"key": b64("foo"), "result": "EQUAL", "target": "VALUE",
                         "value": b64("baz")}],
            "success": [{"request_put": {"key": b64("foo"), "value": b64("qux")}},
                        {"request_range": {"key": b64("foo")}}],
            "failure": [{"request_range": {"key": b64("foo")}}],
        })
        self.call("txn failure branch", "POST", "/v3/kv/txn", {
            "compare": [{"key": b64("foo"), "result": "EQUAL", "target": "VALUE",
                         "value": b64("nope")}],
            "success": [{"request_put": {"key": b64("foo"), "value": b64("never")}}],
            "failure": [{"request_delete_range": {"key": b64("nothing")}}],
        })
        self.call("deleterange", "POST", "/v3/kv/deleterange",
                  {"key": b64("foo"), "prev_kv": True})
        self.call("compaction", "POST", "/v3/kv/compaction", {"revision": "2"})
        self.call("compaction of a compacted revision", "POST", "/v3/kv/compaction",
                  {"revision": "1"})
        self.call("compaction of a future revision", "POST", "/v3/kv/compaction",
                  {"revision": "100000"})
        grant = self.call("lease grant", "POST", "/v3/lease/grant", {"TTL": "60"})
        self.lease = grant.get("ID", "0")
        self.call("put with lease", "POST", "/v3/kv/put",
                  {"key": b64("leased"), "value": b64("v"), "lease": self.lease})
        self.call("lease timetolive", "POST", "/v3/lease/timetolive",
                  {"ID": self.lease, "keys": True})
        self.call("lease timetolive (old path)", "POST", "/v3/kv/lease/timetolive",
                  {"ID": self.lease})
        self.call("lease leases", "POST", "/v3/lease/leases", {})
        self.call("lease keepalive (stream)", "POST", "/v3/lease/keepalive",
                  {"ID": self.lease}, stream_seconds=1.0)
        self.call("watch (stream)", "POST", "/v3/watch",
                  {"create_request": {"key": b64("watched")}}, stream_seconds=1.5,
                  during=lambda: self.put("watched", "w1"))
        self.call("watch from revision (stream)", "POST", "/v3/watch",
                  {"create_request": {"key": b64("watched"), "start_revision": "3",
                                      "prev_kv": True}}, stream_seconds=1.0)
        lock = self.call("lock", "POST", "/v3/lock/lock", {"name": b64("mylock"),
                                                         "lease": self.lease})
        self.lock_key = lock.get("key", "")
        self.call("unlock", "POST", "/v3/lock/unlock", {"key": self.lock_key})
        campaign = self.call("election campaign", "POST", "/v3/election/campaign",
                             {"name": b64("myelection"), "lease": self.lease,
                              "value": b64("v1")})
        self.leader_key = campaign.get("leader", {})
        self.call("election leader", "POST", "/v3/election/leader", {"name": b64("myelection")})
        self.call("election proclaim", "POST", "/v3/election/proclaim",
                  {"leader": self.leader_key, "value": b64("v2")})
        self.call("election observe (stream)", "POST", "/v3/election/observe",
                  {"name": b64("myelection")}, stream_seconds=1.0)
        self.call("election resign", "POST", "/v3/election/resign", {"leader": self.leader_key})
        self.call("election leader, none", "POST", "/v3/election/leader",
                  {"name": b64("myelection")})
        self.call("lease revoke", "POST", "/v3/lease/revoke", {"ID": self.lease})
        self.call("lease revoke, unknown", "POST", "/v3/lease/revoke", {"ID": self.lease})
        members = self.call("member list", "POST", "/v3/cluster/member/list", {})
        own = (members.get("members") or [{}])[0].get("ID", "0")
        added = self.call("member add learner", "POST", "/v3/cluster/member/add",
                          {"peerURLs": [f"http://127.0.0.1:{free_port()}"], "isLearner": True})
        self.member_id = added.get("member", {}).get("ID", "0")
        self.call("member update", "POST", "/v3/cluster/member/update",
                  {"ID": self.member_id, "peerURLs": [f"http://127.0.0.1:{free_port()}"]})
        self.call("member promote, not ready", "POST", "/v3/cluster/member/promote",
                  {"ID": self.member_id})
        self.call("member remove", "POST", "/v3/cluster/member/remove", {"ID": self.member_id})
        self.call("member remove, unknown", "POST", "/v3/cluster/member/remove",
                  {"ID": self.member_id})
        self.call("maintenance status", "POST", "/v3/maintenance/status", {})
        self.call("maintenance alarm get", "POST", "/v3/maintenance/alarm", {"action": "GET"})
        self.call("maintenance defragment", "POST", "/v3/maintenance/defragment", {})
        self.call("maintenance hash", "POST", "/v3/maintenance/hash", {})
        self.call("maintenance hashkv", "POST", "/v3/maintenance/hashkv", {"revision": "0"})
        self.call("maintenance snapshot (stream)", "POST", "/v3/maintenance/snapshot", {},
                  stream_seconds=1.0)
        self.call("maintenance transfer-leadership to self", "POST",
                  "/v3/maintenance/transfer-leadership", {"targetID": own})
        self.call("auth status", "POST", "/v3/auth/status", {})
        self.call("bad JSON", "POST", "/v3/kv/put", b"{not json")
        self.call("unknown field", "POST", "/v3/kv/put", {"key": b64("k"), "nope": 1})
        self.call("wrong type", "POST", "/v3/kv/range", {"key": 5})
        self.call("GET on a gateway path", "GET", "/v3/kv/range")
        self.call("unknown gateway path", "POST", "/v3/kv/nope", {})
        self.call("metrics", "GET", "/metrics")


def describe(data, limit=600):
    text = data.decode("utf-8", "replace")
    if len(text) > limit:
        text = text[:limit] + f"... ({len(data)} bytes)"
    return text.replace("\n", "\\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parser.add_argument("--capstan", default=os.path.join(root, "target/debug/capstan"))
    parser.add_argument("--etcd34", default=shutil.which("etcd") or "")
    parser.add_argument("--etcd36", default=os.path.join(root, "target/tools/etcd36"))
    parser.add_argument("--out", default="")
    args = parser.parse_args()

    servers = [("capstan", args.capstan, True)]
    for label, path in (("etcd 3.4", args.etcd34), ("etcd 3.6", args.etcd36)):
        if path and os.path.exists(path):
            servers.append((label, path, False))
        else:
            print(f"note: {label} not found ({path!r}); left out", file=sys.stderr)
    sessions = []
    for label, path, is_capstan in servers:
        server = Server(label, path, is_capstan)
        try:
            session = Session(server)
            session.run()
            sessions.append(session)
        finally:
            server.stop()

    labels = [session.server.label for session in sessions]
    lines = ["# HTTP transcripts: " + " vs ".join(labels), ""]
    lines.append("Generated by `bench/scripts/http-transcripts.py`. Shape: JSON keys and types at "
                 "every level (values that must differ are not compared). etcd 3.6's gateway "
                 "(grpc-gateway v2) puts random spaces in its JSON (Go's protojson does that on "
                 "purpose), so bytes are never compared.")
    lines.append("")
    references = [label for label in ("etcd 3.6", "etcd 3.4") if label in labels]
    lines.append("| request | " + " | ".join(f"{label} status" for label in labels)
                 + "".join(f" | same as {label}" for label in references) + " |")
    lines.append("|---|" + "---|" * (len(labels) + len(references)))
    mismatches = 0
    for index, (name, method, path, *_rest) in enumerate(sessions[0].results):
        row = {session.server.label: session.results[index] for session in sessions}
        ours = sessions[0].results[index]
        cells = [str(row[label][3]) for label in labels]
        for label in references:
            theirs = row[label]
            if path == "/metrics":
                # Not all of etcd's series are Capstan's (go_*, v2 store, proxy): count the
                # etcd families with the same name and type.
                mine, wanted = metric_families(ours[5]), metric_families(theirs[5])
                wanted = {family for family in wanted if not family[0].startswith("go_")}
                cells.append(f"{len(mine & wanted)} of its {len(wanted)} non-Go families")
                continue
            same = theirs[3] == ours[3] and body_shape(theirs[5]) == body_shape(ours[5])
            cells.append("yes" if same else "**no**")
            if not same and label == references[0]:
                mismatches += 1
        lines.append(f"| {name} (`{method} {path}`) | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("## Bodies")
    for index, (name, method, path, *_rest) in enumerate(sessions[0].results):
        lines.append("")
        lines.append(f"### {name}: `{method} {path}`")
        for session in sessions:
            _, _, _, status, content_type, data = session.results[index]
            lines.append(f"- {session.server.label}: {status} `{content_type}` "
                         f"`{describe(data)}`")
    text = "\n".join(lines) + "\n"
    if args.out:
        with open(args.out, "w") as out:
            out.write(text)
        print(f"wrote {args.out}; {mismatches} requests differ in status or shape")
    else:
        print(text)
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
