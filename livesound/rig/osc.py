"""OSC in and out (python-osc's packet parser and message builder over our own UDP sockets).

In: ``/livesound/<parameter> args`` for every parameter of `livesound.rig.control.PARAMS`, queued for the
next frame. The listener owns its socket and thread, so it can count what it refuses: every datagram that is
not one well-formed, known, well-typed message is counted by kind (``malformed``, ``oversized``,
``unknown_address``, ``wrong_type``, ``wrong_arity``, ``out_of_range``) and each kind is logged once. Bundles
are unpacked and their messages applied at once (time tags are not scheduled: a live rig wants them now).
OSC has no authentication: the listener stays on loopback unless the rig is told otherwise (``--osc-in`` on
another address needs ``--osc-listen-any``), and ``allow_from`` (``--osc-allow-from``) limits the senders whose
datagrams are read at all; the others are counted as ``sender_refused``.

Out: once per rendered frame, on the renderer thread, a handful of small datagrams to one address:
``/livesound/level f``, ``/onset f``, ``/bands f f f``, ``/pulse f``, ``/motion f``, ``/fps f``, ``/seed i``,
``/strength f``, ``/overflows i`` (input overflows so far: blocks of microphone samples PortAudio lost before
livesound read them; 0 for a file or synthetic source) and ``/labels s f ...`` when the frame has labels. The
socket is non-blocking: a full buffer or an unreachable port drops the datagram and counts it (``dropped``), it
never waits.

Threading: the listener thread blocks only in ``recvfrom`` (with a timeout, to see ``close``); the sender is
called on the renderer thread and never blocks.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections import Counter
from typing import Collection

from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket

from livesound.rig.control import ControlError, Controls

log = logging.getLogger("livesound")
PREFIX = "/livesound/"
MAX_DATAGRAM = 65536
DEFAULT_HOST = "127.0.0.1"


def parse_host_port(text: str, what: str = "--osc-in") -> tuple[str, int]:
    """``HOST:PORT`` or ``PORT`` (host 127.0.0.1) -> (host, port); ValueError naming ``what`` otherwise."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or DEFAULT_HOST
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535:
        raise ValueError(f"{what}: expected HOST:PORT (e.g. 127.0.0.1:9000), got {text!r}")
    return host, number


def _addresses(host: str) -> set[str]:
    """Every IP address ``host`` names (a literal address, or a name resolved now); ValueError if none."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    except (socket.gaierror, UnicodeError) as e:
        raise ValueError(f"{host!r} is not an address or a known host name ({e})") from None
    return {_plain(info[4][0]) for info in infos}


def _plain(address: str) -> str:
    """An address as compared here: IPv4-mapped IPv6 (``::ffff:10.0.0.2``) as IPv4, no zone index."""
    ip = ipaddress.ip_address(address.split("%")[0])
    mapped = getattr(ip, "ipv4_mapped", None)
    return str(mapped or ip)


def is_loopback(host: str) -> bool:
    """True when every address ``host`` names is this machine's loopback (only local programs can send)."""
    try:
        return all(ipaddress.ip_address(a).is_loopback for a in _addresses(host))
    except ValueError:
        return False


class OscIn:
    """UDP listener feeding a Controls; ``counts`` has one entry per kind of refused packet plus ``applied``.

    ``allow_from``: addresses or host names whose datagrams are read; empty reads every sender's."""

    def __init__(self, controls: Controls, host: str = DEFAULT_HOST, port: int = 9000,
                 allow_from: Collection[str] = ()):
        self.controls = controls
        self.allow_from: set[str] = set()
        for sender in allow_from:
            try:
                self.allow_from |= _addresses(sender)
            except ValueError as e:
                raise ValueError(f"--osc-allow-from: {e}") from None
        self.counts: Counter[str] = Counter()
        self._logged: set[str] = set()
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.bind((host, port))
        except OSError as e:
            self.sock.close()
            raise ValueError(f"--osc-in {host}:{port}: cannot listen ({e.strerror or e})") from None
        self.sock.settimeout(0.1)
        self.address = self.sock.getsockname()[:2]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="livesound-osc-in", daemon=True)
        self._thread.start()

    @property
    def received(self) -> int:
        return sum(self.counts.values())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1.0)
        self.sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, sender = self.sock.recvfrom(MAX_DATAGRAM)
            except socket.timeout:
                continue
            except OSError as e:
                if not self._stop.is_set():
                    self._refuse("socket_error", f"receiving failed: {e}")
                continue
            if self.allow_from and _plain(sender[0]) not in self.allow_from:
                self._refuse("sender_refused", f"a datagram from {sender[0]}, which --osc-allow-from does not name")
                continue
            self.handle(data)

    def handle(self, data: bytes) -> None:
        """One datagram: parse, check and queue every message in it (each counted)."""
        try:
            messages = [timed.message for timed in OscPacket(data).messages]
        except Exception as e:  # noqa: BLE001 - any parser failure is a malformed packet, counted and logged
            self._refuse("malformed", f"unparsable packet of {len(data)} bytes ({type(e).__name__}: {e})"[:200])
            return
        for msg in messages:
            try:
                address = msg.address
                if not address.startswith(PREFIX):
                    raise ControlError("unknown_address", f"address {address[:60]!r} is not under {PREFIX}")
                self.controls.submit(address[len(PREFIX):], *msg.params)
                self.counts["applied"] += 1
            except ControlError as e:
                self._refuse(e.kind, str(e))
            except Exception as e:  # noqa: BLE001 - e.g. arguments of a type python-osc parses oddly
                self._refuse("malformed", f"{type(e).__name__}: {e}"[:200])

    def _refuse(self, kind: str, message: str) -> None:
        self.counts[kind] += 1
        if kind not in self._logged:  # once per kind: a flood must not flood the log too
            self._logged.add(kind)
            log.warning("livesound OSC in: %s: %s (further %s packets are counted, not logged)", kind, message,
                        kind)


class OscOut:
    """Per-frame feature messages to one UDP address, never blocking the caller."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sent = 0
        self.dropped = 0
        self._logged = False

    def close(self) -> None:
        self.sock.close()

    def send_frame(self, frame, overflows: int = 0) -> None:
        """The frame's features and state, and the source's ``overflows`` count so far (renderer thread)."""
        bands = tuple(float(b) for b in frame.bands)
        messages = [("level", (float(frame.level),)), ("onset", (float(frame.onset),)), ("bands", bands),
                    ("pulse", (float(frame.pulse),)), ("motion", (float(frame.motion),)),
                    ("fps", (float(frame.fps),)), ("seed", (int(frame.seed),)),
                    ("strength", (float(frame.strength),)), ("overflows", (int(overflows),))]
        if frame.labels:
            messages.append(("labels", tuple(x for label, score in frame.labels for x in (label, float(score)))))
        for name, args in messages:
            self.send(name, *args)

    def send(self, name: str, *args) -> None:
        b = OscMessageBuilder(PREFIX + name)
        for a in args:
            b.add_arg(a, "s" if isinstance(a, str) else "i" if isinstance(a, int) else "f")
        try:
            self.sock.sendto(b.build().dgram, self.target)
            self.sent += 1
        except OSError as e:  # full buffer, nobody listening (ICMP refused): drop, count, carry on
            self.dropped += 1
            if not self._logged:
                self._logged = True
                log.warning("livesound OSC out to %s:%d: dropping messages (%s); counted, not logged again",
                            *self.target, e)
