#!/usr/bin/python3
"""Local fakes of the Facebook Graph API (Pages) and the LINE Messaging API for prakat's tests.

The real services cannot be reached from the test machines, so these two servers stand in for them on
127.0.0.1, over plain HTTP/1.1 with keep-alive.  They follow shared/reference/platform-apis.md: the same
endpoints, the same request validation, the same error envelopes, codes and HTTP statuses, the same
throttling signals and LINE's retry-key rules.  Python 3 standard library only.

The model
---------
FakeFacebook is one Page.  Its base URL is http://127.0.0.1:PORT/v24.0 (any vNN.N prefix is accepted).
    POST /{page}/feed            message, link, published, scheduled_publish_time, attached_media[N]
    POST /{page}/photos          url or multipart `source`, caption, published (false = unpublished)
    GET  /{page}/published_posts, /feed, /posts, /scheduled_posts   fields, limit, since, until, after
    GET  /{post-id} | /{page} | /me      fields=...        POST /{post-id} message=...   DELETE /{post-id}
  The token comes from `access_token` (query, form or JSON body) or `Authorization: Bearer|OAuth`.
  Every authenticated call spends one unit of a rolling per-Page budget (call_limit per call_window
  seconds); usage is reported on every answer in X-Business-Use-Case-Usage and X-Page-Usage, and once the
  budget is spent the answer is error 80001 (or throttle_code) with estimated_time_to_regain_access.
  Posting the same message as the Page's latest post gives error 506.  JSON comes back the way Graph
  writes it: non-ASCII as \\uXXXX and "/" as "\\/".

FakeLine is one channel.  Its base URL is http://127.0.0.1:PORT.
    POST /v2/bot/message/{broadcast,narrowcast,push,multicast}, POST /v2/bot/message/validate/{kind}
    GET  /v2/bot/message/progress/narrowcast?requestId=, /v2/bot/message/quota, .../quota/consumption,
         /v2/bot/info;  /v2/bot/audienceGroup/upload (POST, PUT), /{id} (GET, DELETE), /list
  Messages are validated as the reference says (1..5 objects, text <= 5000 UTF-16 units, flex altText
  <= 1500, https image URLs ...).  X-Line-Retry-Key must be a UUID and only on send endpoints; a key already
  accepted on that endpoint gives 409 with x-line-accepted-request-id and is never delivered twice.
  Token buckets per endpoint (broadcast and narrowcast: rate_per_hour), a monthly quota (None = "none"):
  a broadcast costs `friends`, a narrowcast its target count, a push 1, a multicast len(to).  Narrowcast
  progress moves waiting -> sending -> succeeded (or failed) over narrowcast_waiting + narrowcast_sending s.

Faults, injected per request match ("METHOD /path/glob", "/path/glob" or "*"), `count` times each:
    500_after_create      the request is executed, then answered 500 (Facebook code 2, or `code`)
    drop_after_accept     the request is executed, then the connection is closed with no answer
    timeout               the answer is held `seconds` (null: forever) BEFORE executing; a client that
                          gives up meanwhile is dropped and nothing is executed
    timeout_after_create  the request is executed, then the answer is held `seconds` (null: forever)
    html_502              a proxy's HTML page with status 502; nothing executed
    expired_token         Facebook 190/463, LINE 401
    throttle              Facebook `code` (default throttle_code) with the usage headers and `minutes`;
                          LINE 429 rate limit
    status                any `status` with `body` (JSON value or text) and optional `headers`
    quota_exceeded        LINE only: 429 "You have reached your monthly limit."
    narrowcast_failed     LINE only: the narrowcast is accepted (202) and its progress ends `failed`
                          with `error_code` (1..5)
The *_after_* kinds (and narrowcast_failed) fire only when the request itself succeeded; otherwise the
real error is returned and the fault stays armed.

How tests use it
----------------
In-process:   fb = FakeFacebook(page_id="123456789", token="T"); base = fb.start(); ...; fb.stop()
              fb.add_fault("POST /v24.0/123456789/feed", "500_after_create"); fb.published_posts()
              with fb.lock: fb.posts, fb.photos, fb.deleted_posts, fb.requests, fb.connections_accepted ...
From a shell: python3 tests/fakes/fake_platforms.py --facebook-port 0 --line-port 0 [--no-limits]
              prints FAKE_FACEBOOK_API_BASE=, FAKE_FACEBOOK_CONTROL=, FAKE_LINE_API_BASE=, FAKE_LINE_CONTROL=
              lines (eval-able); then the same operations are JSON calls on http://127.0.0.1:PORT/_fake/...:
    GET  state[?requests=1]  stats  requests[?since=N]  faults  config
    POST fault {"match","kind","count",...params}   clear-faults   reset   config {...}   expire-token
    POST audience {"userIds":[...],"description"}   narrowcast-fail {"requestId","errorCode"}   (LINE only)
The control API only calls the Python methods, so both ways do exactly the same thing.  Control calls are
not logged, not counted and never faulted.  stats: connections_accepted (every TCP connection since the
last reset), api_connections (those that carried platform calls), open_connections, max_open_connections,
requests, in_flight, max_concurrent (the most platform calls being answered at the same time).
"""

import argparse
import base64
import collections
import email.parser
import email.policy
import fnmatch
import hashlib
import json
import math
import os
import re
import secrets
import select
import signal
import socket
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

MAX_BODY = 40 * 1024 * 1024          # whatever a producer sends, the fake reads at most this
LOG_BODY_LIMIT = 64 * 1024           # bytes of each request body kept in the request log
FAULT_KINDS = {"500_after_create", "drop_after_accept", "timeout", "timeout_after_create", "html_502",
               "expired_token", "throttle", "status"}
AFTER_KINDS = {"500_after_create", "drop_after_accept", "timeout_after_create", "narrowcast_failed"}
HTML_502 = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway"
            b"</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")


class Response:
    """One answer.  `body` may be bytes, text, or a JSON value (encoded by `encode`)."""

    def __init__(self, status, body=b"", headers=None, content_type="application/json; charset=UTF-8",
                 encode=None):
        if not isinstance(body, (bytes, str)):
            body = (encode or _json_plain)(body)
        self.body = body.encode("utf-8") if isinstance(body, str) else body
        self.status = status
        self.headers = dict(headers or {})
        self.content_type = content_type

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def _json_plain(value):
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _json_graph(value):
    """Graph API style: ASCII only, slashes escaped."""
    return json.dumps(value, ensure_ascii=True, separators=(",", ":")).replace("/", "\\/")


class Request:
    """A parsed request: path, query, headers, raw body, and the body decoded by its content type."""

    def __init__(self, method, target, headers, body, conn_id):
        split = urlsplit(target)
        self.method = method
        self.target = target
        self.path = split.path
        self.query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        self.headers = headers
        self.body = body
        self.conn_id = conn_id
        self.content_type = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
        self.form, self.files, self.json, self.json_error = {}, {}, None, None
        self.request_id = None
        if self.content_type == "application/json" and body:
            try:
                self.json = json.loads(body.decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as e:
                self.json_error = e
        elif self.content_type == "application/x-www-form-urlencoded":
            self.form = {k: v[-1] for k, v in
                         parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
        elif self.content_type == "multipart/form-data":
            self._parse_multipart(headers.get("Content-Type"))

    def _parse_multipart(self, content_type):
        raw = b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + self.body
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
        if not msg.is_multipart():
            return
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            data = part.get_payload(decode=True) or b""
            if part.get_filename() is None:
                self.form[name] = data.decode("utf-8", "replace")
            else:
                self.files[name] = (part.get_filename(), part.get_content_type(), data)

    def header(self, name):
        return self.headers.get(name)

    def params(self):
        """Graph style: query, then form or JSON body fields (the body wins)."""
        p = dict(self.query)
        p.update(self.form)
        if isinstance(self.json, dict):
            p.update(self.json)
        return p


class Fault:
    def __init__(self, id, match, kind, count, params):
        self.id, self.match, self.kind, self.params = id, match, kind, params
        self.count = self.remaining = count
        self.fired = 0

    def matches(self, req):
        m = self.match.strip()
        method, _, pattern = m.partition(" ") if " " in m else ("*", "", m)
        if method != "*" and method.upper() != req.method:
            return False
        return fnmatch.fnmatchcase(req.path, pattern.strip())

    def to_json(self):
        return {"id": self.id, "match": self.match, "kind": self.kind, "count": self.count,
                "remaining": self.remaining, "fired": self.fired, "params": self.params}


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, fake):
        self.fake = fake
        super().__init__(address, _Handler)

    def get_request(self):
        sock, addr = super().get_request()
        self.fake._connection_opened(sock)
        return sock, addr

    def shutdown_request(self, request):
        self.fake._connection_closed(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address):
        # A client that went away (killed, timed out) is what the fault tests do on purpose.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-platforms/1.0"
    sys_version = ""

    def setup(self):
        self.timeout = self.server.fake.idle_timeout
        super().setup()

    def version_string(self):
        return self.server_version

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        self.server.fake._serve(self)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET


class FakeServer:
    """What both fakes share: the HTTP server, statistics, the request log, faults and the control API."""

    kind = "fake"
    fault_kinds = FAULT_KINDS
    defaults = {}

    def __init__(self, host="127.0.0.1", port=0, idle_timeout=120.0, **config):
        unknown = set(config) - set(self.defaults)
        if unknown:
            raise ValueError("unknown %s setting(s): %s" % (self.kind, ", ".join(sorted(unknown))))
        self.host, self.port, self.idle_timeout = host, port, idle_timeout
        self.lock = threading.RLock()
        self.initial_config = dict(self.defaults, **config)
        self.clock = time.time
        self._httpd = None
        self._thread = None
        self._stopping = threading.Event()
        self._conn_ids = {}
        self._next_conn = 0
        self.in_flight = 0
        self.reset()

    # ---- life cycle ----

    def start(self):
        """Starts serving in a background thread; returns the API base URL."""
        self._stopping.clear()
        self._httpd = _HTTPServer((self.host, self.port), self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="fake-%s" % self.kind, daemon=True)
        self._thread.start()
        return self.base_url

    def stop(self):
        if self._httpd is None:
            return
        self._stopping.set()
        self._httpd.shutdown()
        with self.lock:
            socks = list(self._conn_ids)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._httpd.server_close()
        self._thread.join(5)
        self._httpd = None

    @property
    def root_url(self):
        return "http://%s:%d" % (self.host, self.port)

    @property
    def base_url(self):
        return self.root_url

    @property
    def control_url(self):
        return self.root_url + "/_fake"

    def now(self):
        return self.clock()

    # ---- state (the Python API; the control API calls exactly these) ----

    def reset(self):
        """Back to the state right after construction: config, platform state, faults, log, counters."""
        with self.lock:
            self.config = dict(self.initial_config)
            self.faults = []
            self._next_fault = 1
            self.requests = []
            self.connections_accepted = 0
            self.open_connections = len(self._conn_ids)
            self.max_open_connections = len(self._conn_ids)
            self._api_conns = set()
            # Gauges of live things (open connections, requests in flight) keep counting across a reset.
            self.max_concurrent = self.in_flight
            self._reset_platform()

    def configure(self, **changes):
        with self.lock:
            unknown = set(changes) - set(self.defaults)
            if unknown:
                raise ValueError("unknown setting(s): %s (known: %s)" %
                                 (", ".join(sorted(unknown)), ", ".join(sorted(self.defaults))))
            self._configure(changes)
            return dict(self.config)

    def _configure(self, changes):
        self.config.update(changes)

    def expire_token(self):
        """From now on the current token is refused as expired (Facebook 190/463, LINE 401) until a new
        token is configured."""
        return self.configure(token_expired=True)

    def add_fault(self, match, kind, count=1, **params):
        """Arms a fault for the next `count` requests matching `match`; returns its description."""
        if kind not in self.fault_kinds:
            raise ValueError("unknown fault kind %r (known: %s)" % (kind, ", ".join(sorted(self.fault_kinds))))
        if not isinstance(count, int) or count < 1:
            raise ValueError("count must be a positive integer")
        with self.lock:
            f = Fault(self._next_fault, str(match), kind, count, params)
            self._next_fault += 1
            self.faults.append(f)
            return f.to_json()

    def clear_faults(self):
        with self.lock:
            self.faults = []
            return {"cleared": True}

    def stats(self):
        with self.lock:
            return {"connections_accepted": self.connections_accepted, "api_connections": len(self._api_conns),
                    "open_connections": self.open_connections, "max_open_connections": self.max_open_connections,
                    "requests": len(self.requests), "in_flight": self.in_flight,
                    "max_concurrent": self.max_concurrent}

    def request_log(self, since=0):
        with self.lock:
            return [dict(r) for r in self.requests[since:]]

    def snapshot(self, include_requests=False):
        """Everything, as plain JSON values (a copy)."""
        with self.lock:
            state = {"kind": self.kind, "base_url": self.base_url, "config": dict(self.config),
                     "stats": self.stats(), "faults": [f.to_json() for f in self.faults]}
            state.update(self._platform_state())
            if include_requests:
                state["requests"] = self.request_log()
            return json.loads(json.dumps(state, default=list))

    def control(self, method, name, payload=None, query=None):
        """The /_fake/NAME API: returns a JSON value, raises KeyError (404) or ValueError (400)."""
        payload = payload or {}
        query = query or {}
        if not isinstance(payload, dict):
            raise ValueError("the body must be a JSON object")
        routes = {
            ("GET", "state"): lambda: self.snapshot(query.get("requests") in ("1", "true")),
            ("GET", "stats"): self.stats,
            ("GET", "requests"): lambda: self.request_log(int(query.get("since", 0))),
            ("GET", "faults"): lambda: self.snapshot()["faults"],
            ("POST", "fault"): lambda: self.add_fault(**payload),
            ("POST", "clear-faults"): self.clear_faults,
            ("POST", "reset"): lambda: (self.reset(), {"reset": True})[1],
            ("GET", "config"): lambda: self.snapshot()["config"],
            ("POST", "config"): lambda: self.configure(**payload),
            ("POST", "expire-token"): self.expire_token,
        }
        routes.update(self._control_routes(payload))
        fn = routes.get((method, name))
        if fn is None:
            raise KeyError("no control call %s /_fake/%s" % (method, name))
        try:
            return fn()
        except TypeError as e:
            raise ValueError(str(e))

    # ---- connections and requests ----

    def _connection_opened(self, sock):
        with self.lock:
            self._next_conn += 1
            self._conn_ids[sock] = self._next_conn
            self.connections_accepted += 1
            self.open_connections += 1
            self.max_open_connections = max(self.max_open_connections, self.open_connections)

    def _connection_closed(self, sock):
        with self.lock:
            if self._conn_ids.pop(sock, None) is not None:
                self.open_connections -= 1

    def _read_body(self, h):
        if "chunked" in (h.headers.get("Transfer-Encoding") or "").lower():
            chunks, total = [], 0
            while True:
                size = int(h.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while h.rfile.readline().strip():
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY:
                    raise OverflowError
                chunks.append(h.rfile.read(size))
                h.rfile.readline()
        n = int(h.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise OverflowError
        return h.rfile.read(n) if n > 0 else b""

    def _serve(self, h):
        with self.lock:
            conn_id = self._conn_ids.get(h.request, 0)
        try:
            body = self._read_body(h)
        except OverflowError:
            h.close_connection = True
            self._send(h, Response(413, {"message": "Request entity too large"}))
            return
        except (ValueError, OSError):
            h.close_connection = True
            self._send(h, Response(400, {"message": "Bad request framing"}))
            return
        req = Request(h.command, h.path, h.headers, body, conn_id)
        if req.path == "/_fake" or req.path.startswith("/_fake/"):
            self._send(h, self._control_request(req))
            return
        started = time.monotonic()
        with self.lock:
            entry = {"seq": len(self.requests), "time": self.now(), "method": req.method, "path": req.target,
                     "headers": dict(req.headers.items()),
                     "body": body[:LOG_BODY_LIMIT].decode("utf-8", "replace"), "body_length": len(body),
                     "connection": conn_id, "status": None, "fault": None, "duration": None}
            self.requests.append(entry)
            self._api_conns.add(conn_id)
            self.in_flight += 1
            self.max_concurrent = max(self.max_concurrent, self.in_flight)
            fault = self._pick_fault(req)
        try:
            status = self._serve_api(h, req, fault, entry)
        finally:
            with self.lock:
                self.in_flight -= 1
                entry["status"] = status
                entry["duration"] = round(time.monotonic() - started, 6)

    def _pick_fault(self, req):
        """The first armed fault matching req.  Before-kinds are spent now, after-kinds when they fire."""
        for f in self.faults:
            if f.remaining > 0 and f.matches(req):
                if f.kind not in AFTER_KINDS:
                    f.remaining -= 1
                    f.fired += 1
                return f
        return None

    def _serve_api(self, h, req, fault, entry):
        """Answers one API request; returns the status sent, or None when the connection was dropped."""
        if fault is not None and fault.kind not in AFTER_KINDS:
            entry["fault"] = fault.kind
            if fault.kind == "timeout":
                seconds = fault.params.get("seconds")
                if not self._hold(h, None if seconds is None else float(seconds)):
                    self._drop(h)
                    return None
            else:
                resp = self._fault_response(fault, req)
                self._send(h, resp)
                return resp.status
        with self.lock:
            resp = self._route(req)
            fired = None
            if (fault is not None and fault.kind in AFTER_KINDS and 200 <= resp.status < 300
                    and fault.remaining > 0):
                fault.remaining -= 1
                fault.fired += 1
                fired = fault
                entry["fault"] = fault.kind
                resp = self._after_fault(fault, req, resp)
        if fired is not None and fired.kind == "drop_after_accept":
            self._drop(h)
            return None
        if fired is not None and fired.kind == "timeout_after_create":
            seconds = fired.params.get("seconds")
            if not self._hold(h, None if seconds is None else float(seconds)):
                self._drop(h)
                return None
        self._send(h, resp)
        return resp.status

    def _hold(self, h, seconds):
        """Waits `seconds` (None: until stopped); returns False as soon as the client has gone away."""
        deadline = None if seconds is None else time.monotonic() + seconds
        while not self._stopping.is_set():
            left = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
            if left <= 0:
                return True
            readable, _, _ = select.select([h.connection], [], [], left)
            if readable:
                try:
                    if not h.connection.recv(1, socket.MSG_PEEK):
                        return False
                except OSError:
                    return False
                time.sleep(left)
        return False

    def _drop(self, h):
        h.close_connection = True
        try:
            h.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _send(self, h, resp):
        try:
            h.send_response(resp.status)
            h.send_header("Content-Type", resp.content_type)
            h.send_header("Content-Length", str(len(resp.body)))
            for k, v in resp.headers.items():
                h.send_header(k, v)
            if h.close_connection:
                h.send_header("Connection", "close")
            h.end_headers()
            h.wfile.write(resp.body)
        except OSError:
            h.close_connection = True

    def _control_request(self, req):
        name = req.path[len("/_fake/"):].strip("/")
        if req.json_error is not None:
            return Response(400, {"error": "the body is not valid JSON: %s" % req.json_error})
        payload = req.json if req.json is not None else dict(req.form)
        try:
            return Response(200, self.control(req.method, name, payload, req.query))
        except KeyError as e:
            return Response(404, {"error": str(e.args[0] if e.args else e)})
        except ValueError as e:
            return Response(400, {"error": str(e)})

    # ---- what a platform fills in ----

    def _reset_platform(self):
        pass

    def _platform_state(self):
        return {}

    def _control_routes(self, payload):
        return {}

    def _route(self, req):
        raise NotImplementedError

    def _fault_response(self, fault, req):
        p = fault.params
        if fault.kind == "html_502":
            return Response(502, HTML_502, content_type="text/html")
        if fault.kind == "status":
            body = p.get("body", {})
            ctype = p.get("content_type") or ("text/plain; charset=utf-8" if isinstance(body, str)
                                               else "application/json; charset=UTF-8")
            return Response(int(p.get("status", 500)), body, p.get("headers"), content_type=ctype)
        raise ValueError(fault.kind)

    def _after_fault(self, fault, req, resp):
        return resp


# ======================================================================================================
# Facebook Graph API
# ======================================================================================================

FB_POST_FIELDS = {"id", "message", "created_time", "updated_time", "permalink_url", "is_published",
                  "scheduled_publish_time", "status_type", "from", "attachments", "full_picture"}
FB_PHOTO_FIELDS = {"id", "created_time", "name", "link", "published", "images", "page_story_id"}
FB_PAGE_FIELDS = {"id", "name", "link", "category", "fan_count", "followers_count"}
FB_DEPRECATED = {"caption", "description", "link", "name", "object_id", "source", "type"}
FB_THROTTLE_MESSAGES = {
    4: "(#4) Application request limit reached",
    17: "(#17) User request limit reached",
    32: "(#32) Page request limit reached",
    613: "(#613) Calls to this api have exceeded the rate limit.",
    80001: "(#80001) There have been too many calls to this Page account. Wait a bit and try again. For more "
           "info, please refer to https://developers.facebook.com/docs/graph-api/overview/rate-limiting.",
}
IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")


def _fb_time(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(ts))


def _parse_time(value):
    """UNIX seconds or ISO 8601 -> epoch seconds, or None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    value = str(value).strip()
    if re.fullmatch(r"\d{1,12}", value):
        return float(value)
    try:
        d = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (d if d.tzinfo else d.replace(tzinfo=timezone.utc)).timestamp()


def _bool(value, default):
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    v = str(value).strip().lower()
    if v in ("true", "1"):
        return True
    if v in ("false", "0"):
        return False
    raise ValueError(value)


def _cursor(post_id):
    return base64.urlsafe_b64encode(post_id.encode()).decode().rstrip("=")


def _uncursor(cursor):
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None


class FakeFacebook(FakeServer):
    """One Facebook Page.  State (under self.lock): posts {id: post}, photos {id: photo},
    deleted_posts [id], calls (timestamps in the budget window), requests, the connection counters."""

    kind = "facebook"
    defaults = {"token": "fake-facebook-page-token", "token_expired": False, "page_name": "อบต.บ่อแก้ว",
                "version": "v24.0", "limits": True, "call_limit": 4800, "call_window": 86400.0,
                "throttle_code": 80001, "duplicate_check": True}

    def __init__(self, page_id="123456789", token="fake-facebook-page-token", **kw):
        self.page_id = str(page_id)
        super().__init__(token=token, **kw)

    @property
    def base_url(self):
        return "%s/%s" % (self.root_url, self.config["version"])

    def _reset_platform(self):
        self.posts = {}
        self.photos = {}
        self.deleted_posts = []
        self.calls = collections.deque()
        self._next_id = 1

    def _configure(self, changes):
        if "token" in changes and "token_expired" not in changes:
            changes = dict(changes, token_expired=False)   # a new token is a valid one
        self.config.update(changes)

    def published_posts(self):
        """Published, not deleted posts, newest first (copies)."""
        with self.lock:
            return [dict(p) for p in reversed(list(self.posts.values()))
                    if p["is_published"] and not p["deleted"]]

    def _platform_state(self):
        return {"page_id": self.page_id, "posts": list(self.posts.values()),
                "photos": list(self.photos.values()), "deleted_posts": list(self.deleted_posts),
                "published_post_ids": [p["id"] for p in self.published_posts()],
                "calls_in_window": self._calls_in_window()}

    # ---- answers ----

    def _json(self, status, value, headers=None):
        h = {"facebook-api-version": self.config["version"], "x-fb-request-id": secrets.token_urlsafe(12),
             "x-fb-trace-id": secrets.token_urlsafe(8)}
        h.update(headers or {})
        return Response(status, value, h, encode=_json_graph)

    def _error(self, status, code, message, subcode=None, type="OAuthException", headers=None, **extra):
        err = {"message": message, "type": type, "code": code}
        if subcode is not None:
            err["error_subcode"] = subcode
        err.update(extra)
        err["fbtrace_id"] = secrets.token_urlsafe(8)[:11]
        return self._json(status, {"error": err}, headers)

    def _token_error(self, subcode):
        if subcode == 463:
            t = self.now()
            message = ("Error validating access token: Session has expired on %s. The current time is %s." %
                       (time.strftime("%A, %d-%b-%y %H:%M:%S UTC", time.gmtime(t - 3600)),
                        time.strftime("%A, %d-%b-%y %H:%M:%S UTC", time.gmtime(t))))
        else:
            message = "Invalid OAuth access token - Cannot parse access token"
        auth = 'OAuth "Facebook Platform" "invalid_token" "%s"' % message
        return self._error(400, 190, message, subcode, headers={"WWW-Authenticate": auth})

    def _no_object(self, method, obj):
        return self._error(400, 100, "Unsupported %s request. Object with ID '%s' does not exist, cannot be "
                           "loaded due to missing permissions, or does not support this operation. Please read "
                           "the Graph API documentation at https://developers.facebook.com/docs/graph-api" %
                           (method.lower(), obj), 33)

    def _calls_in_window(self):
        cutoff = self.now() - float(self.config["call_window"])
        while self.calls and self.calls[0] <= cutoff:
            self.calls.popleft()
        return len(self.calls)

    def _usage_headers(self, call_count, minutes=0):
        usage = {"type": "pages", "call_count": call_count, "total_cputime": call_count // 2,
                 "total_time": call_count // 2, "estimated_time_to_regain_access": minutes}
        page = {"call_count": call_count, "total_cputime": call_count // 2, "total_time": call_count // 2}
        return {"X-Business-Use-Case-Usage": _json_plain({self.page_id: [usage]}),
                "X-Page-Usage": _json_plain(page)}

    def _throttled(self, code, minutes, call_count=100):
        message = FB_THROTTLE_MESSAGES.get(code, "(#%d) Rate limit reached" % code)
        return self._error(400, code, message, is_transient=True,
                           headers=self._usage_headers(max(100, call_count), minutes))

    def _fault_response(self, fault, req):
        p = fault.params
        if fault.kind == "expired_token":
            return self._token_error(463)
        if fault.kind == "throttle":
            return self._throttled(int(p.get("code", self.config["throttle_code"])), int(p.get("minutes", 1)))
        return super()._fault_response(fault, req)

    def _after_fault(self, fault, req, resp):
        if fault.kind == "500_after_create":
            code = int(fault.params.get("code", 2))
            if code == 1:
                return self._error(500, 1, "An unknown error occurred", 99, is_transient=False)
            return self._error(500, code, "An unexpected error has occurred. Please retry your request later.",
                               is_transient=True)
        return resp

    # ---- routing ----

    def _route(self, req):
        parts = [s for s in req.path.split("/") if s]
        if parts and re.fullmatch(r"v\d+\.\d+", parts[0]):
            parts = parts[1:]
        if req.json_error is not None:
            return self._error(400, 100, "(#100) The request body is not valid JSON")
        p = req.params()
        token = p.get("access_token")
        auth = (req.header("Authorization") or "").split(None, 1)
        if not token and len(auth) == 2 and auth[0].lower() in ("bearer", "oauth"):
            token = auth[1].strip()
        if not token:
            return self._error(400, 104, "An access token is required to request this resource.")
        if self.config["token"] is not None and token != self.config["token"]:
            return self._token_error(467)
        if self.config["token_expired"]:
            return self._token_error(463)
        used = self._calls_in_window()
        limit = max(1, int(self.config["call_limit"]))
        if self.config["limits"] and used >= limit:
            regain = self.calls[0] + float(self.config["call_window"]) - self.now()
            return self._throttled(int(self.config["throttle_code"]), max(1, math.ceil(regain / 60)),
                                   used * 100 // limit)
        self.calls.append(self.now())
        resp = self._dispatch(req, parts, p)
        resp.headers.update(self._usage_headers((used + 1) * 100 // limit))
        return resp

    def _dispatch(self, req, parts, p):
        m = req.method
        if len(parts) == 1 and parts[0] in ("me", self.page_id):
            if m == "GET":
                return self._node(p, self._page_json(), FB_PAGE_FIELDS, {"id", "name"}, "Page")
            return self._no_object(m, parts[0])
        if len(parts) == 2 and parts[0] in ("me", self.page_id):
            edge = parts[1]
            if m == "POST" and edge == "feed":
                return self._create_post(p)
            if m == "POST" and edge == "photos":
                return self._create_photo(req, p)
            if m == "GET" and edge in ("feed", "posts", "published_posts", "scheduled_posts"):
                return self._list_posts(req, p, edge)
            return self._error(400, 2500, "Unknown path components: /%s" % edge)
        if len(parts) == 1:
            obj = parts[0]
            post, photo = self.posts.get(obj), self.photos.get(obj)
            if post is not None and not post["deleted"]:
                if m == "GET":
                    return self._node(p, self._post_json(post), FB_POST_FIELDS,
                                      {"id", "message", "created_time"}, "PagePost", FB_DEPRECATED)
                if m == "POST":
                    return self._edit_post(post, p)
                if m == "DELETE":
                    return self._delete_post(post)
            if photo is not None and not photo["deleted"]:
                if m == "GET":
                    return self._node(p, self._photo_json(photo), FB_PHOTO_FIELDS, {"id", "created_time"},
                                      "Photo")
                if m == "DELETE":
                    if photo["post_id"] and photo["post_id"] in self.posts:
                        return self._delete_post(self.posts[photo["post_id"]])
                    photo["deleted"] = True
                    return self._json(200, {"success": True})
            return self._no_object(m, obj)
        return self._error(400, 2500, "Unknown path components: /%s" % "/".join(parts[1:]))

    def _node(self, p, full, known, default, node_type, deprecated=()):
        wanted = self._fields(p, default)
        for f in wanted:
            if f in deprecated:
                return self._error(400, 12, "(#12) %s field is deprecated for versions v3.3 and higher" % f)
            if f not in known:
                return self._error(400, 100, "(#100) Tried accessing nonexisting field (%s) on node type (%s)" %
                                   (f, node_type))
        return self._json(200, {k: full[k] for k in wanted if full.get(k) is not None})

    def _fields(self, p, default):
        raw = p.get("fields")
        if not raw:
            return sorted(default)
        return [m.group(0) for m in (re.match(r"[A-Za-z_]+", f.strip()) for f in str(raw).split(",")) if m]

    def _page_json(self):
        return {"id": self.page_id, "name": self.config["page_name"], "category": "Government Organization",
                "link": "https://www.facebook.com/%s" % self.page_id, "fan_count": 0, "followers_count": 0}

    def _post_json(self, post):
        out = {k: post.get(k) for k in ("id", "message", "created_time", "updated_time", "permalink_url",
                                        "is_published")}
        out["message"] = post["message"] or None
        out["from"] = {"id": self.page_id, "name": self.config["page_name"]}
        if post["scheduled_publish_time"]:
            out["scheduled_publish_time"] = int(post["scheduled_publish_time"])
        media = [self.photos[i] for i in post["attached_media"] if i in self.photos]
        out["status_type"] = "added_photos" if media else ("shared_story" if post["link"] else
                                                           "mobile_status_update")
        if media:
            out["full_picture"] = media[0]["url"] or "https://scontent.example/%s.jpg" % media[0]["id"]
            out["attachments"] = {"data": [{"type": "album" if len(media) > 1 else "photo", "subattachments": {
                "data": [{"type": "photo", "target": {"id": m["id"]}} for m in media]}}]}
        elif post["link"]:
            out["attachments"] = {"data": [{"type": "share", "url": post["link"]}]}
        return out

    def _photo_json(self, photo):
        return {"id": photo["id"], "created_time": photo["created_time"], "name": photo["caption"] or None,
                "link": "https://www.facebook.com/photo.php?fbid=%s" % photo["id"],
                "published": photo["published"], "page_story_id": photo["post_id"],
                "images": [{"source": photo["url"] or "https://scontent.example/%s.jpg" % photo["id"]}]}

    def _new_id(self):
        self._next_id += 1
        return str(1000000000000000 + self._next_id)

    def _new_post(self, message, link, media, published, scheduled, status):
        n = self._new_id()
        now = self.now()
        post = {"id": "%s_%s" % (self.page_id, n), "message": message or "", "link": link or None,
                "attached_media": list(media), "is_published": published, "scheduled_publish_time": scheduled,
                "created": now, "created_time": _fb_time(now), "updated_time": _fb_time(now),
                "permalink_url": "https://www.facebook.com/%s/posts/%s" % (self.page_id, n),
                "status_type": status, "deleted": False}
        self.posts[post["id"]] = post
        return post

    def _attached_media(self, p):
        """[(index, photo id)] from attached_media[N] fields or a JSON list; or an error Response."""
        items = []
        for key, value in p.items():
            m = re.fullmatch(r"attached_media\[(\d+)\]", key)
            if m:
                items.append((int(m.group(1)), key, value))
        whole = p.get("attached_media")
        if whole is not None:
            if isinstance(whole, str):
                try:
                    whole = json.loads(whole)
                except ValueError:
                    return self._error(400, 100, "(#100) param attached_media must be an array")
            if not isinstance(whole, list):
                return self._error(400, 100, "(#100) param attached_media must be an array")
            items += [(i, "attached_media[%d]" % i, v) for i, v in enumerate(whole)]
        ids = []
        for _, key, value in sorted(items, key=lambda t: t[0]):
            if isinstance(value, str):
                try:
                    value = json.loads(value)
                except ValueError:
                    value = None
            fbid = str(value.get("media_fbid", "")) if isinstance(value, dict) else ""
            if not fbid:
                return self._error(400, 100, "(#100) param %s must be a JSON object with media_fbid" % key)
            photo = self.photos.get(fbid)
            if photo is None or photo["deleted"]:
                return self._error(400, 100, "(#100) %s: media_fbid %s is not a photo of this Page" % (key, fbid))
            if photo["published"]:
                return self._error(400, 100, "(#100) %s: media_fbid %s must be a photo uploaded with "
                                   "published=false" % (key, fbid))
            ids.append(fbid)
        return ids

    def _create_post(self, p):
        message = str(p.get("message") or "")
        link = str(p.get("link") or "")
        media = self._attached_media(p)
        if isinstance(media, Response):
            return media
        if not message and not link and not media:
            return self._error(400, 100, "(#100) Missing message or attachment")
        if link and not re.match(r"https?://[^\s/?#]+\.[^\s/?#]+", link):
            return self._error(400, 100, "(#100) The link URL is not properly formatted")
        try:
            published = _bool(p.get("published"), True)
        except ValueError:
            return self._error(400, 100, "(#100) Param published must be a boolean")
        scheduled = p.get("scheduled_publish_time")
        if scheduled not in (None, ""):
            if published:
                return self._error(400, 100, "(#100) A scheduled post must be created with published=false")
            scheduled = _parse_time(scheduled)
            now = self.now()
            if scheduled is None or not now + 600 <= scheduled <= now + 30 * 86400:
                return self._error(400, 100, "(#100) The specified scheduled publish time is invalid.")
        else:
            scheduled = None
        if self.config["duplicate_check"] and message and not media:
            latest = next((q for q in reversed(list(self.posts.values())) if not q["deleted"]), None)
            if latest is not None and latest["message"] == message:
                return self._error(400, 506, "(#506) Duplicate status message", error_user_title="Duplicate post",
                                   error_user_msg="Duplicate posts cannot be published consecutively. Change "
                                   "the content of the post and try again.")
        status = "added_photos" if media else ("shared_story" if link else "mobile_status_update")
        post = self._new_post(message, link, media, published, scheduled, status)
        return self._json(200, {"id": post["id"]})

    def _create_photo(self, req, p):
        url = str(p.get("url") or "")
        source = req.files.get("source") or req.files.get("file")
        if url and source:
            return self._error(400, 100, "(#100) Give only one of url and source")
        if not url and not source:
            return self._error(400, 324, "(#324) Requires upload file")
        if url and not re.match(r"https?://[^\s/?#]+", url):
            return self._error(400, 100, "(#100) url should represent a valid URL")
        data = source[2] if source else b""
        if source and len(data) >= 10 * 1024 * 1024:
            return self._error(400, 100, "(#100) The photo must be less than 10MB in size")
        if source and not (data.startswith(IMAGE_MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")):
            return self._error(400, 324, "(#324) Missing or invalid image file")
        try:
            published = _bool(p.get("published"), True)
        except ValueError:
            return self._error(400, 100, "(#100) Param published must be a boolean")
        caption = str(p.get("caption") or p.get("message") or "")
        now = self.now()
        photo = {"id": self._new_id(), "caption": caption, "url": url or None, "published": published,
                 "filename": source[0] if source else None, "content_type": source[1] if source else None,
                 "size": len(data), "sha256": hashlib.sha256(data).hexdigest() if source else None,
                 "created": now, "created_time": _fb_time(now), "post_id": None, "deleted": False}
        self.photos[photo["id"]] = photo
        if not published:
            return self._json(200, {"id": photo["id"]})
        post = self._new_post(caption, None, [photo["id"]], True, None, "added_photos")
        photo["post_id"] = post["id"]
        return self._json(200, {"id": photo["id"], "post_id": post["id"]})

    def _edit_post(self, post, p):
        if "message" not in p:
            return self._error(400, 100, "(#100) Nothing to update: give message")
        post["message"] = str(p["message"])
        post["updated_time"] = _fb_time(self.now())
        return self._json(200, {"success": True})

    def _delete_post(self, post):
        post["deleted"] = True
        post["deleted_time"] = _fb_time(self.now())
        self.deleted_posts.append(post["id"])
        for pid in post["attached_media"]:
            if pid in self.photos and self.photos[pid]["post_id"] == post["id"]:
                self.photos[pid]["deleted"] = True
        return self._json(200, {"success": True})

    def _list_posts(self, req, p, edge):
        for f in self._fields(p, ()):
            if f in FB_DEPRECATED:
                return self._error(400, 12, "(#12) %s field is deprecated for versions v3.3 and higher" % f)
            if f not in FB_POST_FIELDS:
                return self._error(400, 100, "(#100) Tried accessing nonexisting field (%s) on node type "
                                   "(PagePost)" % f)
        try:
            limit = min(100, max(1, int(p.get("limit", 25))))
        except ValueError:
            return self._error(400, 100, "(#100) Param limit must be an integer")
        bounds = {}
        for key in ("since", "until"):
            if p.get(key) not in (None, ""):
                bounds[key] = _parse_time(p[key])
                if bounds[key] is None:
                    return self._error(400, 100, "(#100) Param %s must be a valid time" % key)
        scheduled = edge == "scheduled_posts"
        posts = [q for q in reversed(list(self.posts.values())) if not q["deleted"] and
                 (q["is_published"] if not scheduled else q["scheduled_publish_time"] and not q["is_published"])
                 and q["created"] >= bounds.get("since", -1e18) and q["created"] <= bounds.get("until", 1e18)]
        start = 0
        if p.get("after"):
            after = _uncursor(str(p["after"]))
            ids = [q["id"] for q in posts]
            start = ids.index(after) + 1 if after in ids else len(posts)
        page = posts[start:start + limit]
        fields = self._fields(p, {"id", "message", "created_time"})
        data = []
        for q in page:
            full = self._post_json(q)
            data.append({k: full[k] for k in fields if full.get(k) is not None})
        out = {"data": data}
        if page:
            out["paging"] = {"cursors": {"before": _cursor(page[0]["id"]), "after": _cursor(page[-1]["id"])}}
            if start + limit < len(posts):
                q = dict(req.query, after=_cursor(page[-1]["id"]), limit=str(limit))
                host = req.header("Host") or "%s:%d" % (self.host, self.port)
                out["paging"]["next"] = "http://%s%s?%s" % (host, req.path, urlencode(q))
        return self._json(200, out)


# ======================================================================================================
# LINE Messaging API
# ======================================================================================================

LINE_AUTH_FAILED = ("Authentication failed due to the following reason: invalid token. Confirm that the access "
                    "token in the authorization header is valid.")
LINE_AUTH_MISSING = "Authorization header required. Must follow the scheme, 'Authorization: Bearer <ACCESS TOKEN>'"
LINE_RATE = "The API rate limit has been exceeded. Try again later."
LINE_QUOTA = "You have reached your monthly limit."
LINE_MAX_BODY = 2 * 1024 * 1024
UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
LINE_ID_RE = re.compile(r"[UCR][0-9a-f]{32}")
SEND_KINDS = {"/v2/bot/message/broadcast": "broadcast", "/v2/bot/message/narrowcast": "narrowcast",
              "/v2/bot/message/push": "push", "/v2/bot/message/multicast": "multicast"}
MESSAGE_TYPES = {"text", "textV2", "image", "video", "audio", "flex", "template", "imagemap", "sticker",
                 "location", "coupon"}
NARROWCAST_ERRORS = {1: "An internal error occurred.", 2: "There were not enough recipients.",
                     3: "A request with the same retry key was already accepted.",
                     4: "An audience has fewer than 50 recipients.",
                     5: "Cancelled: the delivery would have been partial (forbidPartialDelivery)."}


def utf16_len(s):
    return len(s.encode("utf-16-le")) // 2


def _line_time(ts):
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Reject(Exception):
    def __init__(self, status, message, details=None):
        super().__init__(message)
        self.status, self.message, self.details = status, message, details


class FakeLine(FakeServer):
    """One LINE Official Account channel.  State (under self.lock): sent [accepted sends], usage,
    audiences {id: audience}, narrowcasts {request id: job}, retry_keys {endpoint: {key: record}},
    requests, the connection counters."""

    kind = "line"
    fault_kinds = FAULT_KINDS | {"quota_exceeded", "narrowcast_failed"}
    defaults = {"token": "fake-line-channel-token", "token_expired": False, "quota": None, "usage": 0,
                "friends": 10, "limits": True, "rate_per_hour": 60, "narrowcast_waiting": 1.0,
                "narrowcast_sending": 1.0, "audience_ready_seconds": 0.5, "retry_key_ttl": 86400.0,
                "progress_ttl": 14 * 86400.0, "bot_name": "อบต.บ่อแก้ว"}

    def __init__(self, token="fake-line-channel-token", quota=None, friends=10, **kw):
        super().__init__(token=token, quota=quota, friends=friends, **kw)

    def _reset_platform(self):
        self.sent = []
        self.usage = int(self.config["usage"])
        self.audiences = {}
        self.narrowcasts = {}
        self.retry_keys = {}
        self._narrowcast_users = {}
        self._buckets = {}
        self._next_audience = 1234567890123

    def _configure(self, changes):
        if "token" in changes and "token_expired" not in changes:
            changes = dict(changes, token_expired=False)
        if "usage" in changes:
            self.usage = int(changes["usage"])
        self.config.update(changes)

    def sent_by_kind(self):
        with self.lock:
            counts = collections.Counter(s["kind"] for s in self.sent)
            return {k: counts.get(k, 0) for k in ("broadcast", "narrowcast", "push", "multicast")}

    def add_audience(self, userIds, description=None, ready=True):
        """An uploaded-user-ID audience, READY at once unless ready=False; returns its audienceGroupId."""
        with self.lock:
            aud = self._new_audience(description or "audience %d" % (len(self.audiences) + 1), userIds, None)
            if ready:
                aud["ready_at"] = self.now()
            return aud["audienceGroupId"]

    def fail_narrowcast(self, requestId, errorCode=1, description=None):
        """Makes an accepted narrowcast end `failed` (its quota reservation is given back)."""
        with self.lock:
            job = self.narrowcasts.get(requestId)
            if job is None:
                raise KeyError("no narrowcast %s" % requestId)
            if job["failure"] is None:
                self.usage -= job["cost"]
            job["failure"] = {"errorCode": int(errorCode),
                              "failedDescription": description or NARROWCAST_ERRORS.get(int(errorCode), "failed")}
            return dict(job)

    def narrowcast_progress(self, requestId):
        with self.lock:
            job = self.narrowcasts.get(requestId)
            return None if job is None else self._progress(job)

    def _platform_state(self):
        return {"sent": self.sent, "sent_by_kind": self.sent_by_kind(), "usage": self.usage,
                "quota": self.config["quota"],
                "audiences": [dict(self._audience_json(a), userIds=a["_users"]) for a in self.audiences.values()],
                "narrowcasts": [dict(j, progress=self._progress(j)) for j in self.narrowcasts.values()],
                "retry_keys": {ep: sorted(keys) for ep, keys in self.retry_keys.items()}}

    def _control_routes(self, payload):
        return {("POST", "audience"): lambda: {"audienceGroupId": self.add_audience(**payload)},
                ("POST", "narrowcast-fail"): lambda: self.fail_narrowcast(**payload)}

    # ---- answers ----

    def _json(self, status, value, headers=None, req=None):
        h = {"x-line-request-id": req.request_id if req is not None and req.request_id else str(uuid.uuid4())}
        h.update(headers or {})
        return Response(status, value, h, content_type="application/json")

    def _error(self, status, message, details=None, req=None, headers=None):
        body = {"message": message}
        if details:
            body["details"] = [{"message": m, "property": p} for m, p in details]
        return self._json(status, body, headers, req)

    def _fault_response(self, fault, req):
        if fault.kind == "expired_token":
            return self._error(401, LINE_AUTH_FAILED)
        if fault.kind == "throttle":
            return self._error(429, LINE_RATE)
        if fault.kind == "quota_exceeded":
            return self._error(429, LINE_QUOTA)
        resp = super()._fault_response(fault, req)
        if fault.kind == "status":
            resp.headers.setdefault("x-line-request-id", str(uuid.uuid4()))
        return resp

    def _after_fault(self, fault, req, resp):
        if fault.kind == "500_after_create":
            return self._error(500, "Internal server error", req=req)
        if fault.kind == "narrowcast_failed" and req.path == "/v2/bot/message/narrowcast":
            self.fail_narrowcast(req.request_id, fault.params.get("error_code", 1),
                                 fault.params.get("description"))
        return resp

    # ---- routing ----

    def _route(self, req):
        req.request_id = str(uuid.uuid4())
        try:
            return self._route_checked(req)
        except _Reject as r:
            return self._error(r.status, r.message, r.details, req)

    def _route_checked(self, req):
        path, m = req.path, req.method
        handler = self._handler_for(m, path)
        if handler is None:
            raise _Reject(404, "Not found")
        auth = (req.header("Authorization") or "").split(None, 1)
        if len(auth) != 2 or auth[0].lower() != "bearer":
            raise _Reject(401, LINE_AUTH_MISSING)
        if auth[1].strip() != self.config["token"] or self.config["token_expired"]:
            raise _Reject(401, LINE_AUTH_FAILED)
        key = req.header("X-Line-Retry-Key")
        if key is not None:
            if not (m == "POST" and path in SEND_KINDS):
                raise _Reject(400, "The retry key is not supported for this endpoint")
            if not UUID_RE.fullmatch(key.strip()):
                raise _Reject(400, "The value of the X-Line-Retry-Key header is not a valid UUID")
        if not self._take_token("%s %s" % (m, path)):
            raise _Reject(429, LINE_RATE)
        return handler(req)

    def _handler_for(self, m, path):
        if path.endswith("/"):
            return None
        table = {("POST", p): (lambda r, k=k: self._send_messages(r, k)) for p, k in SEND_KINDS.items()}
        table.update({
            ("GET", "/v2/bot/message/quota"): self._quota,
            ("GET", "/v2/bot/message/quota/consumption"):
                lambda r: self._json(200, {"totalUsage": self.usage}),
            ("GET", "/v2/bot/message/progress/narrowcast"): self._progress_call,
            ("GET", "/v2/bot/info"): self._bot_info,
            ("POST", "/v2/bot/audienceGroup/upload"): self._audience_upload,
            ("PUT", "/v2/bot/audienceGroup/upload"): self._audience_add,
            ("GET", "/v2/bot/audienceGroup/list"): self._audience_list,
        })
        if (m, path) in table:
            return table[(m, path)]
        v = re.fullmatch(r"/v2/bot/message/validate/(reply|push|multicast|narrowcast|broadcast)", path)
        if v and m == "POST":
            return self._validate_only
        a = re.fullmatch(r"/v2/bot/audienceGroup/(\d+)", path)
        if a and m in ("GET", "DELETE"):
            return lambda r: self._audience_get(r, int(a.group(1)))
        return None

    def _take_token(self, endpoint):
        """Token buckets per endpoint (the reference: limits ignore contents; each attempt counts)."""
        if not self.config["limits"]:
            return True
        kind = SEND_KINDS.get(endpoint.split(" ", 1)[1]) if endpoint.startswith("POST ") else None
        if kind in ("broadcast", "narrowcast"):
            capacity, period = float(self.config["rate_per_hour"]), 3600.0
        elif kind == "multicast":
            capacity, period = 200.0, 1.0
        elif "/audienceGroup" in endpoint:
            capacity, period = 60.0, 60.0
        else:
            capacity, period = 2000.0, 1.0
        now = self.now()
        tokens, last = self._buckets.get(endpoint, (capacity, now))
        tokens = min(capacity, tokens + (now - last) * capacity / period)
        if tokens < 1:
            self._buckets[endpoint] = (tokens, now)
            return False
        self._buckets[endpoint] = (tokens - 1, now)
        return True

    def _body(self, req):
        if req.content_type != "application/json":
            raise _Reject(400, "The content type, %s, is not supported" % (req.content_type or "(none)"))
        if len(req.body) > LINE_MAX_BODY:
            raise _Reject(413, "Request entity too large")
        if req.json_error is not None:
            e = req.json_error
            raise _Reject(400, "The request body could not be parsed as JSON (line: %s, column: %s)" %
                          (getattr(e, "lineno", 1), getattr(e, "colno", 1)))
        if not isinstance(req.json, dict):
            raise _Reject(400, "The request body could not be parsed as JSON (line: 1, column: 1)")
        return req.json

    # ---- validation (reference B5) ----

    def _validate_messages(self, messages, errors):
        if messages is None:
            errors.append(("must be specified", "messages"))
            return
        if not isinstance(messages, list) or not 1 <= len(messages) <= 5:
            errors.append(("Size must be between 1 and 5", "messages"))
            return
        for i, msg in enumerate(messages):
            prop = "messages[%d]" % i
            if not isinstance(msg, dict):
                errors.append(("must be an object", prop))
                continue
            t = msg.get("type")
            if not t:
                errors.append(("May not be empty", prop + ".type"))
            elif t not in MESSAGE_TYPES:
                errors.append(("Invalid message type", prop + ".type"))
            elif t in ("text", "textV2"):
                self._check_text(msg, "text", prop, 5000, errors)
            elif t in ("image", "video"):
                self._check_https(msg, "originalContentUrl", prop, errors)
                self._check_https(msg, "previewImageUrl", prop, errors)
            elif t == "audio":
                self._check_https(msg, "originalContentUrl", prop, errors)
            elif t in ("flex", "template", "imagemap"):
                self._check_text(msg, "altText", prop, 1500, errors)
                if t == "flex":
                    self._check_flex(msg.get("contents"), prop + ".contents", errors)
            elif t == "location":
                for k in ("title", "address"):
                    self._check_text(msg, k, prop, 100, errors)
            elif t == "sticker":
                for k in ("packageId", "stickerId"):
                    if not msg.get(k):
                        errors.append(("May not be empty", "%s.%s" % (prop, k)))
            items = (msg.get("quickReply") or {}).get("items") if isinstance(msg.get("quickReply"), dict) else None
            if items is not None and (not isinstance(items, list) or len(items) > 13):
                errors.append(("Size must be between 1 and 13", prop + ".quickReply.items"))
            sender = msg.get("sender")
            if isinstance(sender, dict):
                if isinstance(sender.get("name"), str) and utf16_len(sender["name"]) > 20:
                    errors.append(("Length must be between 1 and 20", prop + ".sender.name"))
                if sender.get("iconUrl") is not None:
                    self._check_https(sender, "iconUrl", prop + ".sender", errors)

    def _check_text(self, obj, key, prop, limit, errors):
        value = obj.get(key)
        if not isinstance(value, str) or value == "":
            errors.append(("May not be empty", "%s.%s" % (prop, key)))
        elif utf16_len(value) > limit:
            errors.append(("Length must be between 0 and %d" % limit, "%s.%s" % (prop, key)))

    def _check_https(self, obj, key, prop, errors):
        value = obj.get(key)
        if not isinstance(value, str) or value == "":
            errors.append(("May not be empty", "%s.%s" % (prop, key)))
        elif len(value) > 2000:
            errors.append(("Length must be between 0 and 2000", "%s.%s" % (prop, key)))
        elif not re.match(r"https://[^\s/?#]+", value, re.I):
            errors.append(("Must be a valid HTTPS URL", "%s.%s" % (prop, key)))

    def _check_flex(self, contents, prop, errors):
        if not isinstance(contents, dict) or contents.get("type") not in ("bubble", "carousel"):
            errors.append(("must be a bubble or carousel container", prop))
            return
        size = len(_json_plain(contents).encode("utf-8"))
        if contents["type"] == "bubble" and size > 30 * 1024:
            errors.append(("The bubble must be 30 KB or less", prop))
        if contents["type"] == "carousel":
            bubbles = contents.get("contents")
            if not isinstance(bubbles, list) or not 1 <= len(bubbles) <= 12:
                errors.append(("Size must be between 1 and 12", prop + ".contents"))
            elif size > 50 * 1024:
                errors.append(("The carousel must be 50 KB or less", prop))

    def _reject_errors(self, errors):
        if errors:
            raise _Reject(400, "The request body has %d error(s)" % len(errors), errors)

    # ---- sending ----

    def _send_messages(self, req, kind):
        key = (req.header("X-Line-Retry-Key") or "").strip().lower() or None
        now = self.now()
        if key is not None:
            record = self.retry_keys.get(req.path, {}).get(key)
            if record is not None and now - record["time"] < float(self.config["retry_key_ttl"]):
                body = {"message": "The retry key is already accepted"}
                if kind == "push":
                    body["sentMessages"] = record["sentMessages"]
                return self._json(409, body, {"x-line-accepted-request-id": record["request_id"]}, req)
        body = self._body(req)
        errors = []
        self._validate_messages(body.get("messages"), errors)
        recipients, cost, users = None, 0, None
        if kind == "broadcast":
            cost = int(self.config["friends"])
        elif kind == "push":
            to = body.get("to")
            if not isinstance(to, str) or not to:
                errors.append(("must be specified", "to"))
            self._reject_errors(errors)
            if not LINE_ID_RE.fullmatch(to):
                raise _Reject(400, "Failed to send messages")
            recipients, cost = to, 1
        elif kind == "multicast":
            to = body.get("to")
            if not isinstance(to, list) or not 1 <= len(to) <= 500:
                errors.append(("Size must be between 1 and 500", "to"))
            self._reject_errors(errors)
            if not all(isinstance(u, str) and LINE_ID_RE.fullmatch(u) and u[0] == "U" for u in to):
                raise _Reject(400, "Failed to send messages")
            recipients, cost = list(to), len(set(to))
        self._reject_errors(errors)
        failure = None
        if kind == "narrowcast":
            recipients, users, cost, failure = self._narrowcast_target(body)
        quota = self.config["quota"]
        if quota is not None and self.usage + cost > int(quota):
            raise _Reject(429, LINE_QUOTA)
        # Accepted: from here the send happened, whatever the client hears about it.
        sent_messages = [{"id": str(secrets.randbelow(9 * 10 ** 17) + 10 ** 17), "quoteToken":
                          secrets.token_urlsafe(24)} for _ in body["messages"]] if kind == "push" else None
        self.sent.append({"kind": kind, "request_id": req.request_id, "retry_key": key, "time": now,
                          "messages": body["messages"], "to": recipients, "cost": cost,
                          "notificationDisabled": bool(body.get("notificationDisabled", False))})
        self.usage += cost
        if key is not None:
            self.retry_keys.setdefault(req.path, {})[key] = {"request_id": req.request_id, "time": now,
                                                            "sentMessages": sent_messages}
        if kind == "narrowcast":
            self.narrowcasts[req.request_id] = {"requestId": req.request_id, "accepted": now, "cost": cost,
                                                "targetCount": cost, "failure": None}
            self._narrowcast_users[req.request_id] = users
            if failure is not None:
                self.fail_narrowcast(req.request_id, failure)
            return self._json(202, {}, req=req)
        if kind == "push":
            return self._json(200, {"sentMessages": sent_messages}, req=req)
        return self._json(200, {}, req=req)

    def _narrowcast_target(self, body):
        """(recipient, users or None, target count, errorCode or None) of a narrowcast request."""
        recipient, limit = body.get("recipient"), body.get("limit")
        counter = [0]
        users = None
        if recipient is not None:
            users = self._recipient_users(recipient, "recipient", counter)
            if counter[0] > 10:
                raise _Reject(400, "The request body has 1 error(s)",
                              [("Size must be between 0 and 10", "recipient")])
            target = len(users)
        else:
            target = int(self.config["friends"])
        if body.get("filter") is not None:
            if not isinstance(body["filter"], dict):
                raise _Reject(400, "The request body has 1 error(s)", [("must be an object", "filter")])
            if target < 100:
                raise _Reject(403, "Your account does not have enough friends")
        failure = None
        if limit is not None:
            if not isinstance(limit, dict):
                raise _Reject(400, "The request body has 1 error(s)", [("must be an object", "limit")])
            if limit.get("forbidPartialDelivery") and not limit.get("upToRemainingQuota"):
                raise _Reject(400, "The option forbidPartialDelivery must be used with upToRemainingQuota.")
            if isinstance(limit.get("max"), int) and limit["max"] >= 1:
                target = min(target, limit["max"])
            quota = self.config["quota"]
            if limit.get("upToRemainingQuota") and quota is not None:
                remaining = max(0, int(quota) - self.usage)
                if remaining < target:
                    if limit.get("forbidPartialDelivery"):
                        failure = 5
                    target = remaining
        if target == 0 and failure is None:
            failure = 2
        return recipient, users, target, failure

    def _recipient_users(self, r, prop, counter):
        if not isinstance(r, dict):
            raise _Reject(400, "The request body has 1 error(s)", [("must be an object", prop)])
        t = r.get("type")
        if t == "audience":
            counter[0] += 1
            gid = r.get("audienceGroupId")
            aud = self.audiences.get(gid) if isinstance(gid, int) else None
            if aud is None or self._audience_status(aud) != "READY":
                raise _Reject(400, "Invalid audience group id: %s" % gid)
            return set(aud["_users"])
        if t == "redelivery":
            counter[0] += 1
            rid = r.get("requestId")
            if rid not in self.narrowcasts:
                raise _Reject(400, "Invalid request id: %s" % rid)
            users = self._narrowcast_users.get(rid)
            return set(users) if users is not None else self._universe()
        if t == "operator":
            ops = [k for k in ("and", "or", "not") if k in r]
            if len(ops) != 1 or (ops[0] != "not" and not (isinstance(r[ops[0]], list) and r[ops[0]])):
                raise _Reject(400, "The request body has 1 error(s)",
                              [("exactly one of and, or, not must be given, and not empty", prop)])
            op = ops[0]
            if op == "not":
                return self._universe() - self._recipient_users(r["not"], prop + ".not", counter)
            sets = [self._recipient_users(x, "%s.%s[%d]" % (prop, op, i), counter) for i, x in enumerate(r[op])]
            return set.intersection(*sets) if op == "and" else set.union(*sets)
        raise _Reject(400, "The request body has 1 error(s)", [("Invalid recipient type", prop + ".type")])

    def _universe(self):
        """All friends: every user of every audience, padded with made-up ids up to `friends`."""
        users = set()
        for aud in self.audiences.values():
            users |= set(aud["_users"])
        n = 0
        while len(users) < int(self.config["friends"]):
            users.add("U%032x" % (0xfade0000 + n))
            n += 1
        return users

    def _validate_only(self, req):
        body = self._body(req)
        errors = []
        self._validate_messages(body.get("messages"), errors)
        self._reject_errors(errors)
        return self._json(200, {}, req=req)

    # ---- reading ----

    def _quota(self, req):
        quota = self.config["quota"]
        return self._json(200, {"type": "none"} if quota is None else {"type": "limited", "value": int(quota)},
                          req=req)

    def _bot_info(self, req):
        return self._json(200, {"userId": "U" + hashlib.md5(str(self.config["token"]).encode()).hexdigest(),
                                "basicId": "@123bokaeo", "displayName": self.config["bot_name"],
                                "chatMode": "bot", "markAsReadMode": "manual"}, req=req)

    def _progress(self, job):
        elapsed = self.now() - job["accepted"]
        waiting, sending = float(self.config["narrowcast_waiting"]), float(self.config["narrowcast_sending"])
        out = {"acceptedTime": _line_time(job["accepted"])}
        if elapsed < waiting:
            out["phase"] = "waiting"
        elif elapsed < waiting + sending:
            out.update(phase="sending", targetCount=job["targetCount"])
        else:
            out["completedTime"] = _line_time(job["accepted"] + waiting + sending)
            if job["failure"] is not None:
                out.update(phase="failed", successCount=0, failureCount=job["targetCount"],
                           targetCount=job["targetCount"], **job["failure"])
            else:
                out.update(phase="succeeded", successCount=job["targetCount"], failureCount=0,
                           targetCount=job["targetCount"])
        return out

    def _progress_call(self, req):
        rid = req.query.get("requestId")
        if not rid:
            raise _Reject(400, "The value for the 'requestId' parameter is invalid")
        job = self.narrowcasts.get(rid)
        if job is None or self.now() - job["accepted"] > float(self.config["progress_ttl"]):
            raise _Reject(404, "Not found")
        return self._json(200, self._progress(job), req=req)

    # ---- audiences (reference B9) ----

    def _new_audience(self, description, user_ids, upload_description):
        now = self.now()
        gid = self._next_audience
        self._next_audience += 1
        aud = {"audienceGroupId": gid, "type": "UPLOAD", "description": description, "created": int(now),
               "createRoute": "MESSAGING_API", "permission": "READ_WRITE", "isIfaAudience": False,
               "expireTimestamp": int(now) + 180 * 86400, "uploadDescription": upload_description,
               "ready_at": now + float(self.config["audience_ready_seconds"]), "_users": list(dict.fromkeys(user_ids))}
        self.audiences[gid] = aud
        return aud

    def _audience_status(self, aud):
        return "READY" if self.now() >= aud["ready_at"] else "IN_PROGRESS"

    def _audience_json(self, aud):
        out = {k: v for k, v in aud.items() if not k.startswith("_") and k != "ready_at"}
        out.update(status=self._audience_status(aud), audienceCount=len(aud["_users"]))
        return out

    def _audience_ids(self, body):
        audiences = body.get("audiences") or []
        if not isinstance(audiences, list) or len(audiences) > 10000:
            raise _Reject(400, "The request body has 1 error(s)", [("Size must be between 0 and 10000",
                                                                     "audiences")])
        ids = [a.get("id") for a in audiences if isinstance(a, dict)]
        if len(ids) != len(audiences) or not all(isinstance(i, str) and i for i in ids):
            raise _Reject(400, "The request body has 1 error(s)", [("May not be empty", "audiences[].id")])
        return ids

    def _audience_upload(self, req):
        body = self._body(req)
        description = body.get("description")
        if not isinstance(description, str) or not 1 <= len(description) <= 120:
            raise _Reject(400, "The request body has 1 error(s)",
                          [("Length must be between 1 and 120", "description")])
        if any(a["description"].lower() == description.lower() for a in self.audiences.values()):
            raise _Reject(400, "The audience group description is already in use")
        aud = self._new_audience(description, self._audience_ids(body), body.get("uploadDescription"))
        return self._json(202, {k: v for k, v in self._audience_json(aud).items()
                                if k not in ("status", "audienceCount", "uploadDescription")}, req=req)

    def _audience_add(self, req):
        body = self._body(req)
        aud = self.audiences.get(body.get("audienceGroupId"))
        if aud is None:
            raise _Reject(400, "Invalid audience group id: %s" % body.get("audienceGroupId"))
        aud["_users"] = list(dict.fromkeys(aud["_users"] + self._audience_ids(body)))
        aud["ready_at"] = self.now() + float(self.config["audience_ready_seconds"])
        return self._json(202, {}, req=req)

    def _audience_get(self, req, gid):
        aud = self.audiences.get(gid)
        if aud is None:
            raise _Reject(404, "Not found")
        if req.method == "DELETE":
            del self.audiences[gid]
            return self._json(200, {}, req=req)
        job = {"audienceGroupJobId": gid + 1, "audienceGroupId": gid, "type": "DIFF_ADD",
               "jobStatus": "FINISHED" if self._audience_status(aud) == "READY" else "WORKING",
               "audienceCount": len(aud["_users"]), "created": aud["created"]}
        return self._json(200, {"audienceGroup": self._audience_json(aud), "jobs": [job]}, req=req)

    def _audience_list(self, req):
        groups = [self._audience_json(a) for a in self.audiences.values()]
        return self._json(200, {"audienceGroups": groups, "hasNextPage": False, "totalCount": len(groups),
                                "page": 1, "size": max(1, len(groups))}, req=req)


# ======================================================================================================
# Command line
# ======================================================================================================

def _read_token(path):
    with open(path, "r", encoding="utf-8") as f:
        return f.read().strip()


def main(argv=None):
    ap = argparse.ArgumentParser(description="Fake Facebook Graph and LINE Messaging API servers for prakat's "
                                             "tests; control API under /_fake/ on each.")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--facebook-port", type=int, default=0)
    ap.add_argument("--line-port", type=int, default=0)
    ap.add_argument("--page-id", default="123456789")
    ap.add_argument("--version", default="v24.0", help="Graph API version in the printed base URL")
    ap.add_argument("--facebook-token", default="fake-facebook-page-token")
    ap.add_argument("--line-token", default="fake-line-channel-token")
    ap.add_argument("--token-file", help="one token file for both servers")
    ap.add_argument("--facebook-token-file")
    ap.add_argument("--line-token-file")
    ap.add_argument("--quota", type=int, default=None, help="LINE monthly quota (default: none)")
    ap.add_argument("--friends", type=int, default=10, help="LINE friends (the cost of one broadcast)")
    ap.add_argument("--rate-per-hour", type=int, default=60, help="LINE broadcast/narrowcast requests an hour")
    ap.add_argument("--call-limit", type=int, default=4800, help="Facebook calls per --call-window seconds")
    ap.add_argument("--call-window", type=float, default=86400.0)
    ap.add_argument("--narrowcast-seconds", type=float, default=1.0, help="waiting, then sending, for as long")
    ap.add_argument("--no-limits", action="store_true", help="no Facebook budget, no LINE rate limits")
    ap.add_argument("--urls-file", help="also write the printed lines to this file")
    args = ap.parse_args(argv)

    fb_token, line_token = args.facebook_token, args.line_token
    if args.token_file:
        fb_token = line_token = _read_token(args.token_file)
    if args.facebook_token_file:
        fb_token = _read_token(args.facebook_token_file)
    if args.line_token_file:
        line_token = _read_token(args.line_token_file)
    limits = not args.no_limits
    fb = FakeFacebook(page_id=args.page_id, token=fb_token, host=args.host, port=args.facebook_port,
                      version=args.version, limits=limits, call_limit=args.call_limit,
                      call_window=args.call_window)
    line = FakeLine(token=line_token, quota=args.quota, friends=args.friends, host=args.host,
                    port=args.line_port, limits=limits, rate_per_hour=args.rate_per_hour,
                    narrowcast_waiting=args.narrowcast_seconds, narrowcast_sending=args.narrowcast_seconds)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    fb.start()
    line.start()
    lines = ["FAKE_FACEBOOK_API_BASE=%s" % fb.base_url, "FAKE_FACEBOOK_CONTROL=%s" % fb.control_url,
             "FAKE_LINE_API_BASE=%s" % line.base_url, "FAKE_LINE_CONTROL=%s" % line.control_url]
    if args.urls_file:
        tmp = args.urls_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        os.rename(tmp, args.urls_file)
    print("\n".join(lines), flush=True)
    while not stop.wait(0.5):
        pass
    fb.stop()
    line.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
