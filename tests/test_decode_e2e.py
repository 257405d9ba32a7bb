"""Decoding end to end on tiny mini-TIMIT through the real commands: the recipe's results
table and results.json, asr-decode reproducing them and scoring a new contaminated set, and
asr-transcribe on WAV, 8 kHz FLAC and a folder (fbank CTC; fMLLR hybrid, slow)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF

from cli_run import BIN, ENV
from cli_run import read_hyps as _hyps
from cli_run import run_ok as _run

SMALL_GRID = ["decode.acoustic_scales=[0.5,1.0]", "decode.blank_penalties=[0.0,1.0]", "decode.prior_scales=[1.0]",
              "decode.phone_penalties=[0.0]", "decode.word_penalties=[0.0,1.0]", "decode.num_workers=2",
              "decode.progress=false"]


def _speaker_files(exp: Path, set_name: str) -> tuple[str, dict[str, Path]]:
    """A test speaker of ``set_name`` and utt -> audio file of each of their utterances."""
    wav = dict(line.split(maxsplit=1) for line in (exp / "data" / set_name / "wav.scp").read_text().splitlines())
    utt2spk = dict(line.split() for line in (exp / "data" / set_name / "utt2spk").read_text().splitlines())
    spk = sorted(set(utt2spk.values()))[0]
    return spk, {u: Path(wav[u].strip()) for u in sorted(utt2spk) if utt2spk[u] == spk}


def _check_results(exp: Path, sets: list[str], gmm: bool) -> dict:
    res = json.loads((exp / "results.json").read_text())
    assert res["tuned_on"] == "dev" and res["metric"] == "per"
    for name in sets:
        r = res["test_sets"][name]
        assert 0.0 <= r["per"] <= 100.0 and 0.0 <= r["wer"] <= 200.0 and r["n_utts"] > 0
        for sub in ("", "words/"):
            assert (exp / "decode" / name / f"{sub}score.txt").read_text().startswith("%WER ")
            assert (exp / "decode" / name / f"{sub}hyp.txt").is_file()
    assert set(res["decoding"]) == {"phones", "words"}
    if gmm:
        assert set(res["gmm"]) == {"mono", "tri1", "tri2", "tri3"}
        assert all(res["gmm"]["tri3"][n]["wer"] is not None for n in sets)
    return res


def test_ctc_recipe_decodes_and_asr_decode_and_transcribe_agree(mini_timit_root: Path, tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    r = _run([str(BIN / "asr-train"), "recipe=timit_ligru_ctc", f"data.root={mini_timit_root}", f"exp_dir={exp}",
              "model.num_layers=1", "model.hidden_size=64", "optim.epochs=15", "optim.lr=0.004",
              "optim.newbob_factor=1.0", "train.progress=false", "num_workers=1", "features.num_mel_bins=23",
              "features.dither=0.0",
              *SMALL_GRID])
    out = r.stdout + r.stderr
    assert "| model | dev PER | dev WER | test PER | test WER |" in out  # the one results table
    res = _check_results(exp, ["test"], gmm=False)
    assert res["task"] == "ctc" and res["cell"] == "ligru" and "greedy_per" in res["test_sets"]["test"]
    assert res["decoding"]["phones"]["blank_penalty"] in (0.0, 1.0)

    # asr-decode reproduces the figures (tuning again on dev) and builds a set never built before.
    out2 = tmp_path / "redecode"
    _run([str(BIN / "asr-decode"), f"checkpoint={exp / 'best.pt'}", f"out={out2}",
          "data.test_sets=[test,test_white_snr0]"])
    res2 = json.loads((out2 / "results.json").read_text())
    assert res2["test_sets"]["test"]["per"] == res["test_sets"]["test"]["per"]
    assert res2["test_sets"]["test"]["wer"] == res["test_sets"]["test"]["wer"]
    assert res2["decoding"]["phones"] == res["decoding"]["phones"]
    assert (exp / "data" / "test_white_snr0" / "wav.scp").is_file()
    assert res2["test_sets"]["test_white_snr0"]["per"] >= 0.0
    assert _hyps(out2 / "decode" / "test" / "words" / "hyp.txt") == _hyps(exp / "decode" / "test" / "words" / "hyp.txt")

    # asr-transcribe: a speaker's test files (with their utt2spk, as the recipe normalises them)
    # give asr-decode's hypotheses; an 8 kHz FLAC and a folder are read too.
    spk, files = _speaker_files(exp, "test")
    folder = tmp_path / "audio"
    folder.mkdir()
    for u, p in files.items():
        (folder / f"{u}.wav").symlink_to(p)
    x, rate = sf.read(str(next(iter(files.values()))), dtype="float32")
    sf.write(str(tmp_path / "one_8k.flac"), AF.resample(torch.from_numpy(x), rate, 8000).numpy(), 8000)
    r = _run([str(BIN / "asr-transcribe"), f"checkpoint={exp / 'best.pt'}", f"audio={folder}",
              f"utt2spk={_folder_utt2spk(tmp_path, folder, spk)}",
              "phones=true"])
    lines = [line.split("\t") for line in r.stdout.splitlines() if "\t" in line]
    assert len(lines) == len(files)
    ref = _hyps(exp / "decode" / "test" / "words" / "hyp.txt")
    for path, words, phones in lines:
        utt = Path(path).stem
        assert words.split() == ref[utt], utt
        assert phones.split() and all(p.islower() for p in phones.split())
    r = _run([str(BIN / "asr-transcribe"), f"checkpoint={exp / 'best.pt'}", f"audio={tmp_path / 'one_8k.flac'}"])
    assert r.stdout.startswith(str(tmp_path / "one_8k.flac") + "\t")
    assert "resampled from 8000 Hz" in r.stderr

    # Bad input: an unreadable file is named and skipped, the others transcribed; a checkpoint
    # whose lang folder is gone, or a file that is no checkpoint, gets one line.
    (folder / "broken.wav").write_bytes(b"RIFF\x00\x00not audio at all")
    r = _run([str(BIN / "asr-transcribe"), f"checkpoint={exp / 'best.pt'}", f"audio={folder}"])
    assert len([x for x in r.stdout.splitlines() if "\t" in x]) == len(files)
    assert "broken.wav" in r.stderr and "1 of %d audio file(s) could not be read" % (len(files) + 1) in r.stderr
    state = torch.load(exp / "best.pt", weights_only=True)
    state["lang"]["path"] = str(tmp_path / "gone")
    torch.save(state, tmp_path / "moved.pt")
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    for ckpt, says in (("moved.pt", "lang folder"), ("junk.pt", "not a readable asr checkpoint")):
        r = subprocess.run([str(BIN / "asr-decode"), f"checkpoint={tmp_path / ckpt}"], capture_output=True,
                           text=True, timeout=300, env=ENV)
        err = [x for x in r.stderr.splitlines() if x.startswith("error:")]
        assert r.returncode == 1 and len(err) == 1 and says in err[0], r.stderr[-2000:]
        assert "Traceback" not in r.stderr


def _folder_utt2spk(tmp: Path, folder: Path, spk: str) -> Path:
    path = tmp / "utt2spk_folder"
    path.write_text("".join(f"{f} {spk}\n" for f in sorted(folder.iterdir())))
    return path


@pytest.mark.slow
def test_fmllr_hybrid_recipe_table_and_per_file_fmllr_transcripts(mini_timit_root: Path, tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    r = _run([str(BIN / "asr-train"), "recipe=timit_ligru", f"data.root={mini_timit_root}", f"exp_dir={exp}",
              "task/gmm=mini_timit_tiny", "model.num_layers=1", "model.hidden_size=32", "optim.epochs=2", "optim.lr=0.002",
              "train.progress=false", "num_workers=1", "data.test_sets=[test,test_babble_snr10]",
              "task.gmm_decode=true", "task.gmm_decoding.acoustic_scales=[0.1,0.2]", *SMALL_GRID], timeout=1500)
    out = r.stdout + r.stderr
    for row in ("| mono |", "| tri3 |", "| ligru hybrid |"):
        assert row in out
    res = _check_results(exp, ["test", "test_babble_snr10"], gmm=True)
    assert res["task"] == "hybrid" and res["features"] == "fmllr" and res["targets"] == "tri3"
    assert res["decoding"]["phones"]["prior_scale"] == 1.0

    # Per-file fMLLR (each file its own speaker), a 16 kHz WAV and an 8 kHz FLAC.
    _, files = _speaker_files(exp, "test")
    utt, wav = next(iter(files.items()))
    x, rate = sf.read(str(wav), dtype="float32")
    sf.write(str(tmp_path / "a.wav"), x, rate)
    stereo = np.stack([x, 0.5 * x], axis=1)
    sf.write(str(tmp_path / "b_8k.flac"), AF.resample(torch.from_numpy(stereo.T.copy()), rate, 8000).numpy().T, 8000)
    r = _run([str(BIN / "asr-transcribe"), f"checkpoint={exp / 'best.pt'}", f"audio={tmp_path / 'a.wav'}"])
    words = r.stdout.strip().split("\t")[1].split()
    ref = _hyps(exp / "decode" / "test" / "words" / "hyp.txt")[utt]
    assert words and len(set(words) & set(ref)) >= len(ref) // 2  # per-file fMLLR, not per-speaker: close
    r = _run([str(BIN / "asr-transcribe"), f"checkpoint={exp / 'best.pt'}", f"audio={tmp_path / 'b_8k.flac'}"])
    assert "2 channels mixed to mono" in r.stdout + r.stderr and "resampled from 8000 Hz" in r.stdout + r.stderr
