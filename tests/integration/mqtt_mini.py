"""mqtt_mini: a small MQTT 3.1.1 client and a private mosquitto broker, for tests (Python standard library).

The client speaks just what prakat's tests need: CONNECT (clean session or a persistent one, will,
user name and password), SUBSCRIBE at QoS 0 or 1, PUBLISH at QoS 0 or 1 with or without retain (QoS 1
waits for the PUBACK), PUBACK for what it receives at QoS 1, PINGREQ while idle, DISCONNECT.  One thread
per client reads the socket; received messages are kept in order and can be waited for.

    from mqtt_mini import Broker, MqttClient

    broker = Broker("/tmp/somewhere").start()          # mosquitto on 127.0.0.1, a free port
    c = MqttClient("127.0.0.1", broker.port, "observer").connect()
    c.subscribe("bokaeo/tower/village/3/ack", qos=1)
    c.publish("bokaeo/tower/village/3/announce", b'{"v":1,...}', qos=1)
    m = c.wait_for(lambda m: m.topic.endswith("/ack") and m.json().get("state") == "played", timeout=20)
    c.disconnect()
    broker.stop()

A thousand simulated towers are a thousand MqttClient objects (each with its own thread); nothing here
is global.  TLS: pass ssl_context (an ssl.SSLContext; the host name is checked against the certificate).
QoS 2 is not implemented.
"""

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time

__all__ = ["Broker", "Message", "MqttClient", "MqttError", "free_port", "wait_port"]

CONNECT, CONNACK, PUBLISH, PUBACK = 1, 2, 3, 4
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK = 8, 9, 10, 11
PINGREQ, PINGRESP, DISCONNECT = 12, 13, 14

CONNACK_REASONS = {
    1: "unacceptable protocol version", 2: "identifier rejected", 3: "server unavailable",
    4: "bad user name or password", 5: "not authorized",
}


class MqttError(Exception):
    pass


class Message:
    """A PUBLISH received: topic (str), payload (bytes), qos, retain, dup, and when it arrived (monotonic)."""

    __slots__ = ("topic", "payload", "qos", "retain", "dup", "received")

    def __init__(self, topic, payload, qos, retain, dup):
        self.topic, self.payload, self.qos, self.retain, self.dup = topic, payload, qos, retain, dup
        self.received = time.monotonic()

    def text(self):
        return self.payload.decode("utf-8", "replace")

    def json(self):
        """The payload as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.payload.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return None

    def __repr__(self):
        return "Message(%r, %r%s)" % (self.topic, self.payload[:200], ", retain" if self.retain else "")


def mqtt_string(s):
    """A length-prefixed UTF-8 string of the MQTT wire format (also used by tests/bench/bench_towers.py)."""
    b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    return struct.pack(">H", len(b)) + b


def remaining_length(n):
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def packet(kind, flags, body):
    return bytes([(kind << 4) | flags]) + remaining_length(len(body)) + body


class MqttClient:
    """One MQTT 3.1.1 connection.  Thread-safe: publish/subscribe may be called from any thread.

    auto_puback=False leaves incoming QoS 1 messages unacknowledged (to test redelivery)."""

    def __init__(self, host, port, client_id, clean_session=True, keepalive=30, username=None, password=None,
                 will=None, auto_puback=True, ssl_context=None):
        self.host, self.port, self.client_id = host, port, client_id
        self.clean_session, self.keepalive = clean_session, keepalive
        self.username, self.password = username, password
        self.will = will  # (topic, payload bytes, qos, retain) or None
        self.auto_puback = auto_puback
        self.ssl_context = ssl_context
        self.sock = None
        self.session_present = False
        self._send_lock = threading.Lock()
        self._cond = threading.Condition()
        self._messages = []
        self._acked = set()     # packet ids of PUBACK/SUBACK received
        self._next_pid = 0
        self._reader = None
        self._closed = True
        self._last_send = time.monotonic()
        self.error = None       # why the reader stopped, if not by disconnect()

    # ---- connection ----

    def connect(self, timeout=10):
        """Opens the connection and waits for CONNACK; raises MqttError if refused.  Returns self."""
        flags = 0x02 if self.clean_session else 0
        payload = mqtt_string(self.client_id)
        if self.will:
            topic, message, qos, retain = self.will
            flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
            payload += mqtt_string(topic) + mqtt_string(message)
        if self.username is not None:
            flags |= 0x80
            payload += mqtt_string(self.username)
        if self.password is not None:
            flags |= 0x40
            payload += mqtt_string(self.password)
        body = mqtt_string("MQTT") + bytes([4, flags]) + struct.pack(">H", self.keepalive) + payload
        self.sock = socket.create_connection((self.host, self.port), timeout=timeout)
        if self.ssl_context is not None:
            self.sock = self.ssl_context.wrap_socket(self.sock, server_hostname=self.host)
        self.sock.settimeout(timeout)
        self._send(packet(CONNECT, 0, body))
        kind, _, data = self._read_packet()
        if kind != CONNACK or len(data) != 2:
            self.sock.close()
            raise MqttError("expected CONNACK, got packet type %d" % kind)
        if data[1] != 0:
            self.sock.close()
            raise MqttError("connection refused: %s" % CONNACK_REASONS.get(data[1], data[1]))
        self.session_present = bool(data[0] & 1)
        self._closed = False
        self.error = None
        self.sock.settimeout(0.2)
        self._reader = threading.Thread(target=self._read_loop, name="mqtt-%s" % self.client_id, daemon=True)
        self._reader.start()
        return self

    def disconnect(self):
        """Sends DISCONNECT (the broker then does not publish the will) and closes."""
        if self._closed:
            return
        try:
            self._send(packet(DISCONNECT, 0, b""))
        except OSError:
            pass
        self.close()

    def close(self):
        """Closes the socket without DISCONNECT (the broker publishes the will)."""
        self._closed = True
        if self.sock:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()
        if self._reader and self._reader is not threading.current_thread():
            self._reader.join(timeout=5)
        with self._cond:
            self._cond.notify_all()

    @property
    def connected(self):
        return not self._closed

    # ---- operations ----

    def subscribe(self, topic, qos=1, timeout=10):
        """Subscribes to one topic filter and waits for SUBACK; returns the granted QoS."""
        pid = self._pid()
        self._send(packet(SUBSCRIBE, 0x02, struct.pack(">H", pid) + mqtt_string(topic) + bytes([qos])))
        self._wait_ack(("sub", pid), timeout, "SUBACK for %s" % topic)
        return qos

    def publish(self, topic, payload, qos=0, retain=False, timeout=10):
        """Publishes; at QoS 1 waits for the PUBACK.  payload: bytes, str (UTF-8) or a JSON-able object."""
        if not isinstance(payload, (bytes, bytearray, str)):
            payload = json.dumps(payload, ensure_ascii=False)
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        if qos not in (0, 1):
            raise MqttError("QoS %r is not supported" % qos)
        body = mqtt_string(topic)
        pid = None
        if qos:
            pid = self._pid()
            body += struct.pack(">H", pid)
        self._send(packet(PUBLISH, (qos << 1) | (1 if retain else 0), body + bytes(payload)))
        if qos:
            self._wait_ack(("pub", pid), timeout, "PUBACK for %s" % topic)

    # ---- received messages ----

    def messages(self, topic=None):
        """A copy of every message received so far (optionally only on `topic`), oldest first."""
        with self._cond:
            return [m for m in self._messages if topic is None or m.topic == topic]

    def clear(self):
        with self._cond:
            self._messages.clear()

    def wait_for(self, predicate, timeout=10, what="a message"):
        """Waits for a received message (also one received before the call) for which predicate(m) is true."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for m in self._messages:
                    if predicate(m):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise MqttError("timed out after %.0fs waiting for %s" % (timeout, what))
                self._cond.wait(min(left, 0.5))

    # ---- internals ----

    def _pid(self):
        with self._send_lock:
            self._next_pid = self._next_pid % 65535 + 1
            return self._next_pid

    def _send(self, data):
        if self.sock is None:
            raise MqttError("not connected")
        with self._send_lock:
            self.sock.sendall(data)
            self._last_send = time.monotonic()

    def _wait_ack(self, key, timeout, what):
        deadline = time.monotonic() + timeout
        with self._cond:
            while key not in self._acked:
                left = deadline - time.monotonic()
                if self._closed:
                    raise MqttError("connection closed while waiting for %s" % what)
                if left <= 0:
                    raise MqttError("timed out waiting for %s" % what)
                self._cond.wait(min(left, 0.5))
            self._acked.discard(key)

    def _recv_exact(self, n):
        data = bytearray()
        while len(data) < n:
            try:
                if self.ssl_context is not None:
                    # One SSL object must not read and write at once: reads take the send lock too,
                    # for at most the socket's 0.2 s timeout.
                    with self._send_lock:
                        chunk = self.sock.recv(n - len(data))
                else:
                    chunk = self.sock.recv(n - len(data))
            except socket.timeout:
                if self._closed:
                    raise MqttError("closed")
                self._maybe_ping()
                continue
            if not chunk:
                raise MqttError("the broker closed the connection")
            data += chunk
        return bytes(data)

    def _read_packet(self):
        first = self._recv_exact(1)[0]
        length, shift = 0, 0
        while True:
            byte = self._recv_exact(1)[0]
            length += (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
            if shift > 21:
                raise MqttError("bad remaining length")
        return first >> 4, first & 0x0F, self._recv_exact(length) if length else b""

    def _maybe_ping(self):
        if self.keepalive and time.monotonic() - self._last_send > self.keepalive / 2:
            try:
                self._send(packet(PINGREQ, 0, b""))
            except OSError:
                pass

    def _read_loop(self):
        try:
            while not self._closed:
                kind, flags, data = self._read_packet()
                if kind == PUBLISH:
                    self._on_publish(flags, data)
                elif kind == PUBACK:
                    self._ack(("pub", struct.unpack(">H", data[:2])[0]))
                elif kind == SUBACK:
                    self._ack(("sub", struct.unpack(">H", data[:2])[0]))
                elif kind == UNSUBACK:
                    self._ack(("unsub", struct.unpack(">H", data[:2])[0]))
        except (MqttError, OSError) as e:
            if not self._closed:
                self.error = str(e)
        finally:
            self._closed = True
            with self._cond:
                self._cond.notify_all()

    def _ack(self, key):
        with self._cond:
            self._acked.add(key)
            self._cond.notify_all()

    def _on_publish(self, flags, data):
        qos, retain, dup = (flags >> 1) & 3, bool(flags & 1), bool(flags & 8)
        n = struct.unpack(">H", data[:2])[0]
        topic = data[2:2 + n].decode("utf-8", "replace")
        pos = 2 + n
        pid = None
        if qos:
            pid = struct.unpack(">H", data[pos:pos + 2])[0]
            pos += 2
        with self._cond:
            self._messages.append(Message(topic, data[pos:], qos, retain, dup))
            self._cond.notify_all()
        if qos == 1 and self.auto_puback:
            self._send(packet(PUBACK, 0, struct.pack(">H", pid)))


# ---- a private broker ----

def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10, host="127.0.0.1"):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)


class Broker:
    """mosquitto on 127.0.0.1 with a temporary config, anonymous access and persistence in `directory`,
    so that a stop and start keep retained messages, persistent sessions and their queued messages
    (a SIGKILL keeps only what mosquitto saved before).  The port stays the same across restarts.
    extra_config is appended after the listener line, so listener options (cafile, certfile, keyfile,
    require_certificate) and password_file go there."""

    def __init__(self, directory, port=None, extra_config="", binary=None, allow_anonymous=True):
        self.directory = directory
        self.allow_anonymous = allow_anonymous
        self.port = port or free_port()
        self.extra_config = extra_config
        self.binary = binary or shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.conf = os.path.join(directory, "mosquitto.conf")
        self.log = os.path.join(directory, "mosquitto.log")
        self.proc = None
        os.makedirs(directory, exist_ok=True)

    def write_config(self):
        lines = [
            "listener %d 127.0.0.1" % self.port,
            "allow_anonymous %s" % ("true" if self.allow_anonymous else "false"),
            "persistence true",
            "persistence_location %s/" % self.directory,
            "log_dest file %s" % self.log,
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "max_queued_messages 100000",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # otherwise it drops to "mosquitto", who cannot write here
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n" + self.extra_config + "\n")

    def start(self, timeout=10):
        """Starts mosquitto and waits until it accepts connections.  Returns self."""
        if self.running():
            return self
        self.write_config()
        with open(os.path.join(self.directory, "mosquitto.stderr"), "ab") as err:
            self.proc = subprocess.Popen([self.binary, "-c", self.conf], stdin=subprocess.DEVNULL,
                                         stdout=err, stderr=err)
        if not wait_port(self.port, timeout):
            self.kill()
            raise MqttError("mosquitto did not start on port %d (see %s)" % (self.port, self.log))
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=10):
        """SIGTERM: mosquitto saves its persistence file and exits."""
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def save(self, settle=0.5):
        """SIGUSR1: mosquitto writes its persistence file now (sessions, subscriptions, queued and
        retained messages), so that a kill() afterwards loses only what came later."""
        if self.running():
            self.proc.send_signal(signal.SIGUSR1)
            time.sleep(settle)

    def kill(self):
        """SIGKILL: as if the broker machine lost power."""
        if self.running():
            self.proc.kill()
            self.proc.wait()

    def restart(self, timeout=10):
        self.stop()
        return self.start(timeout)

    def client(self, client_id, **kw):
        """A connected MqttClient to this broker."""
        return MqttClient("127.0.0.1", self.port, client_id, **kw).connect()
