"""Bad inputs across the public surface: each must fail early with the right exception type
and a message that names the key, value or shape at fault.

``CASES`` is a table of ``(area, id, call, exception, pattern)``; ``call(ctx)`` runs the bad
input against tiny models and data built once per module (:class:`Ctx`).  The census
script ``benchmarks/bad_inputs.py`` runs the same table case by case in forked processes
(a segfault or hang counts as an outcome there, not as a lost run).

Below the table: files written atomically (a writer killed mid-write leaves the old file),
checkpoint round trips (``bioflow fit`` -> ``load_model``; ``model.save`` -> ``--ckpt_path``)
and inputs that used to fail but are valid (FASTA with a BOM or gzipped, backed sparse X).
"""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from bioflow import datasets, metrics, pl, tl
from bioflow.data import CellDynamicsDataModule, SequenceDataModule
from bioflow.data.anndata import read_representation
from bioflow.data.populations import PopulationDataModule, read_populations
from bioflow.data.timecourse import read_time_series
from bioflow.io import read_fasta, write_fasta
from bioflow.models import (
    CellFlowMatching,
    MetaFlowMatching,
    SequenceFlow,
    SequencePredictor,
    load_model,
)

ROOT = Path(__file__).resolve().parents[1]
NAN, INF = float("nan"), float("inf")


def _recipe(name: str):
    sys.path.insert(0, str(ROOT / "data_recipes"))
    try:
        import importlib

        return importlib.import_module(name)
    finally:
        sys.path.remove(str(ROOT / "data_recipes"))


class Ctx:
    """Tiny data and untrained models (a few ms to build), plus files in ``tmp``."""

    def __init__(self, tmp: str | os.PathLike) -> None:
        self.tmp = Path(tmp)
        torch.manual_seed(0)
        self.adata = datasets.simulated_differentiation(n_cells_per_time=30, seed=0)
        series = read_time_series(self.adata, "time", "X_pca")
        self.cell_model = CellFlowMatching(
            dim=10, hidden=(8,), data_spec=series.data_spec(), solver_steps=2
        )
        self.pops = datasets.letters(letters="AB", n_rotations=2, n_points=30, seed=0)
        pset = read_populations(self.pops, "population", "state", "source", use_rep="X_coords")
        self.meta_model = MetaFlowMatching(
            dim=2,
            k=5,
            embed_cells=30,
            width=16,
            depth=1,
            encoder_hidden=(8,),
            embed_dim=4,
            n_fourier=4,
            data_spec=pset.data_spec(),
            solver_steps=2,
        )
        self.seqs, self.labels = datasets.motif_sequences(40, length=10, seed=0)
        self.seq_model = SequenceFlow("ACGT", seq_len=10, hidden=8, n_layers=1)
        self.clf = SequencePredictor("ACGT", n_outputs=2, hidden=8, n_layers=1)
        self.x = np.random.default_rng(0).normal(size=(20, 3))
        self.y = np.random.default_rng(1).normal(size=(25, 3))
        self.h5ad = self.tmp / "cells.h5ad"
        self.adata.write_h5ad(self.h5ad)
        self.fasta = self.tmp / "seqs.fa"
        write_fasta(self.fasta, self.seqs)
        self.model_pt = self.tmp / "cell_model.pt"
        self.cell_model.save(self.model_pt)
        self._n = 0

    def path(self, suffix: str = "") -> Path:
        """A fresh path in ``tmp``."""
        self._n += 1  # the pid keeps names unique in the census's forked processes too
        return self.tmp / f"f{os.getpid()}_{self._n}{suffix}"

    def file(self, data: bytes | str, suffix: str = "") -> Path:
        p = self.path(suffix)
        p.write_bytes(data if isinstance(data, bytes) else data.encode())
        return p

    def victim(self) -> Path:
        """A fresh copy of the time-course file, for cases that try to write over an input."""
        p = self.path(".h5ad")
        p.write_bytes(self.h5ad.read_bytes())
        return p

    def cells(self, **changes) -> ad.AnnData:
        """A copy of the time course with ``obs`` columns / ``obsm`` entries replaced."""
        a = self.adata.copy()
        for k, v in changes.items():
            if k.startswith("obsm_"):
                a.obsm[k[5:]] = v
            else:
                a.obs[k] = v
        return a

    def cli(self, *args: str, config: str = "cells_simulated.yaml") -> None:
        from bioflow.cli import main

        d = self.tmp / "runs"
        main(
            [
                args[0],
                "--config",
                str(ROOT / "configs" / config),
                "--trainer.enable_progress_bar",
                "false",
                "--trainer.enable_model_summary",
                "false",
                "--trainer.default_root_dir",
                str(d),
                "--trainer.logger.init_args.save_dir",
                str(d),
                *args[1:],
            ]
        )

    def cli_cells(self, *args: str) -> None:
        self.cli(
            args[0],
            "--data.adata",
            str(self.h5ad),
            "--data.batch_size",
            "16",
            "--model.init_args.hidden",
            "[8]",
            *args[1:],
        )


@dataclass(frozen=True)
class Case:
    area: str
    id: str
    call: Callable[[Ctx], object]
    match: str
    exc: type[BaseException] = ValueError


CASES: list[Case] = []


def case(area: str, id: str, match: str, exc: type[BaseException] = ValueError):
    def register(fn):
        CASES.append(Case(area, id, fn, match, exc))
        return fn

    return register


def table(area: str, rows: list[tuple]) -> None:
    for row in rows:
        id, fn, match, *exc = row
        CASES.append(Case(area, id, fn, match, *exc))


# --- metrics --------------------------------------------------------------------------------
W, MMD = metrics.wasserstein, metrics.mmd_rbf
table(
    "metrics",
    [
        ("w1_max_points_0", lambda c: W(c.x, c.y, max_points=0), "max_points"),
        ("w1_max_points_negative", lambda c: W(c.x, c.y, max_points=-5), "max_points"),
        ("w1_max_points_float", lambda c: W(c.x, c.y, max_points=2.5), "max_points"),
        ("mmd_max_points_0", lambda c: MMD(c.x, c.y, max_points=0), "max_points"),
        (
            "compare_max_points_0",
            lambda c: metrics.compare_distributions(c.x, c.y, max_points=0),
            "max_points",
        ),
        ("w_p3", lambda c: W(c.x, c.y, p=3), "p must be 1 or 2"),
        ("w_nan_x", lambda c: W(np.where(c.x > 1, NAN, c.x), c.y), "x contains NaN"),
        ("w_inf_y", lambda c: W(c.x, np.full((3, 3), INF)), "y contains NaN or infinite"),
        ("w_empty_x", lambda c: W(np.zeros((0, 3)), c.y), "x must be a non-empty"),
        ("w_3d_x", lambda c: W(np.zeros((2, 2, 3)), c.y), r"x must be .*\(2, 2, 3\)"),
        ("w_feature_mismatch", lambda c: W(c.x, c.y[:, :2]), "3 features but y has 2"),
        ("w_negative_weights", lambda c: W(c.x, c.y, x_weights=-np.ones(20)), "x_weights"),
        ("w_nan_weights", lambda c: W(c.x, c.y, x_weights=np.r_[NAN, np.ones(19)]), "x_weights"),
        ("w_weights_length", lambda c: W(c.x, c.y, y_weights=np.ones(3)), "y_weights"),
        ("mmd_no_gammas", lambda c: MMD(c.x, c.y, gammas=()), "gammas"),
        ("mmd_negative_gamma", lambda c: MMD(c.x, c.y, gammas=(1.0, -2.0)), "gammas"),
        ("mmd_nan_gamma", lambda c: MMD(c.x, c.y, gammas=(NAN,)), "gammas"),
        ("corr_two_features", lambda c: metrics.correlation_r(c.x[:, :2], c.y[:, :2]), ">= 3"),
        ("corr_nan", lambda c: metrics.correlation_r(c.x * NAN, c.y), "x contains NaN"),
        ("kl_probs_shape", lambda c: metrics.marginal_kl([[0, 1]], [[0.5, 0.5]]), "probs must be"),
        (
            "kl_float_tokens",
            lambda c: metrics.marginal_kl([[0.0, 1.0]], [[0.5, 0.5]] * 2),
            "integer letter",
        ),
        ("kl_negative_probs", lambda c: metrics.marginal_kl([[0]], [[1.5, -0.5]]), "probs"),
        ("kl_nan_probs", lambda c: metrics.marginal_kl([[0]], [[NAN, 0.5]]), "probs"),
        (
            "freq_out_of_range",
            lambda c: metrics.letter_frequencies([[0, 7]], 4),
            r"tokens must lie in \[0, 4\)",
        ),
        ("kmer_k0", lambda c: metrics.kmer_spectrum([[0, 1]], 2, k=0), "k must be"),
        (
            "kmer_out_of_range",
            lambda c: metrics.kmer_distance([[0, 5]], [[0, 1]], 2, k=1),
            r"tokens must lie in \[0, 2\)",
        ),
        ("kmer_1d_tokens", lambda c: metrics.kmer_spectrum([0, 1], 2, k=1), "letter indices"),
    ],
)

# --- datasets -------------------------------------------------------------------------------
table(
    "datasets",
    [
        ("simdiff_n_times_2", lambda c: datasets.simulated_differentiation(n_times=2), "n_times"),
        (
            "simdiff_cells_0",
            lambda c: datasets.simulated_differentiation(n_cells_per_time=0),
            "n_cells_per_time",
        ),
        ("simdiff_pcs_0", lambda c: datasets.simulated_differentiation(n_pcs=0), "n_pcs"),
        ("letters_empty", lambda c: datasets.letters(""), "letters"),
        ("letters_points_0", lambda c: datasets.letters("A", n_points=0), "n_points"),
        ("letters_rotations_0", lambda c: datasets.letters("A", n_rotations=0), "n_rotations"),
        ("letters_no_glyph", lambda c: datasets.letters(" "), "no outline for ' '"),
        ("letters_noise_negative", lambda c: datasets.letters("A", noise=-1.0), "noise"),
        ("popresp_0", lambda c: datasets.population_response(0), "n_populations"),
        ("popresp_dim_0", lambda c: datasets.population_response(3, dim=0), "dim"),
        ("popresp_no_drugs", lambda c: datasets.population_response(3, drugs=()), "drugs"),
        (
            "motif_too_long",
            lambda c: datasets.motif_sequences(10, length=3),
            "shorter than the motif",
        ),
        ("motif_not_dna", lambda c: datasets.motif_sequences(10, motif="XYZ"), "motif"),
        ("motif_n_0", lambda c: datasets.motif_sequences(0), "n must be"),
        (
            "motif_fraction_2",
            lambda c: datasets.motif_sequences(10, motif_fraction=2.0),
            "motif_fraction",
        ),
        ("motif_gc_nan", lambda c: datasets.motif_sequences(10, gc=NAN), "gc"),
        ("toy_K1", lambda c: datasets.categorical_toy(1), "K must be"),
        ("toy_length_0", lambda c: datasets.categorical_toy(4, length=0), "length"),
        ("toy_n_0", lambda c: datasets.categorical_toy(4, n=0), "n must be"),
    ],
)

# --- tl: cell dynamics ----------------------------------------------------------------------
FIT = dict(
    time_key="time",
    use_rep="X_pca",
    max_steps=1,
    enable_progress_bar=False,
    model_kwargs={"hidden": (8,)},
)


def _fit(c: Ctx, adata=None, **kw):
    return tl.fit_dynamics(c.adata if adata is None else adata, **{**FIT, **kw})


def _pc(c: Ctx, **kw):
    kw = {"source_time": 1.0, "target_time": 2.0, **kw}
    return tl.predict_cells(kw.pop("model", c.cell_model), kw.pop("adata", c.adata), **kw)


def _tr(c: Ctx, **kw):
    kw = {"times": [0, 1], **kw}
    return tl.trajectories(kw.pop("model", c.cell_model), c.adata.copy(), **kw)


def _eh(c: Ctx, adata=None, **kw):
    kw = {
        "time_key": "time",
        "use_rep": "X_pca",
        "max_steps": 1,
        "enable_progress_bar": False,
        "model_kwargs": {"hidden": (8,)},
        **kw,
    }
    return tl.evaluate_holdout(c.adata if adata is None else adata, **kw)


def _mccann():
    try:
        from bioflow.core.couplings import mccann_interpolant
    except ImportError:
        from bioflow.tl.dynamics import mccann_interpolant
    return mccann_interpolant


def _df_obsm(c: Ctx) -> pd.DataFrame:
    df = pd.DataFrame(
        c.adata.obsm["X_pca"][:, :3], index=c.adata.obs_names, columns=["a", "b", "c"]
    )
    df["label"] = "x"
    return df


table(
    "tl",
    [
        ("fit_time_key_missing", lambda c: _fit(c, time_key="hour"), "time_key='hour'"),
        ("fit_use_rep_missing", lambda c: _fit(c, use_rep="X_umap"), "use_rep='X_umap'"),
        ("fit_method", lambda c: _fit(c, method="foo"), "unknown method 'foo'"),
        ("fit_max_steps_0", lambda c: _fit(c, max_steps=0), "max_steps"),
        ("fit_batch_size_0", lambda c: _fit(c, batch_size=0), "batch_size"),
        (
            "fit_nan_rep",
            lambda c: _fit(c, c.cells(obsm_X_pca=c.adata.obsm["X_pca"] * NAN)),
            r"adata.obsm\['X_pca'\] contains .*NaN",
        ),
        (
            "fit_nan_time",
            lambda c: _fit(c, c.cells(time=np.r_[NAN, c.adata.obs["time"][1:]])),
            "missing values",
        ),
        (
            "fit_inf_time",
            lambda c: _fit(c, c.cells(time=np.r_[INF, c.adata.obs["time"][1:]])),
            "infinite",
        ),
        ("fit_one_time", lambda c: _fit(c, c.cells(time=np.zeros(c.adata.n_obs))), "1 distinct"),
        ("fit_exclude_unknown", lambda c: _fit(c, exclude_times=[99]), "exclude_times value 99"),
        ("fit_exclude_too_many", lambda c: _fit(c, exclude_times=[0, 1, 2, 3]), "two times"),
        (
            "fit_unordered_categorical",
            lambda c: _fit(c, c.cells(time=pd.Categorical(c.adata.obs["time"].astype(str)))),
            "unordered categorical",
        ),
        (
            "fit_string_time",
            lambda c: _fit(c, c.cells(time=c.adata.obs["time"].astype(str))),
            "neither numeric nor an ordered",
        ),
        (
            "fit_dataframe_obsm",
            lambda c: _fit(c, c.cells(obsm_X_df=_df_obsm(c)), use_rep="X_df"),
            r"adata.obsm\['X_df'\].*'label'",
        ),
        (
            "fit_obsm_3d",
            lambda c: _fit(c, c.cells(obsm_X_3=np.zeros((c.adata.n_obs, 2, 2))), use_rep="X_3"),
            r"adata.obsm\['X_3'\] must be 2-D",
        ),
        ("fit_lr_schedule", lambda c: _fit(c, model_kwargs={"lr_schedule": "step"}), "lr_schedule"),
        ("fit_lr_nan", lambda c: _fit(c, model_kwargs={"lr": NAN}), "lr"),
        ("fit_sigma_negative", lambda c: _fit(c, model_kwargs={"sigma": -1.0}), "sigma"),
        ("pc_steps_0", lambda c: _pc(c, steps=0), "steps"),
        ("pc_steps_negative", lambda c: _pc(c, steps=-3), "steps"),
        ("pc_batch_size_0", lambda c: _pc(c, batch_size=0), "batch_size"),
        ("pc_target_nan", lambda c: _pc(c, target_time=NAN), "nan"),
        ("pc_target_inf", lambda c: _pc(c, target_time=INF), "inf"),
        ("pc_source_unknown", lambda c: _pc(c, source_time=7), r"adata.obs\['time'\] == 7"),
        ("pc_meta_model", lambda c: _pc(c, model=c.meta_model), "CellFlowMatching"),
        ("pc_sequence_model", lambda c: _pc(c, model=c.seq_model), "CellFlowMatching"),
        (
            "pc_no_data_spec",
            lambda c: _pc(c, model=CellFlowMatching(dim=10, hidden=(4,))),
            "data description",
        ),
        (
            "pc_missing_rep",
            lambda c: _pc(c, adata=ad.AnnData(obs=c.adata.obs.copy())),
            "use_rep='X_pca'",
        ),
        (
            "pc_wrong_width",
            lambda c: _pc(c, adata=c.cells(obsm_X_pca=c.adata.obsm["X_pca"][:, :5])),
            "5 features; the model was fitted on 10",
        ),
        ("pc_solver", lambda c: _pc(c, method="leapfrog"), "leapfrog"),
        # refused before integrating (the flow would diverge there)
        ("pc_far_time", lambda c: _pc(c, target_time=1e30), "too far outside"),
        (
            "pc_time_column_missing",
            lambda c: _pc(c, adata=ad.AnnData(obsm={"X_pca": c.adata.obsm["X_pca"]})),
            "time_key 'time'",
        ),
        ("traj_times_empty", lambda c: _tr(c, times=[]), "`times` is empty"),
        ("traj_time_nan", lambda c: _tr(c, times=[0, NAN]), "nan"),
        ("traj_time_inf", lambda c: _tr(c, times=[-INF]), "inf"),
        ("traj_steps_0", lambda c: _tr(c, steps=0), "steps"),
        ("traj_batch_size_0", lambda c: _tr(c, batch_size=0), "batch_size"),
        ("traj_meta_model", lambda c: _tr(c, model=c.meta_model), "CellFlowMatching"),
        ("traj_unknown_label", lambda c: _tr(c, times=["day9"]), "'day9'"),
        ("traj_times_string", lambda c: _tr(c, times="01"), "times"),
        ("eh_max_points_0", lambda c: _eh(c, max_points=0), "max_points"),
        ("eh_max_points_negative", lambda c: _eh(c, max_points=-1), "max_points"),
        (
            "eh_two_times",
            lambda c: _eh(c, c.adata[c.adata.obs["time"] < 2].copy()),
            "needs >= 3 times",
        ),
        ("eh_unknown_method", lambda c: _eh(c, methods=("x-cfm",)), "unknown method 'x-cfm'"),
        ("eh_holdout_endpoint", lambda c: _eh(c, holdout_times=[0]), "not an interior time"),
        ("eh_seeds_empty", lambda c: _eh(c, seeds=()), "seeds"),
        ("mccann_fraction", lambda c: _mccann()(c.x, c.y, fraction=1.5), "fraction"),
        ("mccann_fraction_nan", lambda c: _mccann()(c.x, c.y, fraction=NAN), "fraction"),
    ],
)

# --- tl: populations ------------------------------------------------------------------------
MFIT = dict(
    population_key="population",
    source_key="state",
    source_value="source",
    use_rep="X_coords",
    max_steps=1,
    enable_progress_bar=False,
    model_kwargs={"k": 5, "width": 16, "depth": 1},
)


def _mfit(c: Ctx, **kw):
    return tl.fit_meta_flow(c.pops, **{**MFIT, **kw})


def _pp(c: Ctx, **kw):
    return tl.predict_population(kw.pop("model", c.meta_model), kw.pop("adata", c.pops), **kw)


def _ep(c: Ctx, **kw):
    kw = {"populations": ["A_0"], **kw}
    return tl.evaluate_populations(kw.pop("model", c.meta_model), c.pops, **kw)


table(
    "tl",
    [
        ("meta_method", lambda c: _mfit(c, method="gan"), "unknown method 'gan'"),
        ("meta_population_key", lambda c: _mfit(c, population_key="patient"), "patient"),
        ("meta_source_value", lambda c: _mfit(c, source_value="ctrl"), "'ctrl'"),
        ("meta_k_too_big", lambda c: _mfit(c, model_kwargs={"k": 500}), "k"),
        ("meta_max_steps_0", lambda c: _mfit(c, max_steps=0), "max_steps"),
        (
            "meta_populations_per_step_0",
            lambda c: _mfit(c, populations_per_step=0),
            "populations_per_step",
        ),
        (
            "meta_cells_per_population_0",
            lambda c: _mfit(c, cells_per_population=0),
            "cells_per_population",
        ),
        ("meta_exclude_unknown", lambda c: _mfit(c, exclude_populations=["Z_9"]), "'Z_9'"),
        ("pp_cell_model", lambda c: _pp(c, model=c.cell_model), "MetaFlowMatching"),
        ("pp_condition_unknown", lambda c: _pp(c, condition="drugZ"), "drugZ"),
        ("pp_steps_0", lambda c: _pp(c, steps=0), "steps"),
        (
            "pp_no_initial_cells",
            lambda c: _pp(c, adata=c.pops[c.pops.obs["state"] != "source"].copy()),
            "no initial cells",
        ),
        ("ep_max_points_0", lambda c: _ep(c, max_points=0), "max_points"),
        ("ep_populations_empty", lambda c: _ep(c, populations=[]), "`populations` is empty"),
        ("ep_unknown_population", lambda c: _ep(c, populations=["Z_9"]), "'Z_9'"),
        ("ep_cell_model", lambda c: _ep(c, model=c.cell_model), "MetaFlowMatching"),
    ],
)

# --- tl: sequences --------------------------------------------------------------------------
SFIT = dict(
    max_steps=1, batch_size=8, enable_progress_bar=False, model_kwargs={"hidden": 8, "n_layers": 1}
)


def _sfit(c: Ctx, seqs=None, **kw):
    return tl.fit_sequence_flow(c.seqs if seqs is None else seqs, **{**SFIT, **kw})


def _ss(c: Ctx, **kw):
    return tl.sample_sequences(kw.pop("model", c.seq_model), kw.pop("n", 3), **{"steps": 2, **kw})


def _fc(c: Ctx, targets, **kw):
    return tl.fit_sequence_classifier(c.seqs, targets, max_steps=1, enable_progress_bar=False, **kw)


table(
    "tl",
    [
        ("seq_objective", lambda c: _sfit(c, objective="diffusion"), "objective"),
        ("seq_alphabet_one_letter", lambda c: _sfit(c, alphabet="A"), "alphabet"),
        ("seq_mixed_lengths", lambda c: _sfit(c, ["ACGT", "ACG"]), "mixed lengths"),
        ("seq_bad_letter", lambda c: _sfit(c, ["ACGT", "ACGN"]), "letter 'N' at position 4"),
        ("seq_max_steps_0", lambda c: _sfit(c, max_steps=0), "max_steps"),
        ("seq_batch_size_0", lambda c: _sfit(c, batch_size=0), "batch_size"),
        ("seq_one_string", lambda c: _sfit(c, "ACGTACGT"), "'ACGTACGT'"),
        ("seq_empty_list", lambda c: _sfit(c, []), "no sequences"),
        ("seq_missing_fasta", lambda c: _sfit(c, c.tmp / "missing.fa"), "missing.fa"),
        ("sample_n_0", lambda c: _ss(c, n=0), "n must be"),
        ("sample_steps_0", lambda c: _ss(c, steps=0), "steps must be"),
        (
            "sample_scale_nan",
            lambda c: _ss(c, guidance=c.clf, guidance_scale=NAN),
            "guidance_scale",
        ),
        (
            "sample_scale_negative",
            lambda c: _ss(c, guidance=c.clf, guidance_scale=-1.0),
            "guidance_scale",
        ),
        (
            "sample_reward_nan",
            lambda c: _ss(c, guidance=lambda y: y.sum((1, 2)) * NAN),
            "reward.*non-finite",
        ),
        (
            "sample_reward_nan_euler",
            lambda c: _ss(c, guidance=lambda y: y.sum((1, 2)) * NAN, method="euler"),
            "reward.*non-finite",
        ),
        ("sample_method", lambda c: _ss(c, method="ancestral"), "method must be"),
        ("sample_cell_model", lambda c: _ss(c, model=c.cell_model), "SequenceFlow"),
        (
            "sample_guidance_samples_0",
            lambda c: _ss(c, guidance=c.clf, n_guidance_samples=0),
            "n_guidance_samples",
        ),
        (
            "sample_guidance_target",
            lambda c: _ss(c, guidance=c.clf, guidance_target=5),
            "guidance_target",
        ),
        ("sample_guidance_not_callable", lambda c: _ss(c, guidance=3), "guidance must be"),
        (
            "sample_guidance_alphabet",
            lambda c: _ss(c, guidance=SequencePredictor("ACGU", n_outputs=2)),
            "alphabet",
        ),
        ("clf_task", lambda c: _fc(c, c.labels, task="ranking"), "task"),
        ("clf_targets_length", lambda c: _fc(c, c.labels[:5]), "targets has 5 entries"),
        ("clf_float_labels", lambda c: _fc(c, c.labels + 0.5), "integer labels"),
        ("clf_negative_labels", lambda c: _fc(c, c.labels - 1), "non-negative"),
        (
            "clf_nan_regression",
            lambda c: _fc(c, np.r_[NAN, c.labels[1:]].astype(float), task="regression"),
            "non-finite",
        ),
    ],
)

# --- io: FASTA and checkpoints --------------------------------------------------------------


def _random_dna(n: int) -> bytes:
    return bytes(np.frombuffer(b"ACGT", np.uint8)[np.random.default_rng(0).integers(0, 4, n)])


def _tampered(c: Ctx, **changes) -> Path:
    ckpt = torch.load(c.model_pt, weights_only=True)
    for k, v in changes.items():
        if k == "hyper_parameters":
            ckpt[k] = {**ckpt[k], **v}
        else:
            ckpt[k] = v
    p = c.path(".pt")
    torch.save(ckpt, p)
    return p


table(
    "io",
    [
        ("fasta_missing", lambda c: read_fasta(c.tmp / "none.fa"), "none.fa"),
        ("fasta_empty", lambda c: read_fasta(c.file("")), "no FASTA records"),
        (
            "fasta_sequence_first",
            lambda c: read_fasta(c.file("ACGT\n>a\nAC\n")),
            "line 1: sequence before",
        ),
        (
            "fasta_record_without_sequence",
            lambda c: read_fasta(c.file(">a\nAC\n>b\n")),
            "record 'b' has no sequence",
        ),
        ("fasta_binary", lambda c: read_fasta(c.file(bytes(range(256)) * 4)), "not a text FASTA"),
        ("fasta_h5ad", lambda c: read_fasta(c.h5ad), "not a text FASTA"),
        ("fasta_directory", lambda c: read_fasta(c.tmp), "is a directory"),
        (
            "fasta_gzip_truncated",
            lambda c: read_fasta(
                c.file(gzip.compress(b">a\n" + _random_dna(20000))[:2000], ".fa.gz")
            ),
            "truncated",
        ),
        ("write_fasta_one_string", lambda c: write_fasta(c.path(".fa"), "ACGT"), "not one string"),
        (
            "write_fasta_names_length",
            lambda c: write_fasta(c.path(".fa"), ["AC", "GT"], names=["a"]),
            "1 names for 2",
        ),
        ("write_fasta_width_0", lambda c: write_fasta(c.path(".fa"), ["AC"], width=0), "width"),
        ("write_fasta_not_str", lambda c: write_fasta(c.path(".fa"), ["AC", 12]), "sequence 1"),
        (
            "write_fasta_name_newline",
            lambda c: write_fasta(c.path(".fa"), ["AC"], names=["a\n>b"]),
            "name",
        ),
        ("write_fasta_seq_newline", lambda c: write_fasta(c.path(".fa"), ["AC\n>x"]), "sequence 0"),
        (
            "write_fasta_empty_seq",
            lambda c: write_fasta(c.path(".fa"), ["AC", ""]),
            "sequence 1 is empty",
        ),
        (
            "write_fasta_missing_folder",
            lambda c: write_fasta(c.tmp / "no" / "x.fa", ["AC"]),
            "does not exist",
        ),
        ("load_missing", lambda c: load_model(c.tmp / "none.pt"), "no checkpoint at"),
        (
            "load_garbage",
            lambda c: load_model(c.file(b"not a checkpoint")),
            "could not read checkpoint",
        ),
        (
            "load_truncated",
            lambda c: load_model(c.file(c.model_pt.read_bytes()[:1000])),
            "truncated",
        ),
        ("load_h5ad", lambda c: load_model(c.h5ad), "could not read checkpoint"),
        ("load_directory", lambda c: load_model(c.tmp), "is a directory"),
        (
            "load_other_family",
            lambda c: SequenceFlow.load(c.model_pt),
            "holds a CellFlowMatching model",
        ),
        (
            "load_not_bioflow",
            lambda c: load_model(_tampered(c, bioflow_model=None)),
            "not a bioflow model",
        ),
        (
            "load_unknown_class",
            lambda c: load_model(_tampered(c, bioflow_model="Transformer9")),
            "Transformer9",
        ),
        (
            "load_weights_mismatch",
            lambda c: load_model(_tampered(c, hyper_parameters={"hidden": [16]})),
            "weights do not match",
        ),
        (
            "load_bad_hparam",
            lambda c: load_model(_tampered(c, hyper_parameters={"method": "x-cfm"})),
            "x-cfm",
        ),
        (
            "save_missing_folder",
            lambda c: c.cell_model.save(c.tmp / "no" / "m.pt"),
            "does not exist",
        ),
    ],
)

# --- pl -------------------------------------------------------------------------------------


def _with_traj(c: Ctx) -> ad.AnnData:
    a = c.adata.copy()
    a.obsm["bioflow_trajectory"] = np.zeros((a.n_obs, 2, 10), np.float32)
    a.uns["bioflow"] = {
        "bioflow_trajectory": {"time_key": "time", "use_rep": "X_pca", "time_values": [0.0, 1.0]}
    }
    return a


HOLDOUT = pd.DataFrame({"held_out": [1, 1], "method": ["a", "b"], "w1": [0.1, 0.2]})
table(
    "pl",
    [
        ("pl_traj_no_key", lambda c: pl.trajectories(c.adata, show=False), "tl.trajectories first"),
        (
            "pl_traj_bad_shape",
            lambda c: pl.trajectories(
                c.cells(obsm_bioflow_trajectory=np.zeros((c.adata.n_obs, 3))), show=False
            ),
            "must have shape",
        ),
        (
            "pl_traj_components",
            lambda c: pl.trajectories(_with_traj(c), components=(0, 12), show=False),
            "components",
        ),
        (
            "pl_traj_n_0",
            lambda c: pl.trajectories(_with_traj(c), n_trajectories=0, show=False),
            "n_trajectories",
        ),
        (
            "pl_traj_starting_at",
            lambda c: pl.trajectories(_with_traj(c), starting_at=9.5, show=False),
            "== 9.5",
        ),
        (
            "pl_traj_basis",
            lambda c: pl.trajectories(_with_traj(c), basis="X_umap", show=False),
            "X_umap",
        ),
        (
            "pl_holdout_metric",
            lambda c: pl.holdout(HOLDOUT, metric="mmd", show=False),
            "no column 'mmd'",
        ),
        ("pl_holdout_not_frame", lambda c: pl.holdout([1, 2], show=False), "DataFrame"),
        (
            "pl_populations_dims",
            lambda c: pl.populations(
                c.pops, c.pops, c.pops, use_rep="X_coords", dims=(0, 5), show=False
            ),
            r"dims=\(0, 5\)",
        ),
        ("pl_logo_kind", lambda c: pl.sequence_logo(["AC"], kind="bits", show=False), "kind"),
        ("pl_logo_mixed", lambda c: pl.sequence_logo(["AC", "A"], show=False), "mixed lengths"),
        ("pl_logo_one_string", lambda c: pl.sequence_logo("ACGT", show=False), "not one string"),
    ],
)

# --- data modules ---------------------------------------------------------------------------


def _cdm(c: Ctx, **kw) -> CellDynamicsDataModule:
    return CellDynamicsDataModule(
        kw.pop("adata", c.h5ad), **{"time_key": "time", "use_rep": "X_pca", **kw}
    )


def _write_pred(dm, c: Ctx, path, **kw):
    x = torch.zeros(len(dm._predict_rows()), 10)
    return dm.write_predictions([x], path, **kw)


def _output_is_input(c: Ctx):
    src = c.victim()
    dm = _cdm(c, adata=str(src), predict_source_time=0, predict_target_time=1)
    return _write_pred(dm, c, str(src))


table(
    "data",
    [
        ("cells_batch_size_0", lambda c: _cdm(c, batch_size=0), "batch_size"),
        ("cells_steps_per_epoch_0", lambda c: _cdm(c, steps_per_epoch=0), "steps_per_epoch"),
        ("cells_val_cells_0", lambda c: _cdm(c, val_cells=0), "val_cells"),
        ("cells_missing_file", lambda c: _cdm(c, adata=str(c.tmp / "no.h5ad")), "no.h5ad"),
        ("cells_unknown_builtin", lambda c: _cdm(c, adata="builtin:pbmc"), "builtin:pbmc"),
        (
            "cells_predict_no_output",
            lambda c: _write_pred(_cdm(c, predict_source_time=0, predict_target_time=1), c, None),
            "predict_output",
        ),
        ("cells_output_is_input", lambda c: _output_is_input(c), "input"),
        (
            "cells_output_exists",
            lambda c: _write_pred(
                _cdm(c, predict_source_time=0, predict_target_time=1),
                c,
                str(c.file(b"old", ".h5ad")),
            ),
            "overwrite",
        ),
        ("seq_dm_batch_size_0", lambda c: SequenceDataModule(c.seqs, batch_size=0), "batch_size"),
        (
            "seq_dm_val_fraction",
            lambda c: SequenceDataModule(c.seqs, val_fraction=1.5),
            "val_fraction",
        ),
        ("seq_dm_predict_n_0", lambda c: SequenceDataModule(c.seqs, predict_n=0), "predict_n"),
        (
            "seq_dm_predict_steps_0",
            lambda c: SequenceDataModule(c.seqs, predict_steps=0),
            "predict_steps",
        ),
        (
            "seq_dm_output_is_input",
            lambda c: SequenceDataModule(str(c.fasta), batch_size=4).write_predictions(
                [["ACGTACGTAC"]], str(c.fasta)
            ),
            "input",
        ),
        (
            "pop_dm_populations_per_step_0",
            lambda c: PopulationDataModule(c.pops, use_rep="X_coords", populations_per_step=0),
            "populations_per_step",
        ),
        (
            "pop_dm_steps_per_epoch_0",
            lambda c: PopulationDataModule(c.pops, use_rep="X_coords", steps_per_epoch=0),
            "steps_per_epoch",
        ),
        (
            "read_rep_not_2d",
            lambda c: read_representation(c.cells(obsm_X_v=np.zeros((c.adata.n_obs, 1, 1))), "X_v"),
            "must be 2-D",
        ),
    ],
)

# --- data recipes ---------------------------------------------------------------------------


def _npz(c: Ctx, **arrays) -> Path:
    p = c.path(".npz")
    with open(p, "wb") as fh:
        np.savez(fh, **arrays)
    return p


def _promoters(c: Ctx, fasta: str, *extra: str):
    out = c.path()
    return _recipe("promoters").main(
        ["--out", str(out), "--input", str(c.file(fasta, ".fa")), *extra]
    )


table(
    "recipes",
    [
        (
            "zenodo_name_parent",
            lambda c: _recipe("_zenodo").safe_name("../x.tsv"),
            "refusing",
            SystemExit,
        ),
        (
            "zenodo_name_absolute",
            lambda c: _recipe("_zenodo").safe_name("/etc/passwd"),
            "refusing",
            SystemExit,
        ),
        (
            "zenodo_checksum",
            lambda c: _recipe("_zenodo").verify_checksum(
                c.file(b"x"), "md5:00000000000000000000000000000000"
            ),
            "checksum",
            SystemExit,
        ),
        (
            "common_input_missing",
            lambda c: _recipe("_common").fetch(
                {"url": "u", "file": "f"}, str(c.tmp / "no.csv"), c.tmp
            ),
            "no.csv",
        ),
        (
            "common_cache_name_escapes",
            lambda c: _recipe("_common").fetch(
                {"url": "file:///dev/null", "file": "../evil"}, None, c.tmp / "cache"
            ),
            "refusing",
        ),
        (
            "common_download_checksum",
            lambda c: _recipe("_common").download(
                c.file(b"abc").as_uri(), c.tmp / "dl" / "x.bin", "0" * 64
            ),
            "checksum mismatch",
        ),
        (
            "common_output_differs",
            lambda c: _recipe("_common").write_atomically(
                lambda tmp: Path(tmp).write_text("new"), c.file("old"), False
            ),
            "exists with different content",
            SystemExit,
        ),
        (
            "organoid_missing_columns",
            lambda c: _recipe("organoid").build(pd.DataFrame({"CD3": [1.0]}), min_cells=1),
            "does not have the screen's schema",
        ),
        (
            "enhancers_csv_columns",
            lambda c: _recipe("enhancers").from_csv(c.file("seq,y\nACGT,1\n", ".csv")),
            "'sequence' and 'label'",
            SystemExit,
        ),
        (
            "enhancers_npz_shape",
            lambda c: _recipe("enhancers").from_npz(
                _npz(c, train_x=np.zeros((2, 4)), train_y=np.zeros(2))
            ),
            "one-hot",
            SystemExit,
        ),
        (
            "enhancers_npz_object",
            lambda c: _recipe("enhancers").from_npz(
                _npz(c, train_x=np.array([None, 1], dtype=object), train_y=np.zeros(2))
            ),
            "pickle",
        ),
        (
            "embryoid_npz_object",
            lambda c: _recipe("embryoid_body").build(
                _npz(c, pcs=np.zeros((2, 5)), sample_labels=np.array([None, 1], dtype=object))
            ),
            "pickled Python objects",
        ),
        (
            "promoters_bad_letter",
            lambda c: _promoters(c, ">a\nACGN\n>b\nACGT\n"),
            "letter 'N'",
            SystemExit,
        ),
    ],
)

# --- CLI ------------------------------------------------------------------------------------


def _cli_last_run(c: Ctx) -> Path:
    """A finished 1-step fit of the cells config (shared by the CLI cases)."""
    found = sorted((c.tmp / "runs" / "cells_once").rglob("last.ckpt"))
    if found:
        return found[-1]
    c.cli_cells(
        "fit",
        "--trainer.max_steps",
        "1",
        "--trainer.limit_val_batches",
        "0",
        "--trainer.logger.init_args.name",
        "cells_once",
    )
    return sorted((c.tmp / "runs" / "cells_once").rglob("last.ckpt"))[-1]


def _cli_predict_over_input(c: Ctx):
    src = c.victim()
    c.cli(
        "predict",
        "--data.adata",
        str(src),
        "--model.init_args.hidden",
        "[8]",
        "--ckpt_path",
        str(_cli_last_run(c)),
        "--data.predict_source_time",
        "0",
        "--data.predict_target_time",
        "1",
        "--data.predict_output",
        str(src),
    )


table(
    "cli",
    [
        (
            "cli_predict_without_ckpt",
            lambda c: c.cli_cells(
                "predict",
                "--data.predict_source_time",
                "0",
                "--data.predict_target_time",
                "1",
                "--data.predict_output",
                str(c.path(".h5ad")),
            ),
            "--ckpt_path",
        ),
        ("cli_validate_without_ckpt", lambda c: c.cli_cells("validate"), "validate needs --ckpt"),
        ("cli_max_steps_0", lambda c: c.cli_cells("fit", "--trainer.max_steps", "0"), "max_steps"),
        (
            "cli_max_steps_negative",
            lambda c: c.cli_cells("fit", "--trainer.max_steps", "-7"),
            "max_steps",
        ),
        (
            "cli_ckpt_missing",
            lambda c: c.cli_cells("fit", "--ckpt_path", str(c.tmp / "none.ckpt")),
            "none.ckpt",
        ),
        (
            "cli_ckpt_last_without_run",
            lambda c: c.cli(
                "fit",
                "--ckpt_path",
                "last",
                "--trainer.logger.init_args.name",
                "empty",
                "--trainer.max_steps",
                "1",
                "--trainer.limit_val_batches",
                "0",
                config="seq_toy.yaml",
            ),
            "no earlier run",
        ),
        (
            "cli_fit_from_model_save",
            lambda c: c.cli_cells("fit", "--ckpt_path", str(c.model_pt)),
            r"model\.save",
        ),
        (
            "cli_ckpt_other_family",
            lambda c: c.cli("fit", "--ckpt_path", str(c.model_pt), config="seq_toy.yaml"),
            "holds a CellFlowMatching model, not a SequenceFlow",
        ),
        ("cli_predict_output_is_input", _cli_predict_over_input, "input"),
        (
            "cli_predict_output_exists",
            lambda c: c.cli_cells(
                "predict",
                "--ckpt_path",
                str(_cli_last_run(c)),
                "--data.predict_source_time",
                "0",
                "--data.predict_target_time",
                "1",
                "--data.predict_output",
                str(c.file(b"old", ".h5ad")),
            ),
            "--overwrite",
        ),
    ],
)


# --- running the table ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def ctx(tmp_path_factory) -> Ctx:
    return Ctx(tmp_path_factory.mktemp("bad_inputs"))


def test_table_is_large_and_covers_every_area():
    areas = {c.area for c in CASES}
    assert len(CASES) >= 100
    assert {"tl", "pl", "io", "metrics", "datasets", "recipes", "cli"} <= areas
    assert len({c.id for c in CASES}) == len(CASES), "case ids must be unique"


@pytest.mark.parametrize("case", CASES, ids=[f"{c.area}-{c.id}" for c in CASES])
def test_bad_input_is_named(case: Case, ctx: Ctx):
    with pytest.raises(case.exc, match=case.match):
        case.call(ctx)


# --- atomic writes: a writer killed mid-write leaves the old file ---------------------------
KILLED_WRITER = textwrap.dedent("""
    import os, signal, sys
    import torch
    import bioflow
    target, what = sys.argv[1], sys.argv[2]

    def die(fd):
        # all bytes are written but not yet on disk or published: the worst moment
        os.kill(os.getpid(), signal.SIGKILL)

    os.fsync = die
    if what == "fasta":
        from bioflow.io import write_fasta
        write_fasta(target, ["ACGT" * 500] * 20)
    elif what == "model":
        from bioflow.models import CellFlowMatching
        CellFlowMatching(dim=50, hidden=(64, 64)).save(target)
    elif what == "ckpt":
        from bioflow.callbacks import AtomicCheckpointIO
        AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(1000)}}, target)
    elif what == "h5ad":
        dm = bioflow.data.CellDynamicsDataModule(
            bioflow.datasets.simulated_differentiation(n_cells_per_time=20), time_key="time",
            use_rep="X_pca", predict_source_time=0, predict_target_time=1)
        dm.write_predictions([torch.zeros(20, 10)], target, overwrite=True)
    print("the writer finished without syncing its file", file=sys.stderr)
    sys.exit(3)
""")


@pytest.mark.parametrize("what", ["fasta", "model", "ckpt", "h5ad"])
def test_killed_writer_leaves_the_old_file(what, tmp_path):
    """A writer SIGKILLed after writing its bytes, before they are synced and published,
    leaves the previous file byte for byte (a direct write would have truncated it)."""
    target = tmp_path / f"out.{what}"
    target.write_bytes(b"old content")
    # $TMPDIR on another filesystem must not matter: temporary files live beside the target
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TMPDIR": "/dev/shm" if os.path.isdir("/dev/shm") else str(tmp_path),
    }
    res = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(target), what],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert res.returncode == -signal.SIGKILL, res.stderr[-2000:]
    assert target.read_bytes() == b"old content", "the old file was damaged"
    # the partial temp file may remain (named as temporary); never under the target's name
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != target.name]
    assert all(n.startswith(".") and n.endswith(".tmp") for n in leftovers), leftovers


def test_atomic_writes_replace_and_sync(tmp_path):
    from bioflow.callbacks import AtomicCheckpointIO

    write_fasta(tmp_path / "a.fa", ["ACGT"])
    write_fasta(tmp_path / "a.fa", ["GG", "CC"])
    assert read_fasta(tmp_path / "a.fa") == [("seq0", "GG"), ("seq1", "CC")]
    AtomicCheckpointIO().save_checkpoint(
        {"state_dict": {"w": torch.ones(3)}}, tmp_path / "c" / "x.ckpt"
    )
    assert torch.load(tmp_path / "c" / "x.ckpt", weights_only=True)["state_dict"]["w"].sum() == 3
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.fa", "c", "x.ckpt"]


# --- round trips ----------------------------------------------------------------------------
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
FAMILIES = {
    "cells": (
        "cells_simulated.yaml",
        [
            "--data.init_args.dataset_kwargs",
            '{"n_cells_per_time": 40}',
            "--data.batch_size",
            "16",
            "--model.init_args.hidden",
            "[8]",
        ],
    ),
    "populations": (
        "meta_letters.yaml",
        [
            "--data.init_args.dataset_kwargs",
            '{"letters": "ABC", "n_rotations": 2, "n_points": 60}',
            "--data.init_args.exclude_populations",
            "[C_0, C_1]",
            "--data.init_args.populations_per_step",
            "2",
            "--data.init_args.cells_per_population",
            "16",
            "--data.init_args.embed_cells",
            "30",
            "--model.init_args.embed_cells",
            "30",
            "--model.init_args.k",
            "5",
            "--data.init_args.min_source_cells",
            "6",
            "--model.init_args.width",
            "16",
        ],
    ),
    "sequences": ("seq_toy.yaml", ["--model.init_args.hidden", "8"]),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_fit_checkpoint_loads_with_load_model(family, tmp_path):
    from bioflow.cli import main

    cfg, extra = FAMILIES[family]
    main(
        [
            "fit",
            "--config",
            str(ROOT / "configs" / cfg),
            *extra,
            *QUIET,
            "--trainer.max_steps",
            "2",
            "--trainer.limit_val_batches",
            "0",
            "--trainer.default_root_dir",
            str(tmp_path),
            "--trainer.logger.init_args.save_dir",
            str(tmp_path),
        ]
    )
    ckpt = next(tmp_path.rglob("last.ckpt"))
    raw = torch.load(ckpt, weights_only=True)
    model = load_model(ckpt)
    assert type(model).__name__ == raw["bioflow_model"]
    for k, v in raw["state_dict"].items():
        assert torch.equal(model.state_dict()[k], v), k
    same = type(model).load(ckpt)
    assert type(same) is type(model)


def test_model_save_file_predicts_through_the_cli(tmp_path):
    from bioflow.cli import main

    adata = datasets.simulated_differentiation(n_cells_per_time=30, seed=1)
    adata.write_h5ad(tmp_path / "cells.h5ad")
    model = tl.fit_dynamics(
        adata,
        time_key="time",
        use_rep="X_pca",
        max_steps=2,
        model_kwargs={"hidden": (8,)},
        enable_progress_bar=False,
    )
    model.save(tmp_path / "model.pt")
    out = tmp_path / "pred.h5ad"
    out.write_bytes(b"an older prediction")  # replaced only because of --overwrite
    main(
        [
            "predict",
            "--config",
            str(ROOT / "configs" / "cells_simulated.yaml"),
            *QUIET,
            "--data.adata",
            str(tmp_path / "cells.h5ad"),
            "--model.init_args.hidden",
            "[8]",
            "--trainer.default_root_dir",
            str(tmp_path),
            "--trainer.logger.init_args.save_dir",
            str(tmp_path),
            "--ckpt_path",
            str(tmp_path / "model.pt"),
            "--data.predict_source_time",
            "1.0",
            "--data.predict_target_time",
            "2.0",
            "--data.predict_output",
            str(out),
            "--overwrite",
        ]
    )
    pred = ad.read_h5ad(out)
    want = tl.predict_cells(model, adata, source_time=1.0, target_time=2.0)
    np.testing.assert_allclose(pred.obsm["X_pca"], want.obsm["X_pca"], rtol=1e-5, atol=1e-5)


# --- inputs that are valid and used to fail -------------------------------------------------
def test_fasta_with_bom_gzip_and_crlf(tmp_path):
    (tmp_path / "bom.fa").write_bytes(b"\xef\xbb\xbf>a\r\nAC\r\nGT\r\n")
    assert read_fasta(tmp_path / "bom.fa") == [("a", "ACGT")]
    (tmp_path / "x.fa.gz").write_bytes(gzip.compress(b">a\nAC\n>b\nGG\n"))
    assert read_fasta(tmp_path / "x.fa.gz") == [("a", "AC"), ("b", "GG")]


def test_backed_sparse_x_is_read_row_wise(tmp_path):
    rng = np.random.default_rng(0)
    x = sp.random(50, 7, density=0.3, format="csr", random_state=0, dtype=np.float64)
    a = ad.AnnData(
        x, obs=pd.DataFrame({"time": np.repeat([0.0, 1.0], 25)}, index=[f"c{i}" for i in range(50)])
    )
    a.write_h5ad(tmp_path / "s.h5ad")
    backed = ad.read_h5ad(tmp_path / "s.h5ad", backed="r")
    dense = x.toarray().astype(np.float32)
    np.testing.assert_array_equal(read_representation(backed, None), dense)
    rows = rng.permutation(50)[:13]
    np.testing.assert_array_equal(read_representation(backed, None, rows=rows), dense[rows])
    series = read_time_series(backed, "time")
    assert series.x.shape == (50, 7)


def test_sparse_x_is_densified_without_an_extra_copy():
    import tracemalloc

    x = sp.random(4000, 500, density=0.05, format="csr", random_state=0, dtype=np.float64)
    a = ad.AnnData(x)
    tracemalloc.start()
    out = read_representation(a, None)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert out.dtype == np.float32 and out.shape == (4000, 500)
    # the float32 result plus the float32 copy of the non-zeros; no float64 dense copy
    assert peak < 1.3 * out.nbytes, peak / out.nbytes


def test_dataframe_obsm_of_numbers_is_read():
    a = ad.AnnData(obs=pd.DataFrame(index=["a", "b"]))
    a.obsm["X_df"] = pd.DataFrame({"u": [1.0, 2.0], "v": [3, 4]}, index=["a", "b"])
    np.testing.assert_array_equal(read_representation(a, "X_df"), [[1, 3], [2, 4]])


# --- no silent success: SIGTERM saves and exits non-zero; --ckpt_path last resumes ----------
def _ckpt_step(path: Path) -> int:
    return int(torch.load(path, weights_only=True)["global_step"])


def test_sigterm_saves_a_checkpoint_and_last_resumes_it(tmp_path):
    fit = [
        sys.executable,
        "-m",
        "bioflow",
        "fit",
        "--config",
        str(ROOT / "configs" / "seq_toy.yaml"),
        *QUIET,
        "--model.init_args.hidden",
        "8",
        "--data.init_args.dataset_kwargs",
        '{"K": 4, "n": 400}',
        "--data.init_args.batch_size",
        "16",
        "--data.init_args.val_samples",
        "16",
        "--trainer.limit_val_batches",
        "0",
        "--trainer.log_every_n_steps",
        "1",
        "--trainer.default_root_dir",
        str(tmp_path),
        "--trainer.logger.init_args.save_dir",
        str(tmp_path),
    ]
    proc = subprocess.Popen(
        [*fit, "--trainer.max_steps", "1000000"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    metrics_csv = tmp_path / "bioflow" / "version_0" / "metrics.csv"
    deadline = time.monotonic() + 180
    # wait until training has logged its first steps
    while (
        time.monotonic() < deadline
        and proc.poll() is None
        and not (metrics_csv.exists() and metrics_csv.stat().st_size > 0)
    ):
        time.sleep(0.2)
    assert proc.poll() is None, proc.stderr.read()[-2000:]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    last = tmp_path / "bioflow" / "version_0" / "checkpoints" / "last.ckpt"
    stopped_at = _ckpt_step(last)
    assert stopped_at >= 1
    # resume the latest run of this config and train 3 more steps
    from bioflow.cli import main

    main([*fit[3:], "--ckpt_path", "last", "--trainer.max_steps", str(stopped_at + 3)])
    resumed = tmp_path / "bioflow" / "version_1" / "checkpoints" / "last.ckpt"
    assert _ckpt_step(resumed) == stopped_at + 3
