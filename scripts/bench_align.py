"""Benchmark the GMM-HMM aligner on mini-TIMIT: frame accuracy and wall time per stage.

Synthesises (or reuses) a mini-TIMIT corpus, prepares data dirs, extracts the recipe's
GMM front end (13 MFCCs from 23 mel bins, per-speaker mean normalisation), trains
mono -> tri1 -> tri2 -> tri3 and scores each stage's training-set phone alignment against
the synthesiser's ``.PHN`` boundaries, then decodes dev and test with each stage (phone
bigram, acoustic scale tuned on dev) for PER.
Prints one JSON object on its last line.

    python scripts/bench_align.py --size small --work /tmp/bench_align --threads 2
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from pathlib import Path

import torch

from asr.data.kaldi_dir import read_data_dir
from asr.data.mini_timit import resolve_voices, synthesize_mini_timit
from asr.data.timit import read_phn_scp
from asr.decode.gmm_decode import GmmDecodeConfig
from asr.hmm.alignment_io import read_frame_phones
from asr.hmm.frame_accuracy import phone_frame_accuracy
from asr.hmm.model import GmmHmm
from asr.hmm.pipeline import STAGES, GmmPipelineConfig
from asr.hmm.stage_transform import load_stage_transform
from asr.hmm.trainer import align_set
from asr.hmm.training_set import TrainingSet
from asr.recipe.data import prepare_data_sets
from asr.recipe.features import compute_gmm_feature_stores, gmm_feature_config
from asr.recipe.gmm import run_gmm_stages
from asr.recipe.lang import build_lang
from asr.recipe.settings import RecipeSettings
from asr.stage import read_done


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="small", choices=["tiny", "small", "full"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", default="/tmp/bench_align", help="corpus, features and models go here")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--stages", default=",".join(STAGES))
    p.add_argument("--leaves", type=int, default=2500, help="tree leaves of tri1/tri2/tri3")
    p.add_argument("--gauss", type=int, default=15000, help="Gaussians of tri1/tri2/tri3")
    p.add_argument("--mono-gauss", type=int, default=1000)
    p.add_argument("--voices", default=None, help="default: the size's (small: espeak,piper; tiny: espeak); mini-TIMIT voices: espeak, piper or espeak,piper")
    p.add_argument("--piper-share", type=float, default=0.5)
    p.add_argument("--test-sources", default="", help="one-synthesiser test sets, e.g. piper -> test_piper")
    p.add_argument("--device", default="cpu", choices=["cpu"], help="GMM training runs on CPU")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    stages = tuple(args.stages.split(","))

    t0 = time.perf_counter()
    voices = resolve_voices(args.size, args.voices and tuple(args.voices.split(",")))
    test_sources = tuple(t for t in args.test_sources.split(",") if t)
    synthesize_mini_timit(work / "corpus", size=args.size, seed=args.seed, num_workers=args.threads,
                          voices=voices, piper_share=args.piper_share, test_sources=test_sources)
    exp = work / f"exp_l{args.leaves}_g{args.gauss}"
    # The recipe's own stages (data, GMM front end, lang, GMM stages, decoding), so the
    # figures are the recipe's.
    settings = RecipeSettings(
        corpus_root=work / "corpus", exp_dir=exp, data_dir=work / "data", alignment_stage=stages[-1],
        test_sets=["test", *(f"test_{t}" for t in test_sources)],
        gmm_decode=True, gmm=GmmPipelineConfig.with_sizes(args.leaves, args.gauss, args.mono_gauss),
        gmm_decoding=GmmDecodeConfig(), seed=args.seed, num_workers=args.threads)
    feat_cfg = gmm_feature_config(args.seed)
    sets = prepare_data_sets(settings)
    stores = compute_gmm_feature_stores(settings, sets)
    lang = build_lang(settings, sets)
    store = stores["train"]
    prep_seconds = time.perf_counter() - t0
    t = time.perf_counter()
    out = run_gmm_stages(settings, sets, stores, lang)
    gmm_seconds = time.perf_counter() - t
    results, decoded = out["gmm"], out["per"]

    phn = read_phn_scp(sets["train"])
    accuracy, by_source = {}, {}
    source_of = {row.split("\t")[0]: row.split("\t")[3]
                 for row in (work / "corpus" / "speakers.tsv").read_text().splitlines()[1:]}
    utt2spk = read_data_dir(sets["train"]).utt2spk
    for stage in stages:
        frames = read_frame_phones(exp / "gmm" / stage)
        accuracy[stage], num_scored = phone_frame_accuracy(frames, phn)
        for source in voices:  # the same alignment, scored on each synthesiser's speakers
            mine = {u: f for u, f in frames.items() if source_of.get(utt2spk[u]) == source}
            by_source.setdefault(source, {})[stage] = phone_frame_accuracy(mine, phn)[0]

    # Viterbi alignment speed: one pass of the mono model over the training set.
    d = read_data_dir(sets["train"])
    mono = GmmHmm.load(exp / "gmm" / "mono" / "final.mdl")
    delta = load_stage_transform(exp / "gmm" / "mono")
    data = TrainingSet.build({u: delta.apply(store.load(u)) for u in d.utts}, d.phones, mono.tm, d.utt2spk)
    t = time.perf_counter()
    res = align_set(mono, data)
    align_seconds = time.perf_counter() - t
    # Decoding time of each stage (tuning on dev, then test), as recorded when it was built.
    decode_seconds = sum(read_done(exp / "gmm" / f"decode_{s}")["seconds"] for s in stages)
    per = {s: decoded[s]["test"]["per"] for s in stages}

    print(json.dumps({
        "frame_accuracy": accuracy,
        "stage_seconds": {s: round(results[s]["seconds"], 2) for s in stages},
        "per": per,
        "frame_accuracy_by_source": by_source,
        "per_by_test_set": {t: {s: decoded[s][t]["per"] for s in stages} for t in settings.test_sets},
        "dev_per": {s: decoded[s]["dev"]["per"] for s in stages},
        "acoustic_scale": {s: decoded[s]["acoustic_scale"] for s in stages},
        "gmm_stages_seconds": round(gmm_seconds, 2),
        "decode_seconds": round(decode_seconds, 2),
        "viterbi_frames_per_second": round(res.num_frames / align_seconds, 1),
        "total_pipeline_seconds": round(sum(results[s]["seconds"] for s in stages), 2),
        "prepare_seconds": round(prep_seconds, 2),
        "num_train_frames": data.num_frames, "num_scored_frames": num_scored,
        "stages": {s: {k: v for k, v in results[s].items() if k != "seconds"} for s in stages},
        "device": "cpu", "cpu": platform.processor() or platform.machine(), "threads": args.threads,
        "cpu_count": os.cpu_count(),
        "settings": {"voices": ",".join(voices), "test_sources": args.test_sources, "size": args.size,
                     "seed": args.seed, "leaves": args.leaves, "gauss": args.gauss, "mono_gauss": args.mono_gauss,
                     "features": f"mfcc{feat_cfg.num_ceps} from {feat_cfg.num_mel_bins} mel bins, dither "
                                 f"{feat_cfg.dither}, cmvn {feat_cfg.cmvn}",
                     "mono": "deltas", "tri1": "deltas", "tri2": "lda40(splice 3)+mllt",
                     "tri3": "lda+mllt+sat(fmllr)"},
    }))


if __name__ == "__main__":
    main()
