"""A client for the GDB remote serial protocol (RSP) over TCP, in pure Python.

It speaks the subset every GDB server implements (pyOCD, OpenOCD, J-Link's server,
QEMU's gdbstub): feature negotiation (``qSupported``), memory (``m``/``M``/``X``, and
``vFlash*`` where the server's memory map says a region is flash), registers
(``g``/``p``/``P``, names read from the target description), execution (``c``, the
interrupt byte 0x03, ``k``), break- and watchpoints (``Z0``/``Z1``), and monitor
commands (``qRcmd``). Packet format: ``$data#cs`` with a modulo-256 checksum, ``}``
escaping, and run-length encoding in replies (GDB manual, "Remote Protocol").

Every failure is a :class:`GdbRemoteError` naming the server address and the packet.
"""

from __future__ import annotations

import contextlib
import re
import socket
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from autotune.errors import AutotuneError

INTERRUPT = b"\x03"
DEFAULT_PACKET_SIZE = 4096
_ESCAPED = frozenset(b"#$}*")


class GdbRemoteError(AutotuneError):
    """The GDB server is unreachable, refused a request or broke the protocol."""


class GdbStopTimeout(GdbRemoteError):
    """The target did not stop within the time allowed (used for hangs)."""


@dataclass(frozen=True)
class StopReply:
    """Why the target stopped: ``T``/``S`` (signal), ``W`` (exited) or ``X`` (killed)."""

    kind: str
    signal: int
    registers: dict[int, bytes]  # register number -> raw little-endian bytes (T replies)

    @property
    def running(self) -> bool:
        return self.kind in ("T", "S")


@dataclass(frozen=True)
class FlashRegion:
    start: int
    length: int
    blocksize: int


def checksum(data: bytes) -> int:
    return sum(data) & 0xFF


def escape(data: bytes) -> bytes:
    """Binary data for ``X`` and ``vFlashWrite``: ``#$}*`` become ``}`` + (byte ^ 0x20)."""
    out = bytearray()
    for b in data:
        if b in _ESCAPED:
            out += bytes((0x7D, b ^ 0x20))
        else:
            out.append(b)
    return bytes(out)


def decode_rle(data: bytes) -> bytes:
    """Expand run-length encoding (``c*N``: N-29 more copies of c) and ``}`` escapes."""
    out = bytearray()
    i = 0
    while i < len(data):
        b = data[i]
        if b == 0x7D and i + 1 < len(data):
            out.append(data[i + 1] ^ 0x20)
            i += 2
        elif b == 0x2A and out and i + 1 < len(data):  # '*'
            out += bytes((out[-1],)) * (data[i + 1] - 29)
            i += 2
        else:
            out.append(b)
            i += 1
    return bytes(out)


def frame(data: bytes) -> bytes:
    return b"$" + data + b"#" + f"{checksum(data):02x}".encode()


def parse_stop_reply(reply: bytes) -> StopReply:
    text = reply.decode("latin-1")
    if not text or text[0] not in "TSWX" or len(text) < 3:
        raise GdbRemoteError(f"not a stop reply: {text[:60]!r}")
    kind = text[0]
    signal = int(text[1:3], 16)
    regs: dict[int, bytes] = {}
    if kind == "T":
        for item in text[3:].split(";"):
            key, _, value = item.partition(":")
            if key and all(c in "0123456789abcdefABCDEF" for c in key) and value:
                try:
                    regs[int(key, 16)] = bytes.fromhex(value)
                except ValueError:
                    continue
    return StopReply(kind, signal, regs)


def parse_memory_map(xml: str) -> list[FlashRegion]:
    """The flash regions of a ``qXfer:memory-map:read`` document."""
    out = []
    root = ET.fromstring(xml)
    for mem in root.iter("memory"):
        if mem.get("type") != "flash":
            continue
        block = 0
        for prop in mem.iter("property"):
            if prop.get("name") == "blocksize":
                block = int((prop.text or "0").strip(), 0)
        out.append(
            FlashRegion(int(mem.get("start", "0"), 0), int(mem.get("length", "0"), 0), block)
        )
    return out


def parse_registers(
    documents: dict[str, str], root: str = "target.xml"
) -> dict[str, tuple[int, int]]:
    """Register name -> (number, bits) from a target description and its includes."""
    regs: dict[str, tuple[int, int]] = {}
    next_num = 0

    def walk(name: str) -> None:
        nonlocal next_num
        text = documents.get(name)
        if text is None:
            return
        # Descriptions use xi:include without always declaring the prefix.
        tree = ET.fromstring(text.replace("xi:include", "include"))
        for el in tree.iter():
            tag = el.tag.rsplit("}", 1)[-1]
            if tag == "include":
                href = el.get("href") or ""
                walk(href)
            elif tag == "reg":
                num = int(el.get("regnum", next_num))
                regs[(el.get("name") or "").lower()] = (num, int(el.get("bitsize", "32")))
                next_num = num + 1

    walk(root)
    return regs


_INCLUDE = re.compile(r"<xi:include\s+href=\"([^\"]+)\"")


class GdbRemote:
    """One connection to a GDB server; use as a context manager.

    Methods map one-to-one onto packets. Replies are checked: ``E NN`` and the empty
    reply (unsupported) raise :class:`GdbRemoteError` unless the caller asks to see them.
    """

    def __init__(self, host: str, port: int, timeout_s: float = 10.0) -> None:
        self.address = f"{host}:{port}"
        self.timeout_s = timeout_s
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout_s)
        except OSError as exc:
            raise GdbRemoteError(
                f"cannot connect to the GDB server at {self.address}: {exc.strerror or exc}"
            ) from exc
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = b""
        self._ack = True
        self.features: dict[str, str] = {}
        self.packet_size = DEFAULT_PACKET_SIZE
        self._xml: dict[str, str] | None = None
        self._p_ok = True
        self._x_ok = True
        self.console: list[str] = []  # 'O' packets (server output) seen since the last command

    # -- framing --------------------------------------------------------------------------

    def __enter__(self) -> GdbRemote:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def _recv_some(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            raise
        except OSError as exc:
            raise GdbRemoteError(f"GDB server {self.address}: connection lost ({exc})") from exc
        if not chunk:
            raise GdbRemoteError(f"GDB server {self.address} closed the connection")
        self._buf += chunk

    def _read_packet(self, deadline: float) -> bytes:
        """The next packet's payload (ack sent), skipping acks and stray bytes."""
        while True:
            start = self._buf.find(b"$")
            if start >= 0:
                end = self._buf.find(b"#", start)
                if end >= 0 and len(self._buf) >= end + 3:
                    body = self._buf[start + 1 : end]
                    cs = self._buf[end + 1 : end + 3]
                    self._buf = self._buf[end + 3 :]
                    ok = int(cs, 16) == checksum(body) if self._ack else True
                    if self._ack:
                        self.sock.sendall(b"+" if ok else b"-")
                    if ok:
                        return body
                    continue
            self._recv_some(deadline)

    def _send(self, payload: bytes) -> None:
        packet = frame(payload)
        for _ in range(3):
            self.sock.sendall(packet)
            if not self._ack:
                return
            deadline = time.monotonic() + self.timeout_s
            while True:
                if self._buf[:1] == b"+":
                    self._buf = self._buf[1:]
                    return
                if self._buf[:1] == b"-":
                    self._buf = self._buf[1:]
                    break
                if self._buf and self._buf[:1] not in (b"+", b"-"):
                    # A reply that arrived before its ack: treat as acknowledged.
                    if self._buf[:1] == b"$":
                        return
                    self._buf = self._buf[1:]
                    continue
                try:
                    self._recv_some(deadline)
                except TimeoutError as exc:
                    raise GdbRemoteError(
                        f"GDB server {self.address} did not acknowledge {payload[:20]!r}"
                    ) from exc
        raise GdbRemoteError(f"GDB server {self.address} rejected {payload[:20]!r} three times")

    def request(self, payload: bytes | str, timeout_s: float | None = None) -> bytes:
        """Send one packet and return the reply's payload, skipping 'O' console output."""
        data = payload.encode("latin-1") if isinstance(payload, str) else payload
        self._send(data)
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        try:
            while True:
                reply = decode_rle(self._read_packet(deadline))
                if reply.startswith(b"O") and reply != b"OK" and _is_hex(reply[1:]):
                    self.console.append(bytes.fromhex(reply[1:].decode()).decode("latin-1"))
                    continue
                return reply
        except TimeoutError as exc:
            raise GdbRemoteError(
                f"GDB server {self.address}: no reply to {data[:24]!r} within "
                f"{timeout_s or self.timeout_s:.0f} s"
            ) from exc

    def command(self, payload: bytes | str, timeout_s: float | None = None) -> bytes:
        """A request whose reply must not be an error or empty (unsupported)."""
        reply = self.request(payload, timeout_s)
        what = payload if isinstance(payload, str) else payload[:24].decode("latin-1")
        if reply == b"":
            raise GdbRemoteError(f"GDB server {self.address} does not support {what[:24]!r}")
        if _is_error(reply):
            raise GdbRemoteError(
                f"GDB server {self.address} refused {what[:24]!r}: {reply.decode('latin-1')}"
            )
        return reply

    # -- session --------------------------------------------------------------------------

    def handshake(self) -> StopReply:
        """Negotiate features, switch off acks where offered, and ask why the target stopped."""
        reply = self.command(
            "qSupported:multiprocess-;swbreak+;hwbreak+;qRelocInsn-;xmlRegisters=arm"
        ).decode("latin-1")
        for item in reply.split(";"):
            if "=" in item:
                key, value = item.split("=", 1)
                self.features[key] = value
            elif item:
                self.features[item[:-1]] = item[-1]
        if "PacketSize" in self.features:
            self.packet_size = max(256, int(self.features["PacketSize"], 16))
        if self.features.get("QStartNoAckMode") == "+" and self.request("QStartNoAckMode") == b"OK":
            self._ack = False
        return parse_stop_reply(self.command("?"))

    # -- memory ---------------------------------------------------------------------------

    def read_memory(self, address: int, length: int) -> bytes:
        out = bytearray()
        chunk = max(16, (self.packet_size - 8) // 2)
        while len(out) < length:
            n = min(chunk, length - len(out))
            reply = self.command(f"m{address + len(out):x},{n:x}")
            data = bytes.fromhex(reply.decode("latin-1"))
            if not data:
                raise GdbRemoteError(f"GDB server {self.address}: empty read at {address:#x}")
            out += data
        return bytes(out[:length])

    def write_memory(self, address: int, data: bytes) -> None:
        """``X`` (binary) where the server accepts it, else ``M`` (hex)."""
        done = 0
        while done < len(data):
            if self._x_ok:
                n = min(len(data) - done, (self.packet_size - 32) // 2)
                head = f"X{address + done:x},{n:x}:".encode()
                reply = self.request(head + escape(data[done : done + n]))
                if reply == b"OK":
                    done += n
                    continue
                if reply != b"":
                    raise GdbRemoteError(
                        f"GDB server {self.address}: write of {n} bytes at "
                        f"{address + done:#x} refused ({reply.decode('latin-1')})"
                    )
                self._x_ok = False
            n = min(len(data) - done, (self.packet_size - 32) // 2)
            self.command(f"M{address + done:x},{n:x}:{data[done : done + n].hex()}")
            done += n

    def read_u32(self, address: int) -> int:
        return int.from_bytes(self.read_memory(address, 4), "little")

    def write_u32(self, address: int, value: int) -> None:
        self.write_memory(address, (value & 0xFFFFFFFF).to_bytes(4, "little"))

    def flash_regions(self) -> list[FlashRegion]:
        if self.features.get("qXfer:memory-map:read") != "+":
            return []
        return parse_memory_map(self.read_xfer("memory-map", ""))

    def write_flash(self, region: FlashRegion, address: int, data: bytes) -> None:
        """Erase the blocks ``data`` covers and program it (vFlashErase/Write/Done)."""
        block = region.blocksize or 1
        lo = address - (address - region.start) % block
        hi = address + len(data)
        hi += (-(hi - region.start)) % block
        self.command(f"vFlashErase:{lo:x},{hi - lo:x}", timeout_s=60)
        step = (self.packet_size - 64) // 2
        for off in range(0, len(data), step):
            head = f"vFlashWrite:{address + off:x}:".encode()
            self.command(head + escape(data[off : off + step]), timeout_s=60)
        self.command("vFlashDone", timeout_s=120)

    def read_xfer(self, obj: str, annex: str) -> str:
        out = b""
        while True:
            reply = self.command(f"qXfer:{obj}:read:{annex}:{len(out):x},{self.packet_size - 8:x}")
            out += reply[1:]
            if reply[:1] == b"l":
                return out.decode("utf-8")
            if reply[:1] != b"m":
                raise GdbRemoteError(f"GDB server {self.address}: bad qXfer reply {reply[:20]!r}")

    # -- registers ------------------------------------------------------------------------

    def register_map(self) -> dict[str, tuple[int, int]]:
        """Register name -> (number, bits), from the server's target description."""
        if self.features.get("qXfer:features:read") != "+":
            return {}
        if self._xml is None:
            docs: dict[str, str] = {}
            todo = ["target.xml"]
            while todo:
                name = todo.pop()
                if name in docs:
                    continue
                docs[name] = self.read_xfer("features", name)
                todo += _INCLUDE.findall(docs[name])
            self._xml = docs
        return parse_registers(self._xml)

    def read_register(self, number: int) -> int:
        if self._p_ok:
            reply = self.request(f"p{number:x}")
            if reply and not _is_error(reply):
                return int.from_bytes(bytes.fromhex(reply.decode("latin-1")), "little")
            self._p_ok = False
        raw = bytes.fromhex(self.command("g").decode("latin-1"))
        return int.from_bytes(raw[number * 4 : number * 4 + 4], "little")

    def write_register(self, number: int, value: int, bits: int = 32) -> None:
        raw = (value & ((1 << bits) - 1)).to_bytes(bits // 8, "little").hex()
        reply = self.request(f"P{number:x}={raw}")
        if reply == b"OK":
            return
        if reply and _is_error(reply):
            raise GdbRemoteError(
                f"GDB server {self.address} refused to write register {number}: {reply.decode()}"
            )
        # No P packet: read all registers, patch one, write them back (32-bit core registers).
        regs = bytearray(bytes.fromhex(self.command("g").decode("latin-1")))
        regs[number * 4 : number * 4 + 4] = (value & 0xFFFFFFFF).to_bytes(4, "little")
        self.command(f"G{regs.hex()}")

    # -- execution ------------------------------------------------------------------------

    def set_breakpoint(self, address: int, kind: int = 2) -> str:
        """A hardware breakpoint where the server has one, else a software one; returns which."""
        for z in ("Z1", "Z0"):
            reply = self.request(f"{z},{address:x},{kind:x}")
            if reply == b"OK":
                return z
        raise GdbRemoteError(f"GDB server {self.address} cannot set a breakpoint at {address:#x}")

    def clear_breakpoint(self, address: int, z: str, kind: int = 2) -> None:
        self.request(f"z{z[1]},{address:x},{kind:x}")

    def resume(self) -> None:
        """``c``: continue; the stop reply is read by :meth:`wait_stop`."""
        self._send(b"c")

    def wait_stop(self, timeout_s: float) -> StopReply:
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                reply = decode_rle(self._read_packet(deadline))
                if reply.startswith(b"O") and _is_hex(reply[1:]):
                    self.console.append(bytes.fromhex(reply[1:].decode()).decode("latin-1"))
                    continue
                return parse_stop_reply(reply)
        except TimeoutError as exc:
            raise GdbStopTimeout(
                f"target did not stop within {timeout_s:.1f} s ({self.address})"
            ) from exc

    def interrupt(self, timeout_s: float = 5.0) -> StopReply:
        """Send the interrupt byte and read the stop reply it causes."""
        self.sock.sendall(INTERRUPT)
        return self.wait_stop(timeout_s)

    def monitor(self, text: str, timeout_s: float | None = None) -> str:
        """A server-specific monitor command (``qRcmd``); returns its console output."""
        self.console = []
        reply = self.request("qRcmd," + text.encode().hex(), timeout_s)
        if reply == b"":
            raise GdbRemoteError(f"GDB server {self.address} has no monitor commands")
        if _is_error(reply):
            raise GdbRemoteError(f"GDB server {self.address}: monitor {text!r} failed ({reply!r})")
        out = "".join(self.console)
        if reply != b"OK" and _is_hex(reply):
            out += bytes.fromhex(reply.decode()).decode("latin-1")
        return out

    def kill(self) -> None:
        """``k``: end the debugged program (QEMU exits; board servers keep the probe)."""
        with contextlib.suppress(GdbRemoteError, OSError):
            self._send(b"k")


def _is_hex(data: bytes) -> bool:
    return bool(data) and len(data) % 2 == 0 and all(c in b"0123456789abcdefABCDEF" for c in data)


def _is_error(reply: bytes) -> bool:
    return len(reply) == 3 and reply[:1] == b"E" and _is_hex(reply[1:])
