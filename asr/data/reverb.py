"""Room impulse responses with a requested T60, simulated with pyroomacoustics, and reverberation.

A room is a shoebox (image-source method) whose size and source/microphone
positions are drawn from a seeded RNG. The wall absorption starts from Sabine's
formula (``pyroomacoustics.inverse_sabine``), but image-source rooms do not obey
Sabine's formula well (we measured flat or long rooms decaying up to 75 % slower
at 1 s, and highly absorbing ones up to 35 % faster at 0.15 s), so the
absorption is corrected a few times until the Schroeder T30 of the simulated
RIR is within ``tolerance`` (5 %) of the request.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyroomacoustics as pra
from scipy.signal import fftconvolve

# Bounds of the simulated rooms, metres: length, width, height.
ROOM_MIN = np.array([3.0, 3.0, 2.5])
ROOM_MAX = np.array([10.0, 8.0, 4.0])
WALL_MARGIN = 0.5  # source and microphone at least this far from any wall, metres
MIN_DISTANCE = 1.0  # source-microphone distance, metres (when the room allows it)


@dataclass(frozen=True)
class RoomImpulseResponse:
    """A simulated RIR.

    Attributes:
        samples: the impulse response [L], float64.
        sample_rate: Hz.
        direct_index: sample index of the direct-path arrival in ``samples``.
        t60: the Schroeder T30 estimate of ``samples`` in seconds.
        room_dim: room size (length, width, height) in metres.
        absorption: wall energy absorption coefficient used.
    """

    samples: np.ndarray
    sample_rate: int
    direct_index: int
    t60: float
    room_dim: tuple[float, float, float]
    absorption: float


def estimate_t60(rir: np.ndarray, sample_rate: int, decay_db: tuple[float, float] = (-5.0, -35.0)) -> float:
    """Reverberation time of an impulse response from its energy decay curve.

    Schroeder backward integration gives the energy decay curve (dB); a straight
    line is fitted to it between ``decay_db[0]`` and ``decay_db[1]`` dB (T30 by
    default) and extrapolated to -60 dB. Integration starts at the first sample.

    Args:
        rir: impulse response [L].
        sample_rate: Hz.
        decay_db: the fitted range in dB below the total energy (default (-5, -35)).

    Returns:
        T60 in seconds.

    Raises:
        ValueError: the decay curve never falls below ``decay_db[1]``.
    """
    energy = np.cumsum(np.asarray(rir, dtype=np.float64)[::-1] ** 2)[::-1]
    if energy[0] <= 0.0:
        raise ValueError("impulse response is all zeros")
    with np.errstate(divide="ignore"):
        edc = 10.0 * np.log10(energy / energy[0])
    below_hi = np.nonzero(edc <= decay_db[1])[0]
    if len(below_hi) == 0:
        raise ValueError(f"energy decays by less than {-decay_db[1]} dB")
    i0 = int(np.argmax(edc <= decay_db[0]))
    i1 = int(below_hi[0])
    t = np.arange(i0, i1 + 1) / sample_rate
    slope, _ = np.polyfit(t, edc[i0:i1 + 1], 1)  # dB per second, negative
    return float(-60.0 / slope)


def _draw_room(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Room size [3] and source, microphone positions [3] in metres."""
    dim = rng.uniform(ROOM_MIN, ROOM_MAX)
    inner = dim - 2 * WALL_MARGIN
    for _ in range(100):
        src = WALL_MARGIN + rng.uniform(0.0, 1.0, 3) * inner
        mic = WALL_MARGIN + rng.uniform(0.0, 1.0, 3) * inner
        if np.linalg.norm(src - mic) >= MIN_DISTANCE:
            break
    return dim, src, mic


def _simulate(dim: np.ndarray, src: np.ndarray, mic: np.ndarray, design_t60: float,
              sample_rate: int) -> tuple[np.ndarray, int, float, np.ndarray]:
    """Image-source RIR of the room whose Sabine T60 is ``design_t60`` seconds.

    A room too large for so short a T60 (absorption above 1) is shrunk, with its
    source and microphone, until the absorption fits.

    Returns:
        (rir [L] float64, direct-path sample index, absorption, room size [3]).
    """
    scale = 1.0
    while True:
        try:
            absorption, max_order = pra.inverse_sabine(design_t60, dim * scale)
        except ValueError:
            scale *= 0.85
            continue
        if absorption <= 0.95:  # keep a little reflection on every wall
            break
        scale *= 0.85
    room = pra.ShoeBox(dim * scale, fs=sample_rate, materials=pra.Material(absorption),
                       max_order=max_order, air_absorption=False)
    room.add_source(src * scale)
    room.add_microphone(mic * scale)
    # pyroomacoustics high-passes RIRs at 10 Hz with a zero-phase filter, which
    # smears energy up to ~0.1 s before the direct sound; keep the RIR causal
    # instead (speech has next to nothing below 20 Hz for the RIR to boost).
    hpf = pra.constants.get("rir_hpf_enable")
    pra.constants.set("rir_hpf_enable", False)
    try:
        room.compute_rir()
    finally:
        pra.constants.set("rir_hpf_enable", hpf)
    rir = np.asarray(room.rir[0][0], dtype=np.float64)
    # pyroomacoustics places each arrival at distance / c plus half its
    # fractional-delay filter; the direct path is the shortest distance.
    distance = np.linalg.norm((src - mic) * scale)
    delay = distance / pra.constants.get("c") * sample_rate
    direct = int(round(delay)) + pra.constants.get("frac_delay_length") // 2
    return rir, direct, absorption, dim * scale


def simulate_rir(rng: np.random.Generator, t60: float, sample_rate: int, *,
                 tolerance: float = 0.05, max_iterations: int = 8,
                 max_rooms: int = 4) -> RoomImpulseResponse:
    """Simulate the RIR of a random shoebox room whose measured T60 is ``t60``.

    Args:
        rng: draws the room size and source/microphone positions.
        t60: requested reverberation time in seconds.
        sample_rate: Hz.
        tolerance: accepted relative error of the measured T30 (default 0.05).
        max_iterations: absorption corrections tried per room (default 8).
        max_rooms: rooms drawn at most; another room is drawn when one cannot be
            brought within ``2 * tolerance`` (default 4).

    Returns:
        The RIR closest to the request; its measured ``t60`` is within
        ``tolerance`` unless every try ran out (the best one is then returned).
    """
    best = None
    for _ in range(max_rooms):
        candidate = _calibrated_room(rng, t60, sample_rate, tolerance, max_iterations)
        error = abs(candidate.t60 / t60 - 1.0)
        if best is None or error < best[0]:
            best = (error, candidate)
        if error <= 2 * tolerance:
            break
    return best[1]


def _calibrated_room(rng: np.random.Generator, t60: float, sample_rate: int,
                     tolerance: float, max_iterations: int) -> RoomImpulseResponse:
    """One random room, its absorption corrected until its T30 is near ``t60``."""
    dim, src, mic = _draw_room(rng)
    design = t60
    tried: list[tuple[float, float]] = []  # (design T60, measured T60)
    best = None
    for _ in range(max_iterations):
        rir, direct, absorption, size = _simulate(dim, src, mic, design, sample_rate)
        measured = estimate_t60(rir, sample_rate)
        error = abs(measured / t60 - 1.0)
        if best is None or error < best[0]:
            best = (error, RoomImpulseResponse(rir, sample_rate, direct, measured,
                                               tuple(float(v) for v in size), float(absorption)))
        if error <= tolerance:
            break
        tried.append((design, measured))
        design = _next_design(tried, t60)
    return best[1]


def _next_design(tried: list[tuple[float, float]], target: float) -> float:
    """Next design T60 to try, from the (design, measured) pairs so far.

    The measured T60 grows monotonically with the design T60 (less absorption),
    roughly in proportion: scale by target / measured until the target is
    bracketed, then interpolate between the nearest bracketing pair (log scale).
    """
    below = [p for p in tried if p[1] < target]
    above = [p for p in tried if p[1] > target]
    if not below or not above:
        design, measured = tried[-1]
        return design * target / measured
    lo = max(below, key=lambda p: p[1])
    hi = min(above, key=lambda p: p[1])
    frac = (np.log(target) - np.log(lo[1])) / (np.log(hi[1]) - np.log(lo[1]))
    frac = min(max(frac, 0.1), 0.9)  # stay inside the bracket, away from its ends
    return float(np.exp(np.log(lo[0]) + frac * (np.log(hi[0]) - np.log(lo[0]))))


def reverberate(x: np.ndarray, rir: RoomImpulseResponse) -> np.ndarray:
    """Convolve ``x`` with ``rir``, aligned to the direct path, same length and energy as ``x``.

    The output is advanced by the direct-path delay, so sound heard straight from
    the source stays where it was in ``x`` (frame labels of ``x`` still apply); the
    reverberant tail past the end of ``x`` is cut. The output is scaled to the
    total energy of ``x``.

    Args:
        x: samples [T].
        rir: the room (its sample rate must be that of ``x``).

    Returns:
        Reverberant samples [T], float64.
    """
    x = np.asarray(x, dtype=np.float64)
    full = fftconvolve(x, rir.samples)  # [T + L - 1]
    y = full[rir.direct_index:rir.direct_index + len(x)]
    y = np.pad(y, (0, len(x) - len(y)))
    energy = float(np.sum(y * y))
    if energy > 0.0:
        y *= np.sqrt(float(np.sum(x * x)) / energy)
    return y
