"""Discrete flow matching: mixture paths, loss, jump sampler, DiscreteFlow, the Markov task."""

import itertools
import math

import numpy as np
import pytest
import torch

import bioflow
from bioflow import metrics
from bioflow.core.guidance import STGuidance
from bioflow.core.losses import mixture_path_loss
from bioflow.core.paths import MixtureDiscretePath, PolynomialScheduler
from bioflow.core.paths.discrete import stratified_times
from bioflow.core.solvers import gibbs_moves, jump_sample
from bioflow.data.sequences import encode
from bioflow.datasets import MarkovMotif, markov_motif_sequences
from bioflow.io import load_model
from bioflow.models import DiscreteFlow, SequencePredictor

# --- a chain small enough to enumerate: K = 3 letters, L = 5 positions ----------------------
K, L = 3, 5
ALL = torch.tensor(list(itertools.product(range(K), repeat=L)))
ONEHOT = torch.nn.functional.one_hot(ALL, K).float()


def _joint(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(len(ALL), generator=g) * 1.5, 0)


def exact_posterior(path, p):
    """p(x1_i | x_t) of the joint law ``p`` over ALL, as logits (n, L, K)."""

    def post(t, x):
        if path.mask_token is not None:
            ok = ((x[:, None] == ALL[None]) | (x[:, None] == path.mask_token)).all(-1)
            w = ok.float() * p
        else:
            k = path.scheduler.kappa(t[0])
            match = (x[:, None] == ALL[None]).float()
            w = (k * match + (1 - k) / K).prod(-1) * p
        w = w / w.sum(1, keepdim=True)
        return torch.log(torch.einsum("ns,slk->nlk", w, ONEHOT).clamp_min(1e-30))

    return post


def tv(x, p):
    codes = (x * (K ** torch.arange(L - 1, -1, -1))).sum(1)
    emp = torch.bincount(codes, minlength=K**L).float() / len(codes)
    return 0.5 * (emp - p).abs().sum().item()


@pytest.mark.parametrize(
    "source,sampler",
    [("mask", "stratified"), ("mask", "corrected"), ("mask", "jump"), ("uniform", "jump")],
)
def test_exact_posterior_sampler_converges_to_the_joint_law(source, sampler):
    p = _joint()
    N = 6000
    g = torch.Generator().manual_seed(1)
    floor = tv(ALL[torch.multinomial(p, N, replacement=True, generator=g)], p)
    path = MixtureDiscretePath(K, source)
    post = exact_posterior(path, p)
    err = {}
    for steps in (1, 4, 40):
        x0 = path.source_sample(N, L, generator=g)
        x = jump_sample(post, path, x0, steps=steps, sampler=sampler, generator=g)
        assert x.shape == (N, L) and (x >= 0).all() and (x < K).all()
        err[steps] = tv(x, p)
    # one step draws every position independently from its marginal: far from the joint
    assert err[1] > 0.3
    assert err[1] > err[4] > err[40]
    assert err[40] < floor + 0.03, (err, floor)
    if sampler != "jump":  # steps >= L: one position at a time, exact
        x = jump_sample(post, path, path.source_sample(N, L), steps=L, sampler=sampler, generator=g)
        assert tv(x, p) < floor + 0.02


def test_gibbs_moves_with_the_exact_posterior_reach_the_joint_law_from_a_wrong_start():
    # start far from the law (one jump step: every position independent) and let the Gibbs
    # corrector alone carry the draws to the joint law; a biased move (e.g. one that kept a
    # letter's old value or drew from the marginal) would stay off by far more than the floor
    p = _joint(3)
    N = 6000
    g = torch.Generator().manual_seed(4)
    path = MixtureDiscretePath(K, "mask")
    post = exact_posterior(path, p)
    floor = tv(ALL[torch.multinomial(p, N, replacement=True, generator=g)], p)
    start = jump_sample(post, path, path.source_sample(N, L), steps=1, generator=g)
    assert tv(start, p) > 0.3
    keep = start.clone()
    x = gibbs_moves(post, path, start, 150, generator=g)
    assert torch.equal(start, keep)  # the input is not modified
    assert tv(x, p) < floor + 0.03, (tv(x, p), floor)
    with pytest.raises(ValueError, match="mask token"):
        gibbs_moves(post, path, path.source_sample(2, L), 1)
    with pytest.raises(ValueError, match="moves"):
        gibbs_moves(post, path, start[:2], -1)
    with pytest.raises(ValueError, match="masked source"):
        gibbs_moves(post, MixtureDiscretePath(K, "uniform"), start[:2], 1)


def test_guided_exact_sampler_reaches_the_tilted_law_of_independent_positions():
    # independent positions: the tilted law p(x) exp(gamma f(x)) with f linear is again a
    # product, and the guided default sampler with the exact posterior must reach it
    g = torch.Generator().manual_seed(2)
    marg = torch.softmax(torch.randn(L, K, generator=g), -1)
    p = marg[torch.arange(L), ALL].prod(-1)
    w = torch.randn(L, K, generator=g)
    gamma = 1.0
    N = 6000

    def reward(y):
        return (y * w).sum((-1, -2))

    tilted = p * torch.exp(gamma * (ONEHOT * w).sum((-1, -2)))
    tilted = tilted / tilted.sum()
    path = MixtureDiscretePath(K, "mask")
    guide = STGuidance(reward, n_samples=4, scale=gamma, generator=g)
    x = jump_sample(
        exact_posterior(path, p),
        path,
        path.source_sample(N, L),
        steps=L,
        sampler="stratified",
        draw=guide.draw,
        generator=g,
    )
    floor = tv(ALL[torch.multinomial(tilted, N, replacement=True, generator=g)], tilted)
    assert tv(x, tilted) < floor + 0.02
    assert tv(x, p) > 0.1  # and it did move away from the untilted law


def test_mixture_path_endpoints_schedule_and_velocity():
    path = MixtureDiscretePath(4, "uniform", PolynomialScheduler(2.0))
    g = torch.Generator().manual_seed(0)
    x1 = torch.randint(0, 4, (4000, 8), generator=g)
    x0 = path.source_sample(4000, 8, generator=g)
    assert torch.equal(path.sample(x0, x1, torch.zeros(4000)).x_t, x0)
    assert torch.equal(path.sample(x0, x1, torch.ones(4000)).x_t, x1)
    ps = path.sample(x0, x1, torch.full((4000,), 0.5), generator=g)
    from_x1 = (ps.x_t == x1) & (x0 != x1)
    assert abs(from_x1.float().mean().item() / (x0 != x1).float().mean().item() - 0.25) < 0.02
    # the exact jump probability tends to the rate dkappa / (1 - kappa) dt
    t, h = 0.3, 1e-4
    rate = 2 * t / (1 - t**2)
    assert math.isclose(float(path.jump_probability(t, t + h)) / h, rate, rel_tol=1e-2)
    assert float(path.jump_probability(0.9, 1.0)) == 1.0
    probs = torch.softmax(torch.randn(3, 8, 4, generator=g), -1)
    v = path.velocity(probs, x1[:3], torch.tensor([0.2, 0.5, 0.7]))
    assert torch.allclose(v.sum(-1), torch.zeros(3, 8), atol=1e-5)
    masked = MixtureDiscretePath(4, "mask")
    assert masked.velocity(probs, masked.source_sample(3, 8), 0.5).shape == (3, 8, 5)
    with pytest.raises(ValueError, match="source"):
        MixtureDiscretePath(4, "gaussian")
    with pytest.raises(ValueError, match="exponent"):
        PolynomialScheduler(0.0)


def test_stratified_times_cover_the_axis_and_are_each_uniform():
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([stratified_times(8, generator=g) for _ in range(4000)])  # (4000, 8)
    assert ((draws >= 0) & (draws < 1)).all()
    # one time in each eighth of [0, 1) in every batch
    assert (draws.sort(1).values.mul(8).floor() == torch.arange(8.0)).all()
    # yet each slot is U(0, 1): its mean is 1/2 and its quartiles are 1/4, 1/2, 3/4
    assert torch.allclose(draws.mean(0), torch.full((8,), 0.5), atol=0.02)
    q = torch.quantile(draws[:, 3], torch.tensor([0.25, 0.5, 0.75]))
    assert torch.allclose(q, torch.tensor([0.25, 0.5, 0.75]), atol=0.03)
    with pytest.raises(ValueError, match="n must be"):
        stratified_times(0)


def test_losses_hand_values_and_minimiser():
    path = MixtureDiscretePath(3, "mask")
    x1 = torch.tensor([[0, 1, 2]])
    x0 = path.source_sample(1, 3)
    ps = bioflow.core.paths.DiscretePathSample(
        torch.tensor([[3, 1, 3]]), None, torch.tensor([0.5]), x1=x1, x0=x0
    )
    logits = torch.log(torch.tensor([[[0.5, 0.25, 0.25], [0.2, 0.6, 0.2], [0.1, 0.1, 0.8]]]))
    masked = ps.x_t == 3
    want_ce = -torch.log(torch.tensor([0.5, 0.6, 0.8]))[masked[0]].mean()
    assert torch.isclose(mixture_path_loss(logits, ps, path, "ce"), want_ce)
    # masked source, t = 1/2 (weight dkappa / (1 - kappa) = 2): -log p(x1) at the masked
    # positions 0 and 2, and 1 - p(x_t) = 1 - 0.6 at the clean position 1 (model rate away)
    want_gkl = torch.tensor(2.0 * (-math.log(0.5) - math.log(0.8) + 0.4) / 3)
    assert torch.isclose(mixture_path_loss(logits, ps, path, "gkl"), want_gkl)
    # uniform source: gkl is minimised at the true posterior (one position, x_t known)
    upath = MixtureDiscretePath(3, "uniform")
    x1 = torch.tensor([[0]] * 3 + [[1]] * 1)
    xt = torch.tensor([[0]] * 2 + [[2]] + [[0]])
    ups = bioflow.core.paths.DiscretePathSample(xt, None, torch.full((4,), 0.5), x1=x1, x0=xt)
    best = None
    for a in np.linspace(0.05, 0.9, 18):
        lg = torch.log(torch.tensor([[[a, (1 - a) * 0.5, (1 - a) * 0.5]]])).expand(4, 1, 3)
        val = mixture_path_loss(lg, ups, upath, "gkl").item()
        best = (val, a) if best is None or val < best[0] else best
    assert 0.5 < best[1] < 0.95
    with pytest.raises(ValueError, match="kind"):
        mixture_path_loss(logits, ps, path, "mse")


def test_jump_sample_checks():
    path = MixtureDiscretePath(4, "uniform")
    post = lambda t, x: torch.zeros(*x.shape, 4)  # noqa: E731
    with pytest.raises(ValueError, match="stratified"):
        jump_sample(post, path, path.source_sample(2, 3), sampler="stratified")
    with pytest.raises(ValueError, match="steps"):
        jump_sample(post, path, path.source_sample(2, 3), steps=0)
    with pytest.raises(ValueError, match="sampler"):
        jump_sample(post, path, path.source_sample(2, 3), sampler="tau-leap")


# --- the Markov + motif law ----------------------------------------------------------------
def test_markov_motif_log_prob_is_exact():
    law = MarkovMotif(6, motif="TAT", motif_prob=0.4)
    every = ["".join(s) for s in itertools.product("ACGT", repeat=6)]
    lp = law.log_prob(every)
    assert math.isclose(np.exp(lp).sum(), 1.0, rel_tol=1e-9)
    seqs, y = law.sample(40000, seed=0)
    assert abs(np.mean(y) - np.mean(["TAT" in s for s in every for _ in [0]] and y)) < 1e-9
    freq = {s: c / len(seqs) for s, c in zip(*np.unique(seqs, return_counts=True), strict=True)}
    top = sorted(freq, key=freq.get)[-5:]
    for s in top:  # the most frequent sequences have their exact probabilities
        assert abs(freq[s] - np.exp(law.log_prob([s]))[0]) < 0.004
    empirical = metrics.letter_frequencies(encode(seqs, "ACGT"), 4)
    assert np.abs(empirical - law.position_marginals()).max() < 0.01
    # letter indices score the same as strings
    tok = encode(seqs[:10], "ACGT")
    assert np.allclose(law.log_prob(tok), law.log_prob(seqs[:10]))


def test_markov_motif_defaults_match_the_task():
    law = MarkovMotif()
    seqs, y = markov_motif_sequences(4000, seed=3)
    assert len(seqs) == 4000 and all(len(s) == 32 for s in seqs)
    nll = metrics.negative_log_likelihood(seqs, law.log_prob)
    assert 30.3 < nll < 30.9  # the law's entropy, ~30.6 nats
    assert 0.26 < np.mean(y) < 0.33
    assert np.abs(law.position_marginals() - 0.25).max() < 0.05


def test_markov_motif_bad_input():
    with pytest.raises(ValueError, match="successors"):
        MarkovMotif(successors="AACG")
    with pytest.raises(ValueError, match="successor_prob"):
        MarkovMotif(successor_prob=1.0)
    with pytest.raises(ValueError, match="shorter"):
        MarkovMotif(4)
    with pytest.raises(ValueError, match="motif_prob"):
        MarkovMotif(motif_prob=1.5)
    law = MarkovMotif(8, motif="TA")
    with pytest.raises(ValueError, match="outside"):
        law.log_prob(["ACGTACGN"])
    with pytest.raises(ValueError, match="length 8"):
        law.log_prob(["ACG"])
    with pytest.raises(ValueError, match="no sequences"):
        law.log_prob([])


def test_sequence_metrics():
    assert metrics.uniqueness(["AC", "AC", "GT"]) == pytest.approx(2 / 3)
    assert metrics.uniqueness(np.array([[0, 1], [0, 1]])) == 0.5
    assert metrics.novelty(["AC", "GT"], ["AC"]) == 0.5
    assert metrics.novelty(np.array([[0, 1]]), np.array([[0, 1]])) == 0.0
    assert metrics.motif_share(["xxTATAATx", "TATAA"], "TATAAT") == 0.5
    d = metrics.kmer_distances([[0, 1, 2, 3]], [[0, 1, 2, 3]], 4, ks=(3, 4))
    assert d == {3: 0.0, 4: 0.0}
    assert metrics.diversity(["AAAA", "TTTT"]) == 1.0
    with pytest.raises(ValueError, match="empty"):
        metrics.negative_log_likelihood([], lambda s: np.zeros(0))
    with pytest.raises(ValueError, match="shape"):
        metrics.negative_log_likelihood(["A"], lambda s: np.zeros(2))
    with pytest.raises(ValueError, match="empty"):
        metrics.uniqueness([])
    with pytest.raises(ValueError, match="motif"):
        metrics.motif_share(["A"], "")


# --- the model and the tools ---------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return DiscreteFlow("ACGT", seq_len=10, hidden=16, n_layers=2).eval()


def _reward_g(onehot):  # the number of "G"s (letter 2)
    return onehot[..., 2].sum(-1)


def test_discrete_flow_samples_guidance_and_errors(tiny):
    for method in tiny.samplers:
        seqs = bioflow.tl.sample_sequences(tiny, 16, steps=5, method=method, seed=1)
        assert len(seqs) == 16 and all(len(s) == 10 and set(s) <= set("ACGT") for s in seqs)
    free = bioflow.tl.sample_sequences(tiny, 64, steps=10, seed=3)
    share = lambda s: np.mean([x.count("G") / len(x) for x in s])  # noqa: E731
    got = [share(free)]
    for gamma in (2.0, 6.0):
        guided = bioflow.tl.sample_sequences(
            tiny,
            64,
            steps=10,
            seed=3,
            guidance=_reward_g,
            guidance_scale=gamma,
            n_guidance_samples=4,
        )
        got.append(share(guided))
    # the tilt multiplies the odds of G by e^gamma at every position (linear reward): the
    # untrained model's p(G) ~ 0.05 becomes ~0.3 at gamma = 2 and ~0.95 at gamma = 6
    assert got[0] < 0.15 and got[1] > got[0] + 0.15 and got[2] > 0.8, got
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="guidance_scale"):
            tiny.sample_tokens(2, steps=2, guidance=_reward_g, guidance_scale=bad)
    with pytest.raises(ValueError, match="steps"):
        bioflow.tl.sample_sequences(tiny, 2, steps=0)
    with pytest.raises(ValueError, match="n must be"):
        tiny.sample_tokens(0)
    with pytest.raises(ValueError, match="method"):
        bioflow.tl.sample_sequences(tiny, 2, method="renoise")
    with pytest.raises(ValueError, match="n_guidance_samples"):
        tiny.sample_tokens(2, guidance=_reward_g, n_guidance_samples=0)
    clf = SequencePredictor("ACGT", n_outputs=2, hidden=8)
    out = bioflow.tl.sample_sequences(tiny, 3, steps=2, guidance=clf)
    assert len(out) == 3
    uni = DiscreteFlow("ACGT", seq_len=10, source="uniform", hidden=8, n_layers=1)
    assert uni.samplers == ("jump",)
    with pytest.raises(ValueError, match="method"):
        uni.sample_tokens(2, method="stratified")
    with pytest.raises(ValueError, match="source"):
        DiscreteFlow("ACGT", 10, source="gaussian")
    with pytest.raises(ValueError, match="loss"):
        DiscreteFlow("ACGT", 10, loss="mse")


def test_fit_methods_save_load_roundtrip(tmp_path):
    seqs, _ = markov_motif_sequences(64, length=10, motif="TATA", seed=0)
    for method in ("dfm-masked", "dfm-uniform"):
        model = bioflow.tl.fit_sequence_flow(
            seqs,
            method=method,
            max_steps=3,
            batch_size=16,
            model_kwargs=dict(hidden=16, n_layers=2),
            enable_progress_bar=False,
        )
        assert isinstance(model, DiscreteFlow)
        assert model.path.source == ("mask" if method == "dfm-masked" else "uniform")
        model.save(tmp_path / "m.pt")
        again = load_model(tmp_path / "m.pt")
        assert isinstance(again, DiscreteFlow) and again.path.source == model.path.source
        a = bioflow.tl.sample_sequences(model, 5, steps=4, seed=1)
        assert a == bioflow.tl.sample_sequences(again, 5, steps=4, seed=1)
    with pytest.raises(ValueError, match="method"):
        bioflow.tl.fit_sequence_flow(seqs, method="dfm")
    with pytest.raises(ValueError, match="objective"):
        bioflow.tl.fit_sequence_flow(seqs, method="dfm-masked", objective="score")
    with pytest.raises(ValueError):
        bioflow.tl.fit_sequence_flow([], max_steps=1)
    with pytest.raises(ValueError, match="model must be"):
        bioflow.tl.sample_sequences(SequencePredictor("ACGT"), 2)


def test_posterior_keeps_revealed_letters(tiny):
    x = torch.tensor([[4, 2, 4, 0, 1, 4, 4, 3, 4, 4]])
    p = torch.softmax(tiny.posterior_logits(torch.tensor([0.5]), x), -1)
    known = x != 4
    assert torch.equal(p[known].argmax(-1), x[known]) and (p[known].max(-1).values > 0.999).all()
    # and the masked positions keep the network's prediction
    assert torch.allclose(p[~known], torch.softmax(tiny(torch.tensor([0.5]), x), -1)[~known])
