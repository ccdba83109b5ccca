"""CPU and memory quantities: parse user input, render per backend.

CPU is held as integer millicores, memory as integer bytes. Every memory
suffix is binary (1024-based), as in Docker and JupyterHub, for both backends.
"""

from __future__ import annotations

import math
import re

CPU_HELP = "a positive number of cores such as 2 or 0.5, or integer millicores such as 500m"
MEMORY_HELP = (
    "bytes or a number with a unit such as 512m, 2g, 4Gi "
    "(b k m g t, kb mb gb tb, Ki Mi Gi Ti, kib mib gib tib; all 1024-based)"
)
MIN_MEMORY = 6 * 1024 * 1024  # Docker refuses less than 6 MiB.
_INT64_MAX = 2**63 - 1
MAX_MILLICORES = _INT64_MAX // 1_000_000  # nano_cpus must fit in int64

_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"  # ASCII digits only: "١٢" or "２" are refused
_CPU_RE = re.compile(rf"^(?P<num>{_NUMBER})(?P<unit>[a-zA-Z]*)$", re.ASCII)
_MEM_RE = re.compile(rf"^(?P<num>{_NUMBER}) ?(?P<unit>[a-zA-Z]*)$", re.ASCII)
_EXPONENT = re.compile(r"^[0-9.]+[eE][+-]?[0-9]+", re.ASCII)
_MEM_POWERS = {
    "": 0,
    "b": 0,
    "k": 1,
    "kb": 1,
    "ki": 1,
    "kib": 1,
    "m": 2,
    "mb": 2,
    "mi": 2,
    "mib": 2,
    "g": 3,
    "gb": 3,
    "gi": 3,
    "gib": 3,
    "t": 4,
    "tb": 4,
    "ti": 4,
    "tib": 4,
}
_IEC = [(4, "Ti"), (3, "Gi"), (2, "Mi"), (1, "Ki")]


def _show(value: object) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def parse_cpu(value: object, field: str = "cpu") -> int:
    """Parse a CPU quantity into integer millicores (``"500m"`` -> 500, ``2`` -> 2000)."""
    from decimal import Decimal  # loaded when something is parsed, not for showing a value

    bad = f"{field} {_show(value)}"
    if isinstance(value, bool):
        raise ValueError(f"{bad}: expected {CPU_HELP}")
    if isinstance(value, int):
        millis = Decimal(value) * 1000
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{bad}: must be a finite number; expected {CPU_HELP}")
        millis = Decimal(repr(value)) * 1000
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValueError(f"{field} '': empty; expected {CPU_HELP}")
        m = _CPU_RE.match(text)
        if not m and _EXPONENT.match(text):
            raise ValueError(f"{bad}: exponent notation is not accepted; expected {CPU_HELP}")
        if not m:
            raise ValueError(f"{bad}: expected {CPU_HELP}")
        unit = m["unit"]
        if unit not in ("", "m"):
            raise ValueError(f"{bad}: unknown unit '{unit}' (only 'm' for millicores); expected {CPU_HELP}")
        num = Decimal(m["num"])
        if unit == "m":
            if num != num.to_integral_value():
                raise ValueError(f"{bad}: millicores must be a whole number; expected {CPU_HELP}")
            millis = num
        else:
            millis = num * 1000
    else:
        raise ValueError(f"{field} of type {type(value).__name__}: expected {CPU_HELP}")
    if millis <= 0:
        raise ValueError(f"{bad}: must be greater than zero; expected {CPU_HELP}")
    if millis != millis.to_integral_value():
        raise ValueError(f"{bad}: finer than 1m (one thousandth of a core); expected {CPU_HELP}")
    if millis > MAX_MILLICORES:
        raise ValueError(f"{bad}: too large; expected {CPU_HELP}")
    return int(millis)


def parse_memory(value: object, field: str = "memory", minimum: int | None = None) -> int:
    """Parse a memory quantity into integer bytes (``"2g"`` -> 2147483648).

    ``minimum``: the smallest value accepted (default: Docker's 6 MiB; sizes of files pass 1)."""
    from decimal import Decimal, InvalidOperation

    bad = f"{field} {_show(value)}"
    if isinstance(value, bool):
        raise ValueError(f"{bad}: expected {MEMORY_HELP}")
    if isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise ValueError(f"{bad}: a number of bytes must be a whole number; expected {MEMORY_HELP}")
        amount = Decimal(int(value))
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValueError(f"{field} '': empty; expected {MEMORY_HELP}")
        m = _MEM_RE.match(text)
        if not m and _EXPONENT.match(text):
            raise ValueError(f"{bad}: exponent notation is not accepted; expected {MEMORY_HELP}")
        if not m:
            raise ValueError(f"{bad}: expected {MEMORY_HELP}")
        unit = m["unit"].lower()
        if unit not in _MEM_POWERS:
            raise ValueError(f"{bad}: unknown unit '{m['unit']}'; expected {MEMORY_HELP}")
        try:
            num = Decimal(m["num"])
        except InvalidOperation:  # pragma: no cover - the regex admits only decimals
            raise ValueError(f"{bad}: expected {MEMORY_HELP}") from None
        if unit == "" and num != num.to_integral_value():
            raise ValueError(f"{bad}: a number of bytes must be a whole number; expected {MEMORY_HELP}")
        # Fractions of a byte are dropped, as Docker does ("1.1g").
        amount = (num * (1024 ** _MEM_POWERS[unit])).to_integral_value(rounding="ROUND_FLOOR")
    else:
        raise ValueError(f"{field} of type {type(value).__name__}: expected {MEMORY_HELP}")
    if amount <= 0:
        raise ValueError(f"{bad}: must be greater than zero; expected {MEMORY_HELP}")
    if minimum is None and amount < MIN_MEMORY:
        raise ValueError(f"{bad}: below the minimum of 6MiB (Docker's limit); expected {MEMORY_HELP}")
    if minimum is not None and amount < minimum:
        raise ValueError(f"{bad}: below the minimum of {minimum} bytes; expected {MEMORY_HELP}")
    if amount > _INT64_MAX:
        raise ValueError(f"{bad}: too large; expected {MEMORY_HELP}")
    return int(amount)


def docker_nano_cpus(millicores: int) -> int:
    """Docker's ``nano_cpus`` for a CPU quantity."""
    return millicores * 1_000_000


MIN_SHARES, MAX_SHARES = 2, 262144  # the kubelet's bounds (and the kernel's cpu.shares range)


def docker_cpu_shares(millicores: int) -> int:
    """Docker ``cpu_shares`` for a CPU request, mapped and bounded as the kubelet maps requests."""
    return min(MAX_SHARES, max(MIN_SHARES, millicores * 1024 // 1000))


def k8s_cpu(millicores: int) -> str:
    """Kubernetes quantity: ``"500m"``, or ``"2"`` when whole cores."""
    return str(millicores // 1000) if millicores % 1000 == 0 else f"{millicores}m"


def k8s_memory(num_bytes: int) -> str:
    """Kubernetes quantity in the largest exact IEC unit (``"4Gi"``) or plain bytes."""
    for power, suffix in _IEC:
        unit = 1024**power
        if num_bytes % unit == 0:
            return f"{num_bytes // unit}{suffix}"
    return str(num_bytes)


def human_cpu(millicores: int) -> str:
    """Short display form: ``"2 cores"``, ``"500m"``."""
    if millicores % 1000 == 0:
        n = millicores // 1000
        return f"{n} core" if n == 1 else f"{n} cores"
    return f"{millicores}m"


def approx_size(num_bytes: float) -> str:
    """A size as people read it, rounded: ``"512 B"``, ``"1.0 MiB"``, ``"2.3 GiB"`` (not for parsing back)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if num_bytes < 1024 or unit == "GiB":
            return f"{num_bytes:.0f} {unit}" if unit == "B" else f"{num_bytes:.1f} {unit}"
        num_bytes /= 1024
    return f"{num_bytes} B"


def human_memory(num_bytes: int) -> str:
    """Short display form: ``"4g"``, ``"512m"``; exact, so it parses back to the same bytes."""
    if num_bytes == 0:
        return "0"
    for power, suffix in ((4, "t"), (3, "g"), (2, "m"), (1, "k")):
        unit = 1024**power
        if num_bytes % unit == 0:
            return f"{num_bytes // unit}{suffix}"
    return str(num_bytes)


__all__ = [
    "CPU_HELP",
    "MAX_MILLICORES",
    "MEMORY_HELP",
    "MIN_MEMORY",
    "docker_cpu_shares",
    "docker_nano_cpus",
    "human_cpu",
    "human_duration",
    "human_memory",
    "k8s_cpu",
    "k8s_memory",
    "parse_cpu",
    "parse_duration",
    "parse_gpus",
    "parse_memory",
]

GPUS_HELP = "a number of GPUs (0, 1, 2, …) or all"
ALL_GPUS = -1  # "all": every GPU the host has (Docker only)


def parse_gpus(value: object, field: str = "gpus") -> int:
    """A GPU count, or ``ALL_GPUS`` for ``"all"``; ``ValueError`` naming the field."""
    if isinstance(value, bool):
        raise ValueError(f"{field} {_show(value)}: expected {GPUS_HELP}")
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "all":
            return ALL_GPUS
        if not re.fullmatch(r"[0-9]{1,4}", text):
            raise ValueError(f"{field} {_show(value)}: expected {GPUS_HELP}")
        value = int(text)
    if not isinstance(value, int) or value < 0 or value > 1024:
        raise ValueError(f"{field} {_show(value)}: expected {GPUS_HELP}")
    return value


DURATION_HELP = "a duration such as 90s, 15m, 8h, 7d, 2w or 1h30m (a bare number is seconds)"
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|m|s)", re.IGNORECASE)
_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(value: object, field: str = "duration") -> float:
    """Seconds from ``"8h"``, ``"1h30m"``, ``"7d"`` or a number of seconds; ``ValueError`` naming the field."""
    bad = f"{field} {_show(value)}"
    if isinstance(value, bool):
        raise ValueError(f"{bad}: expected {DURATION_HELP}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            seconds = float(text)
        elif text and _DURATION_PART.sub("", text) == "":
            seconds = sum(float(n) * _UNIT_SECONDS[u.lower()] for n, u in _DURATION_PART.findall(text))
        else:
            raise ValueError(f"{bad}: expected {DURATION_HELP}")
    else:
        raise ValueError(f"{field} of type {type(value).__name__}: expected {DURATION_HELP}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{bad}: must be greater than zero; expected {DURATION_HELP}")
    return seconds


def human_duration(seconds: float) -> str:
    """``90`` -> ``1m30s``, ``28800`` -> ``8h``, ``604800`` -> ``7d``."""
    left = round(seconds)
    parts = []
    for unit in ("d", "h", "m", "s"):
        size = _UNIT_SECONDS[unit]
        if left >= size:
            parts.append(f"{left // size}{unit}")
            left %= size
    return "".join(parts) or "0s"
