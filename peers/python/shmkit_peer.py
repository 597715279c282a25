"""A Python peer for shmkit's Channel and Mutex, standard library only.

Implements the layouts of docs/locks.md (Channel version 2 "CHN2", Mutex
"MTX1") so that a Python process can send to, receive from, and share a
lock with Deno and Bun processes using shmkit, over any shared mapping
(a /dev/shm file, a POSIX shm object, a memfd passed as a file).

Atomics: Python has none, so every shared word is read and written through
libatomic's sequentially consistent functions (``__atomic_load_4``,
``__atomic_store_4``, ``__atomic_exchange_4``, ``__atomic_compare_exchange_4``,
``__atomic_fetch_or_4``, ``__atomic_fetch_add_4``), called with ctypes. They are
the same lock-free instructions gcc emits for C11 atomics on 4-byte aligned
words, so they are atomic against the JS side's ``Atomics.*``. libatomic.so.1
comes with gcc (Debian: libatomic1). Sleeping and waking use
``syscall(SYS_futex, ...)`` through ctypes, without FUTEX_PRIVATE_FLAG.
Payload bytes are copied with ordinary slice assignment; the atomic
exchange of the tail (or head) that publishes them is a full barrier.

Peers are untrusted: every word read from the shared memory is checked as
the JS side checks it, and a bad one raises :class:`Corrupted` naming it.

Linux only (futex); x86_64 and aarch64.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno as _errno
import mmap
import os
import platform
import time

__all__ = ["Channel", "ChannelClosed", "Corrupted", "DONE", "LockError", "Mutex", "Words", "map_file"]

# --- the machine: futex numbers from <asm/unistd.h> and <linux/futex.h>

_SYS_FUTEX = {"x86_64": 202, "aarch64": 98}.get(platform.machine())
_FUTEX_WAIT = 0
_FUTEX_WAKE = 1
_SEQ_CST = 5  # __ATOMIC_SEQ_CST

if _SYS_FUTEX is None:
    raise ImportError(f"shmkit_peer: no futex syscall number for {platform.machine()}")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.syscall.argtypes = [
    ctypes.c_long,
    ctypes.c_void_p,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_void_p,
    ctypes.c_void_p,
    ctypes.c_int,
]

try:
    _atomic = ctypes.CDLL("libatomic.so.1")
except OSError as error:  # pragma: no cover - depends on the machine
    raise ImportError(
        "shmkit_peer needs libatomic.so.1 for atomic loads, stores and compare-and-swap "
        "(Debian: apt-get install libatomic1)"
    ) from error

_u32 = ctypes.c_uint32
_ptr = ctypes.c_void_p
_atomic.__atomic_load_4.argtypes = [_ptr, ctypes.c_int]
_atomic.__atomic_load_4.restype = _u32
_atomic.__atomic_store_4.argtypes = [_ptr, _u32, ctypes.c_int]
_atomic.__atomic_store_4.restype = None
_atomic.__atomic_exchange_4.argtypes = [_ptr, _u32, ctypes.c_int]
_atomic.__atomic_exchange_4.restype = _u32
_atomic.__atomic_compare_exchange_4.argtypes = [_ptr, _ptr, _u32, ctypes.c_int, ctypes.c_int]
_atomic.__atomic_compare_exchange_4.restype = ctypes.c_bool
_atomic.__atomic_fetch_or_4.argtypes = [_ptr, _u32, ctypes.c_int]
_atomic.__atomic_fetch_or_4.restype = _u32
_atomic.__atomic_fetch_add_4.argtypes = [_ptr, _u32, ctypes.c_int]
_atomic.__atomic_fetch_add_4.restype = _u32


def _load(address: int) -> int:
    return _atomic.__atomic_load_4(address, _SEQ_CST)


def _store(address: int, value: int) -> None:
    _atomic.__atomic_store_4(address, value & 0xFFFFFFFF, _SEQ_CST)


def _exchange(address: int, value: int) -> int:
    return _atomic.__atomic_exchange_4(address, value & 0xFFFFFFFF, _SEQ_CST)


def _fetch_add(address: int, value: int) -> int:
    return _atomic.__atomic_fetch_add_4(address, value & 0xFFFFFFFF, _SEQ_CST)


def _fetch_or(address: int, value: int) -> int:
    return _atomic.__atomic_fetch_or_4(address, value & 0xFFFFFFFF, _SEQ_CST)


# (Module-level wrappers: inside a class body, ``_atomic.__atomic_x`` would be name-mangled.)
def _cas(address: int, expected: int, desired: int) -> tuple[bool, int]:
    """Compare-and-swap; returns (swapped, the value seen)."""
    cell = _u32(expected & 0xFFFFFFFF)
    ok = _atomic.__atomic_compare_exchange_4(
        address, ctypes.addressof(cell), desired & 0xFFFFFFFF, _SEQ_CST, _SEQ_CST
    )
    return ok, cell.value


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _futex_wait(address: int, expected: int, seconds: float) -> None:
    """Sleeps while the word holds ``expected``, at most ``seconds``; any wake-up returns."""
    seconds = max(0.0, seconds)
    ts = _Timespec(int(seconds), int((seconds - int(seconds)) * 1e9))
    value = expected - (1 << 32) if expected >= 1 << 31 else expected
    if _libc.syscall(_SYS_FUTEX, address, _FUTEX_WAIT, value, ctypes.addressof(ts), None, 0) == -1:
        code = ctypes.get_errno()
        if code not in (_errno.EAGAIN, _errno.ETIMEDOUT, _errno.EINTR):
            raise OSError(code, f"futex(FUTEX_WAIT): {os.strerror(code)}")


def _futex_wake(address: int, count: int) -> None:
    if _libc.syscall(_SYS_FUTEX, address, _FUTEX_WAKE, count, None, None, 0) == -1:
        code = ctypes.get_errno()
        raise OSError(code, f"futex(FUTEX_WAKE): {os.strerror(code)}")


def _process_gone(pid: int) -> bool:
    """Whether no live process has this pid: kill(pid, 0) says ESRCH, or it is a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state in (b"Z", b"X")


def _start_tag(pid: int) -> int:
    """shmkit's start-time tag of the process now holding ``pid`` (0 when unknown)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[19]) // 64) % 255 + 1  # field 22 of stat: starttime
    except (OSError, IndexError, ValueError):
        return 0


def map_file(path: str) -> mmap.mmap:
    """Maps a whole file (e.g. under /dev/shm) shared, read-write."""
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    try:
        return mmap.mmap(fd, 0, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        os.close(fd)


class Corrupted(Exception):
    """A shared word holds a value no correct peer writes."""

    def __init__(self, word: str, value: int, rule: str) -> None:
        super().__init__(f"shared word {word} holds {value}: {rule}")
        self.word = word
        self.value = value


class _Region:
    """The address of a mapping (kept exported while the object lives)."""

    def __init__(self, memory: mmap.mmap, offset: int, length: int) -> None:
        if offset < 0 or offset % 8 != 0 or offset + length > len(memory):
            raise ValueError(f"offset {offset} and length {length} do not fit the mapping")
        self.memory = memory
        self._anchor = (ctypes.c_char * len(memory)).from_buffer(memory)
        self.base = ctypes.addressof(self._anchor) + offset
        self.offset = offset

    def release(self) -> None:
        # Drop the buffer export so the mapping can be closed.
        del self._anchor


class Words:
    """Sequentially consistent 32-bit word operations and futex wait/wake on a mapping
    (the Python side of shmkit's ``Atomics.*`` plus ``wait``/``notify``); offsets in bytes,
    4-byte aligned."""

    def __init__(self, memory: mmap.mmap) -> None:
        self._region = _Region(memory, 0, 0)
        self._size = len(memory)

    def _at(self, offset: int) -> int:
        if offset < 0 or offset % 4 or offset + 4 > self._size:
            raise ValueError(f"offset {offset} is not a 4-byte aligned word of the mapping")
        return self._region.base + offset

    def load(self, offset: int) -> int:
        return _load(self._at(offset))

    def store(self, offset: int, value: int) -> None:
        _store(self._at(offset), value)

    def add(self, offset: int, value: int) -> int:
        """Atomic add; returns the old value."""
        return _fetch_add(self._at(offset), value)

    def compare_exchange(self, offset: int, expected: int, desired: int) -> tuple[bool, int]:
        return _cas(self._at(offset), expected, desired)

    def wait(self, offset: int, expected: int, seconds: float) -> None:
        """futex(FUTEX_WAIT): sleeps while the word holds ``expected``, at most ``seconds``."""
        _futex_wait(self._at(offset), expected, seconds)

    def wake(self, offset: int, count: int = 0x7FFFFFFF) -> None:
        _futex_wake(self._at(offset), count)

    def release(self) -> None:
        self._region.release()


# --- Channel (docs/locks.md, "CHN2")

CHANNEL_MAGIC = 0x43484E32
_HEADER = 384
_PADDING = 0xFFFFFFFF
_MAGIC, _CAPACITY, _DATA_OFFSET, _MAX = 0, 4, 8, 12
_PRODUCER, _CONSUMER, _CLOSED = 16, 20, 24
_TAIL, _CONSUMER_SLEEPING, _SENT = 128, 132, 136
_HEAD, _PRODUCER_SLEEPING, _RECEIVED = 256, 260, 264
_PRODUCER_CLOSED, _CONSUMER_CLOSED = 1, 2

DONE = object()
"""What ``Channel.receive`` returns once the producer closed (or died) and everything was read."""


class ChannelClosed(Exception):
    """The consumer closed or died: nothing sent now would be read."""


class Channel:
    """One end of a shmkit Channel.

    ``Channel(memory, role)`` attaches to a channel that a shmkit process
    made with ``Channel.init`` (this module never initialises one). ``role``
    is ``"producer"`` or ``"consumer"``; the end's word is taken with a
    compare-and-swap from 0, so a second producer (or consumer) is refused.
    """

    check_interval = 0.05
    """Longest sleep between looks at the other end's process (seconds)."""

    def __init__(self, memory: mmap.mmap, role: str, offset: int = 0) -> None:
        if role not in ("producer", "consumer"):
            raise ValueError(f"role must be 'producer' or 'consumer', not {role!r}")
        self._region = _Region(memory, offset, _HEADER)
        b = self._region.base
        self._b = b
        magic = _load(b + _MAGIC)
        if magic != CHANNEL_MAGIC:
            raise Corrupted("magic", magic, f"expected 0x{CHANNEL_MAGIC:08x} (CHN2)")
        capacity, data_offset, maximum = _load(b + _CAPACITY), _load(b + _DATA_OFFSET), _load(b + _MAX)
        if capacity % 8 or capacity < 64 or capacity > 1 << 30 or offset + _HEADER + capacity > len(memory):
            raise Corrupted("capacity", capacity, "a multiple of 8 from 64 to 1 GiB that fits the mapping")
        if data_offset != _HEADER:
            raise Corrupted("dataOffset", data_offset, f"expected {_HEADER}")
        if maximum != (capacity // 16) * 8 - 8:
            raise Corrupted("maxMessage", maximum, "must match the capacity")
        self.capacity, self.max_message = capacity, maximum
        self._data = offset + data_offset
        self.role = role
        self._closed_check()
        self._me = os.getpid()  # owner id with tag 0: no start-time check on us
        word = _PRODUCER if role == "producer" else _CONSUMER
        ok, seen = _cas(b + word, 0, self._me)
        if not ok and seen != self._me:
            raise ChannelClosed(f"the {role}'s place is taken by pid {seen & 0x3FFFFF}")
        if role == "producer":
            self._tail = self._position(_load(b + _TAIL), "tail")
            self._head = self._position(_load(b + _HEAD), "head")
            self._sent = _load(b + _SENT)
        else:
            self._head = self._position(_load(b + _HEAD), "head")
            self._tail = self._position(_load(b + _TAIL), "tail")
            self._received = _load(b + _RECEIVED)

    # checks

    def _position(self, value: int, word: str) -> int:
        if value % 8 or value >= self.capacity:
            raise Corrupted(word, value, f"a multiple of 8 below the capacity {self.capacity}")
        return value

    def _closed_check(self) -> int:
        closed = _load(self._b + _CLOSED)
        if closed & ~3:
            raise Corrupted("closed", closed, "only bits 0-1")
        return closed

    def _flag(self, word: str, at: int) -> int:
        value = _load(self._b + at)
        if value not in (0, 1):
            raise Corrupted(word, value, "0 or 1")
        return value

    def _peer_gone(self, word: int) -> bool:
        owner = _load(self._b + word)
        if owner & 0xC0000000:
            raise Corrupted("producer" if word == _PRODUCER else "consumer", owner, "bits 30-31 clear")
        return owner != 0 and _process_gone(owner & 0x3FFFFF)

    # producer

    def send(self, payload: bytes, timeout: float | None = None) -> bool:
        """Sends one message (a copy of ``payload``); False when ``timeout`` seconds passed first.

        Raises ChannelClosed when the consumer closed, or died with the ring full.
        """
        if self.role != "producer":
            raise ValueError("only the producer sends")
        length = len(payload)
        if length > self.max_message:
            raise ValueError(f"message of {length} bytes is over maxMessage {self.max_message}")
        size = 8 + ((length + 7) & ~7)
        deadline = None if timeout is None else time.monotonic() + timeout
        cap, b = self.capacity, self._b
        while True:
            if self._closed_check() & _CONSUMER_CLOSED:
                raise ChannelClosed("the consumer closed the channel")
            at = self._place(size)
            if at is not None:
                break
            # Full: announce the sleep, look at head again, sleep on it.
            seen = self._head
            _exchange(b + _PRODUCER_SLEEPING, 1)
            if self._read_head() == seen:
                if self._peer_gone(_CONSUMER):
                    _store(b + _PRODUCER_SLEEPING, 0)
                    raise ChannelClosed("the consumer died with the ring full")
                left = self.check_interval if deadline is None else min(self.check_interval, deadline - time.monotonic())
                if left <= 0:
                    _store(b + _PRODUCER_SLEEPING, 0)
                    return False
                _futex_wait(b + _HEAD, seen, left)
            _store(b + _PRODUCER_SLEEPING, 0)
        memory, data = self._region.memory, self._data
        start = data + at + 8
        memory[start : start + length] = payload
        if at == 0 and self._tail != 0:
            memory[data + self._tail : data + self._tail + 4] = _PADDING.to_bytes(4, "little")
        memory[data + at : data + at + 8] = length.to_bytes(4, "little") + bytes(4)
        new_tail = at + size
        if new_tail == cap:
            new_tail = 0
        self._sent = (self._sent + 1) & 0xFFFFFFFF
        _store(b + _SENT, self._sent)
        _exchange(b + _TAIL, new_tail)  # full barrier: the record is visible before the tail
        self._tail = new_tail
        if self._flag("consumerSleeping", _CONSUMER_SLEEPING):
            _futex_wake(b + _TAIL, 1)
        return True

    def _read_head(self) -> int:
        head = self._position(_load(self._b + _HEAD), "head")
        cap, tail = self.capacity, self._tail
        # Forward only, never past tail: the used bytes can only shrink.
        if (tail - head) % cap > (tail - self._head) % cap:
            raise Corrupted("head", head, "moves forward only, never past tail")
        self._head = head
        return head

    def _place(self, size: int) -> int | None:
        """Where a record of ``size`` bytes goes (docs/locks.md, Rules), or None when full."""
        cap, tail = self.capacity, self._tail
        for attempt in (0, 1):
            head = self._head if attempt == 0 else self._read_head()
            if tail >= head:
                if size < cap - tail or (size == cap - tail and head != 0):
                    return tail
                if size < head:
                    return 0
            elif tail + size < head:
                return tail
        return None

    # consumer

    def receive(self, timeout: float | None = None) -> bytes | None | object:
        """The next message (a copy); None when ``timeout`` seconds passed; DONE at the end."""
        if self.role != "consumer":
            raise ValueError("only the consumer receives")
        deadline = None if timeout is None else time.monotonic() + timeout
        b = self._b
        while True:
            if self._read_tail() != self._head:
                break
            closed = self._closed_check() & _PRODUCER_CLOSED or self._peer_gone(_PRODUCER)
            if closed:
                if self._read_tail() == self._head:
                    return DONE
                break
            _exchange(b + _CONSUMER_SLEEPING, 1)
            if self._read_tail() == self._head:
                left = self.check_interval if deadline is None else min(self.check_interval, deadline - time.monotonic())
                if left <= 0:
                    _store(b + _CONSUMER_SLEEPING, 0)
                    return None
                _futex_wait(b + _TAIL, self._head, left)
            _store(b + _CONSUMER_SLEEPING, 0)
        return self._take()

    def _read_tail(self) -> int:
        tail = self._position(_load(self._b + _TAIL), "tail")
        cap, head = self.capacity, self._head
        if (tail - head) % cap < (self._tail - head) % cap:
            raise Corrupted("tail", tail, "moves forward only, never past head")
        self._tail = tail
        return tail

    def _u32(self, at: int) -> int:
        return int.from_bytes(self._region.memory[at : at + 4], "little")

    def _take(self) -> bytes:
        cap, data, tail, position = self.capacity, self._data, self._tail, self._head
        sent = _load(self._b + _SENT)
        count = (sent - self._received) & 0xFFFFFFFF
        if count == 0 or count > cap // 8:
            raise Corrupted("sent", sent, f"must count the published records ({self._received} received)")
        length = self._u32(data + position)
        if length == _PADDING:
            if position == 0 or tail >= position:
                raise Corrupted("record length", length, "a padding marker only before data wrapped to the start")
            position = 0
            length = self._u32(data)
        if length > self.max_message:
            raise Corrupted("record length", length, f"0 to maxMessage {self.max_message}")
        reserved = self._u32(data + position + 4)
        if reserved != 0:
            raise Corrupted("reserved", reserved, "0")
        end = position + 8 + ((length + 7) & ~7)
        if end > (tail if tail > position else cap) or (tail == position):
            raise Corrupted("record length", length, "the record must end at or before tail and the ring's end")
        payload = bytes(self._region.memory[data + position + 8 : data + position + 8 + length])
        # Release at once: publish received, then head (a full barrier), then wake a sleeping producer.
        self._received = (self._received + 1) & 0xFFFFFFFF
        _store(self._b + _RECEIVED, self._received)
        self._head = 0 if end == cap else end
        _exchange(self._b + _HEAD, self._head)
        if self._flag("producerSleeping", _PRODUCER_SLEEPING):
            _futex_wake(self._b + _HEAD, 1)
        return payload

    @property
    def pending(self) -> int:
        """Messages sent and not yet received (``sent - received``)."""
        return (_load(self._b + _SENT) - _load(self._b + _RECEIVED)) & 0xFFFFFFFF

    def __iter__(self):
        while True:
            message = self.receive()
            if message is DONE:
                return
            yield message

    def close(self) -> None:
        """Sets this end's closed bit and wakes the other end."""
        bit = _PRODUCER_CLOSED if self.role == "producer" else _CONSUMER_CLOSED
        _fetch_or(self._b + _CLOSED, bit)
        _futex_wake(self._b + (_TAIL if self.role == "producer" else _HEAD), 0x7FFFFFFF)
        self._region.release()

    def __enter__(self) -> "Channel":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


# --- Mutex (docs/locks.md, "MTX1")

MUTEX_MAGIC = 0x4D545831
_WAITERS = 0x80000000
_OWNER_DIED = 0x40000000
_ID_MASK = 0x3FFFFFFF
_PID_MASK = 0x3FFFFF
_NOT_RECOVERABLE = 0x40000000


class LockError(Exception):
    """A lock call failed: ``code`` is ENOTRECOVERABLE, EPERM, EDEADLK or ECORRUPT."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _pid_max() -> int:
    try:
        with open("/proc/sys/kernel/pid_max") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 1 << 22


class Mutex:
    """A shmkit Mutex (16 bytes at ``offset``, made by ``Mutex.init`` on the JS side).

    The owner id is this process's pid with tag 0 (no start-time check on
    us). ``lock()`` returns True when the previous owner died holding the
    lock: repair the data, then ``mark_consistent()`` before ``unlock()``.
    """

    check_interval = 0.05

    def __init__(self, memory: mmap.mmap, offset: int = 0) -> None:
        self._region = _Region(memory, offset, 16)
        self._word = self._region.base
        magic = _load(self._word + 4)
        if magic != MUTEX_MAGIC:
            raise LockError("ECORRUPT", f"mutex magic is 0x{magic:08x}, expected 0x{MUTEX_MAGIC:08x} (MTX1)")
        self._id = os.getpid()
        if self._id > _PID_MASK:
            raise LockError("EPERM", f"pid {self._id} does not fit shmkit's 22-bit owner id")

    def _checked(self, value: int) -> int:
        if value == 0 or value == _NOT_RECOVERABLE:
            return value
        pid = value & _PID_MASK
        if pid == 0 or pid >= _pid_max():
            raise LockError("ECORRUPT", f"mutex lock word holds 0x{value:08x}: no pid in bits 0-21")
        return value

    def _owner_gone(self, owner: int) -> bool:
        pid = owner & _PID_MASK
        if pid == self._id:
            return owner != self._id  # our pid under another tag: a dead predecessor
        if _process_gone(pid):
            return True
        tag = owner >> 22
        if tag == 0:
            return False
        now = _start_tag(pid)
        if now == 0:
            return False
        distance = abs(now - tag)
        return min(distance, 255 - distance) > 1

    def lock(self, timeout: float | None = None) -> bool | None:
        """Takes the lock; True if its owner had died. None when ``timeout`` seconds passed."""
        word, me = self._word, self._id
        deadline = None if timeout is None else time.monotonic() + timeout
        waiters = 0
        while True:
            ok, c = _cas(word, 0, me | waiters)
            if ok:
                return False
            self._checked(c)
            if c == _NOT_RECOVERABLE:
                raise LockError("ENOTRECOVERABLE", "the mutex is not recoverable: a dead owner's data was never marked consistent")
            if c & _ID_MASK & ~_OWNER_DIED == me:
                raise LockError("EDEADLK", "this process already holds the mutex")
            if self._owner_gone(c & _ID_MASK & ~_OWNER_DIED):
                ok, _ = _cas(word, c, me | _OWNER_DIED | (c & _WAITERS))
                if ok:
                    _fetch_add(word + 12, 1)
                    return True
                continue
            if not c & _WAITERS:
                ok, _ = _cas(word, c, c | _WAITERS)
                if not ok:
                    continue
                c |= _WAITERS
            waiters = _WAITERS
            left = self.check_interval
            if deadline is not None:
                left = min(left, deadline - time.monotonic())
                if left <= 0:
                    return None
            _futex_wait(word, c, left)

    def unlock(self) -> None:
        """Releases the lock (EPERM unless this process holds it)."""
        word, me = self._word, self._id
        ok, _ = _cas(word, me, 0)
        if ok:
            return
        c = self._checked(_load(word))
        if c & _ID_MASK & ~_OWNER_DIED != me:
            raise LockError("EPERM", f"the mutex is held by pid {c & _PID_MASK}, not this process")
        if c & _OWNER_DIED:
            _store(word, _NOT_RECOVERABLE)
            _futex_wake(word, 0x7FFFFFFF)
            return
        if _exchange(word, 0) & _WAITERS:
            _futex_wake(word, 1)

    def mark_consistent(self) -> None:
        """Clears OWNER_DIED after repairing what a dead owner left (like pthread_mutex_consistent)."""
        word = self._word
        while True:
            c = self._checked(_load(word))
            if c & _ID_MASK & ~_OWNER_DIED != self._id:
                raise LockError("EPERM", "this process does not hold the mutex")
            if not c & _OWNER_DIED:
                return
            ok, _ = _cas(word, c, c & ~_OWNER_DIED)
            if ok:
                return

    def __enter__(self) -> "Mutex":
        if self.lock():
            self.mark_consistent()
        return self

    def __exit__(self, *_: object) -> None:
        self.unlock()
