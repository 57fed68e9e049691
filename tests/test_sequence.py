"""Gumbel-Softmax flow matching for sequences: path, solver, guidance, model, data, io."""

import math

import numpy as np
import pytest
import torch

import bioflow
from bioflow.core.guidance import STGuidance, straight_through_gradient, straight_through_sample
from bioflow.core.losses import sequence_cross_entropy
from bioflow.core.paths import GumbelSoftmaxPath
from bioflow.core.solvers import project_simplex, simplex_euler
from bioflow.data.sequences import SequenceDataModule, decode, encode, one_hot
from bioflow.io import load_model, read_fasta, write_fasta
from bioflow.models import SequenceFlow, SequencePredictor


def test_score_mixture_and_conditional_score_match_autograd():
    path = GumbelSoftmaxPath()
    K = 5
    t = torch.tensor([0.4])
    x = torch.softmax(torch.randn(1, 1, K), -1)
    k = torch.tensor([[2]])
    # Concrete log-density with alpha = exp(rho(t) e_k), temperature c = beta tau
    c = path.beta * path.tau(t)
    la = path.rho(t, K) * torch.nn.functional.one_hot(k, K).float()
    xr = x.clone().requires_grad_(True)
    logp = -(c + 1) * torch.log(xr).sum() - K * torch.logsumexp(la - c * torch.log(xr), -1).sum()
    (grad,) = torch.autograd.grad(logp, xr)
    want = x * grad
    want = want - want.mean(-1, keepdim=True)
    assert torch.allclose(path.conditional_score(x, k, t), want, atol=1e-4)
    p = torch.softmax(torch.randn(1, 1, K), -1)
    mix = sum(
        p[..., j : j + 1] * path.conditional_score(x, torch.tensor([[j]]), t) for j in range(K)
    )
    assert torch.allclose(path.score_from_probs(x, p, t), mix, atol=1e-4)


def test_simplex_euler_stays_on_simplex():
    x0 = GumbelSoftmaxPath().prior_sample(6, 5, 4)
    big = lambda t, x: 50 * torch.randn_like(x)  # noqa: E731  pushes off the simplex
    path = simplex_euler(big, x0, steps=10, return_path=True)
    assert path.shape == (11, 6, 5, 4)
    assert (path >= 0).all() and torch.allclose(path.sum(-1), torch.ones(11, 6, 5), atol=1e-5)
    assert torch.allclose(project_simplex(torch.tensor([-1.0, 1.0, 3.0])).sum(), torch.tensor(1.0))
    with pytest.raises(ValueError, match="steps"):
        simplex_euler(big, x0, steps=0)


def test_straight_through_is_hard_forward_soft_backward():
    x = torch.softmax(torch.randn(3, 4, 4), -1).requires_grad_(True)
    y = straight_through_sample(x, 6)
    assert set(y.detach().unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(y.detach().sum(-1), torch.ones(6, 3, 4))
    y[..., 0].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_cross_entropy_hand_value():
    logits = torch.log(torch.tensor([[[0.5, 0.25, 0.25]]]))
    assert torch.isclose(
        sequence_cross_entropy(logits, torch.tensor([[0]])), torch.tensor(math.log(2.0))
    )


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return SequenceFlow("ACGT", seq_len=12, hidden=16, n_layers=2).eval()


def test_samples_on_simplex_and_decoded(tiny_model):
    x = tiny_model.sample_simplex(8, steps=10, generator=torch.Generator().manual_seed(0))
    assert x.shape == (8, 12, 4) and (x >= 0).all()
    assert torch.allclose(x.sum(-1), torch.ones(8, 12), atol=1e-5)
    seqs = tiny_model.decode(x)
    assert len(seqs) == 8 and all(len(s) == 12 and set(s) <= set("ACGT") for s in seqs)


def test_default_sampler_is_the_gsfm_ode(tiny_model):
    # the ODE is the default; predict-and-renoise (not a joint-law sampler) only by name
    assert tiny_model.samplers == ("euler", "renoise")
    a = tiny_model.sample_simplex(4, steps=5, generator=torch.Generator().manual_seed(0))
    b = tiny_model.sample_simplex(
        4, steps=5, generator=torch.Generator().manual_seed(0), method="euler"
    )
    c = tiny_model.sample_simplex(
        4, steps=5, generator=torch.Generator().manual_seed(0), method="renoise"
    )
    assert torch.equal(a, b)
    assert ((c == 0) | (c == 1)).all() and not ((a == 0) | (a == 1)).all()


def _reward_g(onehot):  # hand-made reward: the number of "G"s (letter 2)
    return onehot[..., 2].sum(-1)


def _g_share(seqs):
    return np.mean([s.count("G") / len(s) for s in seqs])


def test_euler_guidance_raises_rewarded_letter(tiny_model):
    kw = dict(steps=10, seed=3, method="euler")
    free = bioflow.tl.sample_sequences(tiny_model, 32, **kw)
    guided = bioflow.tl.sample_sequences(
        tiny_model, 32, guidance=_reward_g, guidance_scale=5.0, n_guidance_samples=4, **kw
    )
    assert _g_share(guided) > _g_share(free) + 0.3
    g = STGuidance(_reward_g, n_samples=4).gradient(torch.full((2, 3, 4), 0.25))
    assert torch.allclose(g.sum(-1), torch.zeros(2, 3), atol=1e-5)
    assert (g[..., 2] > 0).all()


def test_renoise_guidance_raises_rewarded_letter_and_stays_valid(tiny_model):
    kw = dict(steps=8, seed=3, method="renoise")
    free = bioflow.tl.sample_sequences(tiny_model, 64, **kw)
    guided = bioflow.tl.sample_sequences(
        tiny_model, 64, guidance=_reward_g, guidance_scale=2.0, n_guidance_samples=4, **kw
    )
    # tilt by 2 (e_G - 1/4): p(G) rises from ~1/4 to ~0.7 on a near-uniform model
    assert _g_share(free) < 0.4 and _g_share(guided) > _g_share(free) + 0.3
    assert len(guided) == 64 and all(len(s) == 12 and set(s) <= set("ACGT") for s in guided)
    x = tiny_model.sample_simplex(
        5,
        steps=3,
        guidance=_reward_g,
        generator=torch.Generator().manual_seed(0),
        method="renoise",
    )
    assert set(x.unique().tolist()) <= {0.0, 1.0} and torch.equal(x.sum(-1), torch.ones(5, 12))


def test_straight_through_tilt_is_exact_for_a_linear_reward():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(5, 4, generator=g)  # reward sum_l <w_l, y_l>

    def reward(y):
        return (y * w).sum((-1, -2))

    logits = torch.randn(3, 5, 4, generator=g)
    st = straight_through_gradient(reward, torch.softmax(logits, -1), 6, generator=g)
    assert st.reward.shape == (6, 3) and st.onehot.shape == st.simplex.shape == (3, 5, 4)
    want = (w - w.mean(-1, keepdim=True)).expand(3, 5, 4)
    assert torch.allclose(st.onehot, want, atol=1e-5)
    # so the tilt is p(x1) exp(gamma f(x1)) exactly: logits + gamma * (w - mean w)
    tilted = STGuidance(reward, scale=1.5, n_samples=2).tilt(logits)
    assert torch.allclose(torch.softmax(tilted, -1), torch.softmax(logits + 1.5 * w, -1), atol=1e-5)
    with pytest.raises(ValueError, match=r"reward must map \(m, L, K\) to \(m,\)"):
        straight_through_gradient(lambda y: y.sum(-1), torch.softmax(logits, -1), 2)
    with pytest.raises(ValueError, match="n_samples"):
        straight_through_gradient(reward, torch.softmax(logits, -1), 0)


def test_importance_corrected_draw_follows_a_nonlinear_tilt():
    # reward 5 * [y_0 = G and y_1 = G] on a uniform law: the tilted law gives "GG" the
    # weight e^5 / (e^5 + 15) = 0.91; the first-order tilt alone cannot couple the two
    # positions (~0.2), the importance-resampled draw recovers most of it
    def reward(y):
        return 5.0 * y[:, 0, 2] * y[:, 1, 2]

    logits = torch.zeros(2000, 2, 4)
    guide = STGuidance(reward, n_samples=16, generator=torch.Generator().manual_seed(0))
    k = guide.draw(logits)
    assert k.shape == (2000, 2) and k.dtype == torch.long
    gg_draw = ((k[:, 0] == 2) & (k[:, 1] == 2)).float().mean().item()
    q = torch.softmax(guide.tilt(logits), -1)
    gg_tilt = (q[:, 0, 2] * q[:, 1, 2]).mean().item()
    assert gg_tilt < 0.35 and gg_draw > 0.7


def test_sampling_bad_arguments_name_the_fault(tiny_model):
    sample = tiny_model.sample_simplex
    for method in tiny_model.samplers:
        with pytest.raises(ValueError, match="guidance_scale"):
            sample(2, steps=2, method=method, guidance=_reward_g, guidance_scale=-1.0)
        with pytest.raises(ValueError, match="guidance_scale"):
            sample(2, steps=2, method=method, guidance=_reward_g, guidance_scale=float("nan"))
        with pytest.raises(ValueError, match="n_guidance_samples"):
            sample(2, steps=2, method=method, guidance=_reward_g, n_guidance_samples=0)
        with pytest.raises(ValueError, match="guidance must be callable"):
            sample(2, steps=2, method=method, guidance=3.0)
        with pytest.raises(ValueError, match="steps"):
            sample(2, steps=0, method=method)
    with pytest.raises(ValueError, match="method"):
        bioflow.tl.sample_sequences(tiny_model, 2, method="heun")
    clf = SequencePredictor("ACGT", n_outputs=2, hidden=8)
    with pytest.raises(ValueError, match="guidance_target"):
        bioflow.tl.sample_sequences(tiny_model, 2, steps=2, guidance=clf, guidance_target=2)
    with pytest.raises(ValueError, match="alphabet"):
        bioflow.tl.sample_sequences(
            tiny_model, 2, steps=2, guidance=SequencePredictor("ACGU", hidden=8)
        )
    # a predictor guides either sampler and yields valid sequences
    for method in tiny_model.samplers:
        out = bioflow.tl.sample_sequences(tiny_model, 3, steps=2, guidance=clf, method=method)
        assert len(out) == 3 and all(len(s) == 12 and set(s) <= set("ACGT") for s in out)


def test_fit_save_load_roundtrip(tmp_path):
    seqs, y = bioflow.datasets.motif_sequences(64, length=12, motif="TATA", seed=0)
    for objective in ("flow", "score"):
        model = bioflow.tl.fit_sequence_flow(
            seqs,
            method="gsfm",
            objective=objective,
            max_steps=3,
            batch_size=16,
            model_kwargs=dict(hidden=16, n_layers=2),
            enable_progress_bar=False,
        )
        model.save(tmp_path / "m.pt")
        again = load_model(tmp_path / "m.pt")
        assert isinstance(again, SequenceFlow) and again.objective == objective
        x = torch.full((2, 12, 4), 0.25)
        assert torch.allclose(
            model(torch.tensor([0.3, 0.7]), x), again(torch.tensor([0.3, 0.7]), x)
        )
        assert bioflow.tl.sample_sequences(
            model, 5, steps=5, seed=1
        ) == bioflow.tl.sample_sequences(again, 5, steps=5, seed=1)
    clf = bioflow.tl.fit_sequence_classifier(
        seqs, y, max_steps=3, batch_size=16, enable_progress_bar=False
    )
    clf.save(tmp_path / "c.pt")
    assert isinstance(load_model(tmp_path / "c.pt"), SequencePredictor)
    with pytest.raises(ValueError, match="SequencePredictor"):
        SequenceFlow.load(tmp_path / "c.pt")
    with pytest.raises(ValueError, match="task"):
        bioflow.tl.fit_sequence_classifier(seqs, y, task="ranking")
    with pytest.raises(ValueError, match="objective"):
        bioflow.tl.fit_sequence_flow(seqs, method="gsfm", objective="energy")


def test_transformer_backbone_protein():
    model = SequenceFlow(
        "ACDEFGHIKLMNPQRSTVWY", seq_len=6, backbone="transformer", hidden=16, n_layers=1
    )
    loss = model.compute_loss({"tokens": torch.randint(0, 20, (4, 6))}).loss
    assert torch.isfinite(loss)
    assert len(model.sample(2, steps=3)[0]) == 6


def test_encoding_and_bad_input(tmp_path):
    assert encode(["acgt"]).tolist() == [[0, 1, 2, 3]]
    assert decode(one_hot(["GATTACA"])) == ["GATTACA"]
    with pytest.raises(ValueError, match=r"record 'b'.*'N' at position 3"):
        encode(["ACGT", "ACNT"], names=["a", "b"])
    with pytest.raises(ValueError, match="mixed lengths"):
        encode(["ACGT", "ACG"])
    with pytest.raises(ValueError, match="alphabet"):
        encode(["ACGT"], alphabet="x")
    fa = tmp_path / "s.fa"
    write_fasta(fa, ["ACGT" * 30, "TTTT" * 30], names=["r1", "r2"])
    assert read_fasta(fa) == [("r1", "ACGT" * 30), ("r2", "TTTT" * 30)]
    dm = SequenceDataModule(str(fa), batch_size=2)
    assert dm.seq_len == 120
    (tmp_path / "bad.fa").write_text(">ok\nACGT\n>weird\nACXT\n")
    with pytest.raises(ValueError, match=r"'weird'.*'X' at position 3"):
        SequenceDataModule(str(tmp_path / "bad.fa"))
    (tmp_path / "nohead.fa").write_text("ACGT\n")
    with pytest.raises(ValueError, match="header"):
        read_fasta(tmp_path / "nohead.fa")
    with pytest.raises(ValueError, match="neither"):
        SequenceDataModule("not_a_file.fa")


def test_datasets():
    seqs, y = bioflow.datasets.motif_sequences(
        200, length=30, motif="TATAAT", motif_fraction=0.5, seed=0
    )
    assert all(("TATAAT" in s) == bool(t) for s, t in zip(seqs, y, strict=True))
    assert 0.35 < y.mean() < 0.65
    seqs, probs, alphabet = bioflow.datasets.categorical_toy(10, n=20000, seed=0)
    assert np.allclose(probs.sum(1), 1)
    tok = encode(seqs, alphabet)
    freq = np.bincount(tok[:, 0], minlength=10) / len(seqs)
    assert np.abs(freq - probs[0]).max() < 0.02


def test_renoise_sampler_returns_letters(tiny_model):
    x = tiny_model.sample_simplex(
        6, steps=4, method="renoise", generator=torch.Generator().manual_seed(0)
    )
    assert x.shape == (6, 12, 4) and torch.equal(x.sum(-1), torch.ones(6, 12))
    assert set(x.unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="method"):
        tiny_model.sample_simplex(2, method="heun")
