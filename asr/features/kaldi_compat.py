"""Kaldi-compatible log mel filterbank (fbank) and MFCC features, vectorised in torch.

Same arithmetic as Kaldi's ``compute-fbank-feats`` / ``compute-mfcc-feats`` (and
``torchaudio.compliance.kaldi``): framing with ``snip_edges``, dither, DC
removal, raw log energy, pre-emphasis, window, zero-padded FFT power spectrum, Kaldi mel
banks, log. All frames of an utterance are processed at once (framing is a strided view),
the signal is dithered once rather than per frame, and the window, mel banks and DCT are
cached.

Computation is float32, like Kaldi's, and follows kaldi-native-fbank (>= 1.21.2, the
reference our tests compare with) operation for operation where rounding shows:

- the FFT reproduces its float32 KISS FFT bit for bit (:func:`kissfft_power_spectrum`).
  Any float32 FFT errs in every bin by ~1e-7 of the frame's largest spectral magnitude,
  which moves a mel bin's log energy by up to ~8e-8 / sqrt(bin power / frame power): by
  ~2e-3 for the lowest bins of loud mini-TIMIT frames (1e-9 of the frame's power and
  below). There kaldi-native-fbank's FFT differs from ``torch.fft.rfft`` by 2.3e-3 and
  from a float64 FFT by 2e-3. With its FFT we stay within 2e-5 (fbank) and 7e-5 (MFCC)
  of kaldi-native-fbank in every bin; it roughly halves our speed (~130 numpy operations
  per utterance instead of one ``torch.fft.rfft``);
- the mel filters use Kaldi's float32 formulas (torchaudio's filters differ by up to 2e-4
  relative in small edge weights).

With ``round_to_power_of_two=False`` the FFT is torch's (kaldi-native-fbank then uses KISS
FFT's mixed-radix code, not reproduced here).

Waveforms are taken as given: Kaldi reads 16-bit audio as integers, so to reproduce
Kaldi's numbers on a WAV file pass samples scaled to the int16 range (``x * 32768``);
``dither`` is in the same units.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

# Kaldi floors energies at float epsilon before taking logs.
_EPS = float(np.finfo(np.float32).eps)
WINDOW_TYPES = ("povey", "hamming", "hanning", "rectangular", "blackman")


def num_frames(num_samples: int, frame_length: int, frame_shift: int, snip_edges: bool) -> int:
    """Frames Kaldi makes from ``num_samples`` samples (window and hop in samples)."""
    if snip_edges:
        return 0 if num_samples < frame_length else 1 + (num_samples - frame_length) // frame_shift
    return (num_samples + frame_shift // 2) // frame_shift


def frame_signal(
    waveform: torch.Tensor, frame_length: int, frame_shift: int, snip_edges: bool
) -> torch.Tensor:
    """Cut a waveform into overlapping frames.

    Args:
        waveform: [T] samples.
        frame_length, frame_shift: window and hop, in samples.
        snip_edges: True: only frames fully inside the signal (a view, no copy).
            False: frames centred on multiples of the hop, the signal mirrored at its ends
            (Kaldi's reflection: sample -1 is sample 0, sample T is sample T-1).

    Returns:
        [frames, frame_length]; frames from :func:`num_frames` (may be 0).
    """
    n = waveform.shape[0]
    m = num_frames(n, frame_length, frame_shift, snip_edges)
    if m == 0:
        return waveform.new_zeros((0, frame_length))
    if not snip_edges:
        first = frame_shift // 2 - frame_length // 2  # first sample of frame 0 (<= 0)
        last = (m - 1) * frame_shift + first + frame_length  # one past the last sample used
        if first > 0:  # hop longer than the window: skip the unused head
            waveform, n, last, first = waveform[first:], n - first, last - first, 0
        pad_left, pad_right = -first, max(0, last - n)
        if pad_left > 0 or pad_right > 0:
            # numpy's "symmetric" is exactly Kaldi's reflection, repeated if needed.
            padded = np.pad(waveform.numpy(), (pad_left, pad_right), mode="symmetric")
            waveform = torch.from_numpy(padded)
    return waveform.unfold(0, frame_length, frame_shift)[:m]


@lru_cache(maxsize=16)
def frame_window(window_type: str, length: int, blackman_coeff: float = 0.42) -> torch.Tensor:
    """Kaldi's analysis window of ``length`` samples, float32 [length]."""
    if window_type not in WINDOW_TYPES:
        raise ValueError(f"window_type '{window_type}' not one of {WINDOW_TYPES}")
    i = torch.arange(length, dtype=torch.float64)
    a = 2 * math.pi / (length - 1)
    if window_type == "hanning":
        w = 0.5 - 0.5 * torch.cos(a * i)
    elif window_type == "hamming":
        w = 0.54 - 0.46 * torch.cos(a * i)
    elif window_type == "povey":  # Hann raised to 0.85: like Hamming but goes to zero at the edges
        w = (0.5 - 0.5 * torch.cos(a * i)).pow(0.85)
    elif window_type == "rectangular":
        w = torch.ones(length, dtype=torch.float64)
    else:
        w = blackman_coeff - 0.5 * torch.cos(a * i) + (0.5 - blackman_coeff) * torch.cos(2 * a * i)
    return w.float()


def _mel_scale(freq: np.ndarray) -> np.ndarray:
    """Kaldi's ``MelScale`` in float32: ``1127 * log(1 + f / 700)``.

    The log is taken in float64 and rounded: Kaldi's ``logf`` may differ in the last bit.
    """
    ratio = np.float32(1.0) + freq / np.float32(700.0)
    return np.float32(1127.0) * np.log(ratio.astype(np.float64)).astype(np.float32)


@lru_cache(maxsize=16)
def mel_banks(
    num_mel_bins: int, padded_length: int, sample_rate: float, low_freq: float, high_freq: float
) -> torch.Tensor:
    """Kaldi's triangular mel filters as a matrix [padded_length // 2, num_mel_bins], float32.

    Kaldi's ``MelBanks`` arithmetic, in float32 like Kaldi (the small weights at the edges
    of a triangle are differences of nearby mel values, so their rounding shows: torchaudio's
    ``get_mel_banks`` differs from Kaldi's by up to 2e-4 relative there). Kaldi ignores the
    Nyquist FFT bin, so the matrix has ``padded_length // 2`` rows.

    Args:
        num_mel_bins: filters (at least 3).
        padded_length: FFT size in samples.
        sample_rate: Hz.
        low_freq, high_freq: Hz; ``high_freq <= 0`` is an offset from Nyquist.

    Raises:
        ValueError: a frequency outside ``[0, Nyquist]``, ``high_freq <= low_freq``, or so
            many bins that one of them covers no FFT bin.
    """
    f32 = np.float32
    nyquist = f32(0.5) * f32(sample_rate)
    low = f32(low_freq)
    high = f32(high_freq) if high_freq > 0.0 else nyquist + f32(high_freq)
    if num_mel_bins < 3 or not (0.0 <= low < nyquist and 0.0 < high <= nyquist and low < high):
        raise ValueError(
            f"bad mel options: num_mel_bins {num_mel_bins}, low_freq {low_freq}, high_freq {high_freq} "
            f"(Nyquist {float(nyquist)})"
        )
    mel_low, mel_high = _mel_scale(low), _mel_scale(high)
    delta = (mel_high - mel_low) / f32(num_mel_bins + 1)
    edges = mel_low + np.arange(num_mel_bins + 2, dtype=f32) * delta  # left/centre/right of each bin
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]  # [bins, 1]
    fft_bin_width = f32(sample_rate) / f32(padded_length)
    mel = _mel_scale(fft_bin_width * np.arange(padded_length // 2, dtype=f32))[None, :]  # [1, n/2]
    weights = np.where(mel <= centre, (mel - left) / (centre - left), (right - mel) / (right - centre))
    weights = np.where((mel > left) & (mel < right), weights, f32(0.0))
    if not weights.any(axis=1).all():
        raise ValueError(f"num_mel_bins {num_mel_bins} too large: a mel bin covers no FFT bin")
    return torch.from_numpy(np.ascontiguousarray(weights.T, dtype=f32))


@lru_cache(maxsize=16)
def dct_matrix(num_ceps: int, num_mel_bins: int, cepstral_lifter: float) -> torch.Tensor:
    """Kaldi's orthonormal DCT-II times the cepstral lifter: [num_mel_bins, num_ceps], float32."""
    n = torch.arange(num_mel_bins, dtype=torch.float64)
    k = torch.arange(num_ceps, dtype=torch.float64)
    dct = torch.cos(math.pi / num_mel_bins * (n[:, None] + 0.5) * k[None, :]) * math.sqrt(2.0 / num_mel_bins)
    dct[:, 0] = math.sqrt(1.0 / num_mel_bins)
    if cepstral_lifter != 0.0:
        dct = dct * (1.0 + 0.5 * cepstral_lifter * torch.sin(math.pi * k / cepstral_lifter))
    return dct.float()


# kaldi-native-fbank's FFT, reproduced. Its real FFT is KISS FFT's ``kiss_fftr`` in float32:
# an n/2-point complex FFT of the even/odd samples (``kf_work``: recursive decimation in
# time, radix 4 first, then 2), followed by a split pass. KISS FFT is built with
# -ffast-math, and the compiler regrouped some sums: e.g. ``F0 + C_MUL(a2, tw2)`` is
# computed ``(F0.r + a2.r*tw2.r) - a2.i*tw2.i``. The formulas below were read from the
# machine code of the kaldi-native-fbank 1.23 wheel for x86-64 Linux (each product and sum
# rounded to float32, no fused multiply-add); their outputs equal ``kaldi_native_fbank.Rfft``'s
# bit for bit for every power of two from 4 to 2048 (the tests check it). A build that
# regroups differently or fuses multiply-adds (e.g. on ARM) rounds differently.


def _kissfft_radices(n: int) -> list[int]:
    """KISS FFT's factorisation of an n-point complex FFT (``kf_factor``), outermost first."""
    radices, p, limit = [], 4, math.floor(math.sqrt(n))
    while True:
        while n % p:
            p = {4: 2, 2: 3}.get(p, p + 2)
            if p > limit:
                p = n
        n //= p
        radices.append(p)
        if n <= 1:
            return radices


@lru_cache(maxsize=8)
def _kissfft_plan(n_fft: int) -> tuple[np.ndarray, tuple, tuple[np.ndarray, np.ndarray]]:
    """(input rows, butterfly stages, split twiddles) of KISS FFT's ``n_fft``-point real FFT.

    Stages run innermost first as (radix p, span m, twiddles); twiddles is None where
    m == 1 (all twiddles are 1: exact) and otherwise the real and imaginary parts of
    ``tw_q[k] = exp(-2 pi i q k G / n)``, q = 1, 2, 3, each [3, 1, m, 1] float32, for the
    G = n / (p m) groups of the stage.
    """
    n = n_fft // 2
    radices = _kissfft_radices(n)
    if any(p not in (2, 4) for p in radices) or 2 in radices[:-1]:
        raise ValueError(f"n_fft must be a power of two >= 4, got {n_fft}")
    step = (1.0 / n) * (-2.0 * math.pi)  # kiss_fft_alloc's phase step, as compiled
    twiddles = np.array([(math.cos(i * step), math.sin(i * step)) for i in range(n)]).astype(np.float32)
    stages, m = [], 1
    for p in reversed(radices):
        tw = None
        if m > 1:
            index = np.arange(1, 4)[:, None] * np.arange(m) * (n // (p * m))  # [3, m]
            tw = tuple(np.ascontiguousarray(twiddles[index, c][:, None, :, None]) for c in (0, 1))
        stages.append((p, m, tw))
        m *= p
    phase = [((k + 1) * (1.0 / n) + 0.5) * -math.pi for k in range(n // 2)]  # kiss_fftr_alloc's
    split = np.array([(math.cos(x), math.sin(x)) for x in phase]).astype(np.float32)
    # Decimation in time: output slot (q1, q2, ...) of the recursion reads input q1 + p1 q2 + ...
    order = np.arange(n).reshape(radices[::-1]).transpose(range(len(radices) - 1, -1, -1)).reshape(-1)
    # The first stage reads its p inputs as contiguous [n / p, F] blocks: order them radix-major.
    order = order.reshape(-1, radices[-1]).T.reshape(-1)
    return 2 * order, tuple(stages), (np.ascontiguousarray(split[:, :1]), np.ascontiguousarray(split[:, 1:]))


def _kissfft_radix4(
    re: np.ndarray, im: np.ndarray, tw: tuple | None, out_re: np.ndarray, out_im: np.ndarray
) -> None:
    """One forward ``kf_bfly4`` pass: inputs q and outputs r as [4, G, m, F] (real, imaginary)."""
    f0r, f0i = re[0], im[0]
    if tw is None:  # m == 1: twiddles are (1, -0) and every product is exact
        s0r, s0i, s2i = re[1], im[1], im[3]
        f0r_, s5r, f0i_, s5i = f0r + re[2], f0r - re[2], f0i + im[2], f0i - im[2]
        s3r, s4r = re[1] + re[3], re[1] - re[3]
    else:
        # scratch[0..2] = C_MUL(a_q, tw_q), q = 1, 2, 3: the compiled code rounds the real
        # part of scratch[0] only; those of scratch[1], scratch[2] are folded into the sums.
        tw_r, tw_i = tw
        p, q = re[1:] * tw_r, im[1:] * tw_i
        s = im[1:] * tw_r
        s += re[1:] * tw_i  # imaginary parts
        s0r, s0i, s1i, s2i = p[0] - q[0], s[0], s[1], s[2]
        f0r_ = f0r + p[1]
        f0r_ -= q[1]
        s5r = f0r + q[1]
        s5r -= p[1]
        f0i_, s5i = f0i + s1i, f0i - s1i
        s3r = s0r - q[2]
        s3r += p[2]
        s4r = s0r - p[2]
        s4r += q[2]
    s3i = s0i + s2i
    np.add(f0r_, s3r, out=out_re[0])
    np.add(f0i_, s3i, out=out_im[0])
    np.subtract(f0r_, s3r, out=out_re[2])
    np.subtract(f0i_, s3i, out=out_im[2])
    np.add(s5r, s0i, out=out_re[1])
    out_re[1] -= s2i
    np.subtract(s5i, s4r, out=out_im[1])
    np.add(s5r, s2i, out=out_re[3])
    out_re[3] -= s0i
    np.add(s5i, s4r, out=out_im[3])


def _kissfft_complex(re: np.ndarray, im: np.ndarray, stages: tuple) -> tuple[np.ndarray, np.ndarray]:
    """``kiss_fft`` of F sequences at once: [n, F] in (first stage's order), [n, F] out.

    Each stage reads its inputs as contiguous [p, G, m, F] blocks (input q of group g at
    offset k) and writes its outputs likewise, [p, G, m, F] (output r); one transposed
    copy then regroups them as the next stage's inputs.
    """
    n, num_frames = re.shape
    for s, (p, m, tw) in enumerate(stages):
        groups = n // (p * m)
        re, im = re.reshape(p, groups, m, num_frames), im.reshape(p, groups, m, num_frames)
        out_re, out_im = np.empty_like(re), np.empty_like(im)
        if p == 4:
            _kissfft_radix4(re, im, tw, out_re, out_im)
        else:  # kf_bfly2, only ever the first stage (m == 1, exact twiddles)
            for a, o in ((re, out_re), (im, out_im)):
                np.add(a[0], a[1], out=o[0])
                np.subtract(a[0], a[1], out=o[1])
        if s + 1 < len(stages):
            # Next stage: radix p', span p m; its group g' input q' is our group g' p' + q'.
            shape = (p, groups // stages[s + 1][0], stages[s + 1][0], m, num_frames)
            re, im = (np.ascontiguousarray(x.reshape(shape).transpose(2, 1, 0, 3, 4)) for x in (out_re, out_im))
    return out_re.reshape(n, num_frames), out_im.reshape(n, num_frames)  # one group: bin r m + k


def _kissfft_split_power(re: np.ndarray, im: np.ndarray, split_r: np.ndarray, split_i: np.ndarray) -> np.ndarray:
    """``kiss_fftr``'s split pass then ``ComputePowerSpectrum``: the n-point complex FFT [n, F]
    of the even/odd samples -> power of the 2n-point real FFT, bins 0 .. n - 1, [n, F]."""
    n, num_frames = re.shape
    k = n // 2
    power = np.empty((n, num_frames), np.float32)
    dc = re[0] + im[0]
    np.multiply(dc, dc, out=power[0])
    fr, fi = re[1 : k + 1], im[1 : k + 1]  # tmp[k], k = 1 .. n/2
    br, bi = re[n - k :][::-1], im[n - k :][::-1]  # tmp[n - k]
    f1r, f2r, f2i, d = br + fr, fr - br, bi + fi, fi - bi  # f1k = fpk + fpnk, f2k = fpk - fpnk
    pr, qr = f2r * split_r, f2i * split_i  # tw = C_MUL(f2k, split twiddle): real part folded in
    tw_i = f2i * split_r
    f2r *= split_i
    tw_i += f2r
    half = np.float32(0.5)
    a = f1r + pr  # bin k: ((f1k.r + p) - q) / 2, (f1k.i + tw.i) / 2
    a -= qr
    b = d + tw_i
    for x in (a, b):
        x *= half
        x *= x
    np.add(a[:-1], b[:-1], out=power[1:k])  # bin n/2 is written twice by kiss_fftr: the 2nd stays
    f1r += qr  # bin n - k: ((f1k.r + q) - p) / 2, (tw.i - f1k.i) / 2
    f1r -= pr
    tw_i -= d
    for x in (f1r, tw_i):
        x *= half
        x *= x
    np.add(f1r, tw_i, out=power[n - 1 : n - k - 1 : -1])
    return power


def kissfft_power_spectrum(frames: torch.Tensor, n_fft: int) -> torch.Tensor:
    """Power spectrum of zero-padded frames, bins 0 .. n_fft/2 - 1, as kaldi-native-fbank
    computes it (its float32 KISS FFT and ``ComputePowerSpectrum``), bit for bit.

    Args:
        frames: [F, L] float32 (L <= n_fft).
        n_fft: FFT size, a power of two >= 4.

    Returns:
        [F, n_fft // 2] float32 (a transposed view).

    Example:
        >>> x = torch.randn(3, 400)
        >>> p = kissfft_power_spectrum(x, 512)
        >>> ref = torch.fft.rfft(x.double(), n=512).abs().square()[:, :256]
        >>> bool(torch.allclose(p.double(), ref, rtol=1e-4, atol=1e-3))
        True
    """
    rows, stages, (split_r, split_i) = _kissfft_plan(n_fft)
    num_frames, length = frames.shape
    padded = np.zeros((n_fft, num_frames), np.float32)  # frames last: long contiguous rows
    padded[:length] = frames.numpy().T
    re, im = _kissfft_complex(padded[rows], padded[rows + 1], stages)  # even, odd samples
    return torch.from_numpy(_kissfft_split_power(re, im, split_r, split_i)).T


def power_spectrum(frames: torch.Tensor, n_fft: int) -> torch.Tensor:
    """[F, L] frames -> [F, n_fft // 2] power (KISS FFT for powers of two, else torch)."""
    if n_fft >= 4 and n_fft & (n_fft - 1) == 0:
        return kissfft_power_spectrum(frames, n_fft)
    spectrum = torch.fft.rfft(frames, n=n_fft)  # [F, n_fft/2 + 1]
    return (spectrum.real.square() + spectrum.imag.square())[:, : n_fft // 2]


def _mono(waveform: torch.Tensor | np.ndarray, channel: int) -> torch.Tensor:
    x = torch.as_tensor(waveform)
    if x.dim() == 2:
        x = x[channel]
    if x.dim() != 1:
        raise ValueError(f"waveform must be [T] or [C, T], got shape {tuple(x.shape)}")
    return x.float()


def _log_mel_and_energy(
    waveform: torch.Tensor | np.ndarray,
    sample_rate: float,
    num_mel_bins: int,
    frame_length: float,
    frame_shift: float,
    dither: float,
    preemphasis_coefficient: float,
    remove_dc_offset: bool,
    window_type: str,
    round_to_power_of_two: bool,
    snip_edges: bool,
    low_freq: float,
    high_freq: float,
    raw_energy: bool,
    energy_floor: float,
    channel: int,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shared front end: ([frames, num_mel_bins] log mel energies, [frames] log energy)."""
    x = _mono(waveform, channel)
    length = int(sample_rate * frame_length * 0.001)
    shift = int(sample_rate * frame_shift * 0.001)
    padded = 1 << (length - 1).bit_length() if round_to_power_of_two else length
    if dither != 0.0:
        # Kaldi draws fresh noise for every frame; we dither the signal once, which gives
        # each frame the same noise distribution with 2.5x fewer random draws.
        x = x + dither * torch.randn(x.shape, generator=generator)
    frames = frame_signal(x, length, shift, snip_edges)  # [F, L] view
    if frames.shape[0] == 0:
        return x.new_zeros((0, num_mel_bins)), x.new_zeros((0,))
    if remove_dc_offset:
        frames = frames - frames.mean(dim=1, keepdim=True)
    if raw_energy:  # energy before pre-emphasis and windowing (Kaldi's default)
        energy = frames.square().sum(dim=1)
    if preemphasis_coefficient != 0.0:
        # x[i] - c * x[i-1], with x[-1] := x[0] (Kaldi)
        prev = torch.cat((frames[:, :1], frames[:, :-1]), dim=1)
        frames = frames - preemphasis_coefficient * prev
    frames = frames * frame_window(window_type, length)
    if not raw_energy:
        energy = frames.square().sum(dim=1)
    power = power_spectrum(frames.contiguous(), padded)  # [F, padded/2]
    banks = mel_banks(num_mel_bins, padded, float(sample_rate), float(low_freq), float(high_freq))
    mel = power @ banks  # [F, num_mel_bins]
    log_mel = mel.clamp_min(_EPS).log()
    log_energy = energy.clamp_min(_EPS).log()
    if energy_floor > 0.0:
        log_energy = log_energy.clamp_min(math.log(energy_floor))
    return log_mel, log_energy


def fbank(
    waveform: torch.Tensor | np.ndarray,
    sample_rate: float = 16000,
    num_mel_bins: int = 40,
    frame_length: float = 25.0,
    frame_shift: float = 10.0,
    dither: float = 0.0,
    preemphasis_coefficient: float = 0.97,
    remove_dc_offset: bool = True,
    window_type: str = "povey",
    round_to_power_of_two: bool = True,
    snip_edges: bool = True,
    low_freq: float = 20.0,
    high_freq: float = 0.0,
    use_energy: bool = False,
    raw_energy: bool = True,
    energy_floor: float = 0.0,
    channel: int = 0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Kaldi log mel filterbank features (``compute-fbank-feats``).

    Args:
        waveform: [T] or [C, T] samples (Kaldi scale: int16 range for 16-bit audio).
        sample_rate: Hz.
        num_mel_bins: mel filters (default 40; Kaldi's is 23).
        frame_length, frame_shift: ms (default 25 and 10).
        dither: std of Gaussian noise added to the samples; 0 (default) disables.
        preemphasis_coefficient: default 0.97.
        remove_dc_offset: subtract each frame's mean (default True).
        window_type: ``povey`` (default), ``hamming``, ``hanning``, ``rectangular``, ``blackman``.
        round_to_power_of_two: zero-pad frames to a power of two for the FFT (default True).
        snip_edges: only frames that fit in the signal (default True, as Kaldi).
        low_freq, high_freq: mel range, Hz; ``high_freq <= 0`` is an offset from Nyquist.
        use_energy: prepend log energy as column 0 (default False).
        raw_energy: energy before pre-emphasis and window (default True).
        energy_floor: absolute floor on the energy; 0 (default) disables.
        channel: channel used when ``waveform`` is [C, T] (default 0).
        generator: random source of the dither (for reproducible runs).

    Returns:
        [frames, num_mel_bins (+1 with use_energy)] float32 natural-log energies; frames is
        ``1 + (T - window) // hop`` with snip_edges (0 when T < window), else ``(T + hop/2) // hop``.
    """
    log_mel, log_energy = _log_mel_and_energy(
        waveform, sample_rate, num_mel_bins, frame_length, frame_shift, dither,
        preemphasis_coefficient, remove_dc_offset, window_type, round_to_power_of_two,
        snip_edges, low_freq, high_freq, raw_energy, energy_floor, channel, generator,
    )
    if use_energy:
        return torch.cat((log_energy[:, None], log_mel), dim=1)
    return log_mel


def mfcc(
    waveform: torch.Tensor | np.ndarray,
    sample_rate: float = 16000,
    num_ceps: int = 13,
    num_mel_bins: int = 23,
    frame_length: float = 25.0,
    frame_shift: float = 10.0,
    dither: float = 0.0,
    preemphasis_coefficient: float = 0.97,
    remove_dc_offset: bool = True,
    window_type: str = "povey",
    round_to_power_of_two: bool = True,
    snip_edges: bool = True,
    low_freq: float = 20.0,
    high_freq: float = 0.0,
    use_energy: bool = True,
    raw_energy: bool = True,
    energy_floor: float = 0.0,
    cepstral_lifter: float = 22.0,
    channel: int = 0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Kaldi MFCCs (``compute-mfcc-feats``); options as :func:`fbank`, Kaldi's defaults.

    Args:
        num_ceps: cepstra kept, C0 included (default 13).
        num_mel_bins: mel filters (default 23, as Kaldi).
        use_energy: replace C0 by the log energy (default True, as Kaldi).
        cepstral_lifter: liftering coefficient Q (default 22; 0 disables).
        (others): see :func:`fbank`.

    Returns:
        [frames, num_ceps] float32.
    """
    if num_ceps > num_mel_bins:
        raise ValueError(f"num_ceps ({num_ceps}) > num_mel_bins ({num_mel_bins})")
    log_mel, log_energy = _log_mel_and_energy(
        waveform, sample_rate, num_mel_bins, frame_length, frame_shift, dither,
        preemphasis_coefficient, remove_dc_offset, window_type, round_to_power_of_two,
        snip_edges, low_freq, high_freq, raw_energy, energy_floor, channel, generator,
    )
    ceps = log_mel @ dct_matrix(num_ceps, num_mel_bins, float(cepstral_lifter))
    if use_energy:
        ceps[:, 0] = log_energy
    return ceps
