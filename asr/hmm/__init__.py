"""GMM-HMM acoustic models without Kaldi: mono -> tri1 -> tri2 (LDA+MLLT) -> tri3 (SAT/fMLLR).

Entry points: :func:`asr.hmm.pipeline.train_gmm_pipeline` (train all stages, write
alignments, models, transforms and priors) and :func:`asr.hmm.align_data.align_data_dir`
(align another set, e.g. dev, with a trained stage).
"""
