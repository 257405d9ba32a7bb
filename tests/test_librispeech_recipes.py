"""The LibriSpeech recipes end to end on tiny mini-LibriSpeech through the real commands:
word-level CTC over BPE units (lang folder, checkpoint, WER with the word graph and greedy,
asr-decode, asr-transcribe printing words, asr-compare over two cells), the hybrid on the GMM
stages of the corpus lexicon, and the one-line refusal without a lexicon."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from cli_run import BIN, ENV
from cli_run import read_hyps as _hyps
from cli_run import run_ok as _run
SETS = ["test_clean", "test_clean_white_snr5"]
TINY = ["model.num_layers=1", "model.hidden_size=64", "train.progress=false", "num_workers=1",
        f"data.test_sets=[{','.join(SETS)}]",
        "decode.acoustic_scales=[0.5,1.0]", "decode.blank_penalties=[0.0,1.0]", "decode.prior_scales=[1.0]",
        "decode.phone_penalties=[0.0]", "decode.word_penalties=[0.0,1.0]", "decode.num_workers=2",
        "decode.progress=false"]


@pytest.mark.slow
def test_bpe_ctc_recipe_words_decode_transcribe_and_compare(mini_librispeech_root: Path, tmp_path: Path) -> None:
    exp, cache = tmp_path / "ligru", tmp_path / "cache"
    r = _run([str(BIN / "asr-train"), "recipe=librispeech_ligru_ctc", f"data.root={mini_librispeech_root}",
              f"exp_dir={exp}", f"cache_dir={cache}", "task.bpe_vocab_size=120", "optim.epochs=12",
              "optim.lr=0.004", "features.num_mel_bins=23", "features.dither=0.0", *TINY])
    out = r.stdout + r.stderr
    assert "| model | dev_clean WER | dev_clean greedy WER | test_clean WER |" in out
    assert "dev greedy WER" in out  # the training loop's dev metric

    # The lang folder: BPE model trained on the training words, tokens = blank + pieces, every
    # corpus word spelled in pieces; the checkpoint carries the model's bytes.
    lang = exp / "lang"
    info = json.loads((lang / "lang.json").read_text())
    assert info["units"] == "bpe" and info["bpe_vocab_size_asked"] == 120 and 2 < info["bpe_vocab_size"] <= 120
    tokens = [line.split()[0] for line in (lang / "tokens.txt").read_text().splitlines()]
    assert tokens[0] == "<blk>" and len(tokens) == info["bpe_vocab_size"]
    corpus_words = {line.split()[0] for line in (mini_librispeech_root / "lexicon.txt").read_text().splitlines()}
    spelled = {line.split()[0]: line.split()[1:] for line in (lang / "lexicon.txt").read_text().splitlines()}
    assert set(spelled) == corpus_words and all(set(p) <= set(tokens[1:]) for p in spelled.values())
    ckpt = torch.load(exp / "best.pt", weights_only=True)
    assert ckpt["bpe_model"] == (lang / "bpe.model").read_bytes()
    assert ckpt["task"]["units"] == "bpe" and ckpt["task"]["tokens"] == tokens
    assert ckpt["features"]["options"]["subsample"] == 3 and ckpt["input_size"] == 23 * 3  # 30 ms frames

    # results.json: words only (WER with the word graph, greedy WER beside it) on every set.
    res = json.loads((exp / "results.json").read_text())
    assert res["metric"] == "wer" and res["tuned_on"] == "dev_clean" and set(res["decoding"]) == {"words"}
    for name in SETS:
        row = res["test_sets"][name]
        assert row["per"] is None and 0.0 <= row["wer"] <= 200.0 and 0.0 <= row["greedy_wer"] <= 200.0
        assert row["n_words"] > 0 and row["n_utts"] == len(_hyps(exp / "data" / name / "text"))
        assert (exp / "decode" / name / "words" / "score.txt").read_text().startswith("%WER ")
        assert not (exp / "decode" / name / "hyp.txt").exists()  # no phone level
    # Scoring is against the data dir's words.
    ref = _hyps(exp / "decode" / "test_clean" / "words" / "ref.txt")
    text = _hyps(exp / "data" / "test_clean" / "text")
    assert ref == text

    # asr-decode reproduces the figures; asr-transcribe prints asr-decode's words for a speaker's files.
    redo = tmp_path / "redecode"
    _run([str(BIN / "asr-decode"), f"checkpoint={exp / 'best.pt'}", f"out={redo}", "data.test_sets=[test_clean]"])
    res2 = json.loads((redo / "results.json").read_text())
    assert res2["test_sets"]["test_clean"]["wer"] == res["test_sets"]["test_clean"]["wer"]
    # Without word decoding, the greedy words are the result (and scored as such).
    greedy = tmp_path / "greedy"
    _run([str(BIN / "asr-decode"), f"checkpoint={exp / 'best.pt'}", f"out={greedy}", "data.test_sets=[test_clean]",
          "decode.words=false"])
    res3 = json.loads((greedy / "results.json").read_text())
    row = res3["test_sets"]["test_clean"]
    assert row["wer"] == row["greedy_wer"] == res["test_sets"]["test_clean"]["greedy_wer"] and res3["decoding"] == {}
    assert (greedy / "decode" / "test_clean" / "words" / "score.txt").read_text().startswith("%WER ")
    wav = dict(line.split(maxsplit=1) for line in (exp / "data" / "test_clean" / "wav.scp").read_text().splitlines())
    utt2spk = dict(line.split() for line in (exp / "data" / "test_clean" / "utt2spk").read_text().splitlines())
    spk = sorted(set(utt2spk.values()))[0]
    folder = tmp_path / "audio"
    folder.mkdir()
    for u in sorted(utt2spk):
        if utt2spk[u] == spk:
            (folder / f"{u}.flac").symlink_to(wav[u].strip())
    spk_file = tmp_path / "utt2spk_folder"
    spk_file.write_text("".join(f"{f} {spk}\n" for f in sorted(folder.iterdir())))
    r = _run([str(BIN / "asr-transcribe"), f"checkpoint={exp / 'best.pt'}", f"audio={folder}", f"utt2spk={spk_file}"])
    lines = [line.split("\t") for line in r.stdout.splitlines() if "\t" in line]
    hyp = _hyps(exp / "decode" / "test_clean" / "words" / "hyp.txt")
    assert len(lines) == len(list(folder.iterdir()))
    for path, words in lines:
        assert words.split() == hyp[Path(path).stem]
        assert all(w.isupper() or not w.isalpha() for w in words.split())  # words, not pieces
    # Without the word graph, asr-transcribe falls back to the greedy pieces, as words.
    graph = (exp / "graph_ctc" / "words.fst").resolve()  # (graph_ctc/ is a link into the cache)
    graph.rename(graph.with_suffix(".off"))
    r = _run([str(BIN / "asr-transcribe"), f"checkpoint={exp / 'best.pt'}", f"audio={folder}"])
    graph.with_suffix(".off").rename(graph)
    assert "greedy BPE pieces" in r.stderr and "\u2581" not in r.stdout
    assert len([line for line in r.stdout.splitlines() if "\t" in line]) == len(lines)

    # A second cell sharing the cache, and asr-compare: both runs' WER on every set.
    gru = tmp_path / "gru"
    _run([str(BIN / "asr-train"), "recipe=librispeech_gru_ctc", f"data.root={mini_librispeech_root}",
          f"exp_dir={gru}", f"cache_dir={cache}", "task.bpe_vocab_size=120", "optim.epochs=2", "features.num_mel_bins=23",
          "features.dither=0.0", *TINY])
    r = _run([str(BIN / "asr-compare"), str(exp), str(gru), "--out", str(tmp_path / "cmp.png")])
    header = next(line for line in r.stdout.splitlines() if line.startswith("| run |"))
    for name in SETS:
        assert f"{name} wer" in header and f"{name} per" not in header
    rows = [line for line in r.stdout.splitlines() if line.startswith("| ligru |") or line.startswith("| gru |")]
    assert len(rows) == 2 and (tmp_path / "cmp.png").stat().st_size > 0


@pytest.mark.slow
def test_hybrid_recipe_on_the_corpus_lexicon(mini_librispeech_root: Path, tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    _run([str(BIN / "asr-train"), "recipe=librispeech_ligru", "preset=cpu", f"data.root={mini_librispeech_root}",
          f"exp_dir={exp}", "optim.epochs=2", "task.gmm_decode_stages=[tri3]", *TINY])
    # Phone transcripts came from the corpus lexicon (first pronunciation, silence at the edges).
    phones = _hyps(exp / "data" / "train_clean_100" / "text.phn")
    assert phones and all(p[0] == "sil" and p[-1] == "sil" for p in phones.values())
    res = json.loads((exp / "results.json").read_text())
    assert res["task"] == "hybrid" and res["metric"] == "per"
    for name in SETS:
        assert 0.0 <= res["test_sets"][name]["wer"] <= 200.0 and res["test_sets"][name]["per"] is not None
        assert res["gmm"]["tri3"][name]["wer"] is not None


def test_hybrid_without_a_lexicon_is_refused_in_one_line(mini_librispeech_root: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for sub in ("train-clean-100", "dev-clean", "test-clean"):
        (corpus / sub).symlink_to(mini_librispeech_root / sub)
    for recipe in ("recipe=librispeech_ligru", "recipe=librispeech_ligru_ctc task.units=phones"):
        r = subprocess.run([str(BIN / "asr-train"), *recipe.split(), f"data.root={corpus}",
                            f"exp_dir={tmp_path / 'exp'}"], capture_output=True, text=True, timeout=300, env=ENV)
        err = [x for x in r.stderr.splitlines() if x.startswith("error:")]
        assert r.returncode == 1 and len(err) == 1, r.stderr[-2000:]
        assert "data.lexicon=" in err[0] and "librispeech-lexicon.txt" in err[0] and "Traceback" not in r.stderr
    r = subprocess.run([str(BIN / "asr-train"), "recipe=librispeech_ligru", f"data.root={corpus}",
                        f"data.lexicon={tmp_path / 'nope.txt'}", f"exp_dir={tmp_path / 'exp2'}"],
                       capture_output=True, text=True, timeout=300, env=ENV)
    assert r.returncode == 1 and "data.lexicon:" in r.stderr and "nope.txt is not a file" in r.stderr
    # Subsampled frames are for CTC: a hybrid's targets are one pdf per 10 ms frame.
    r = subprocess.run([str(BIN / "asr-train"), "recipe=librispeech_ligru", f"data.root={mini_librispeech_root}",
                        "features.subsample=3", f"exp_dir={tmp_path / 'exp3'}"],
                       capture_output=True, text=True, timeout=300, env=ENV)
    err = [x for x in r.stderr.splitlines() if x.startswith("error:")]
    assert r.returncode == 1 and len(err) == 1 and "features.subsample=3" in err[0] and "task=ctc" in err[0]
    assert not (tmp_path / "exp3" / "data").exists()  # refused before any work
