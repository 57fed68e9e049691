"""The Gumbel-Softmax path and its ODE sampler: endpoints, exact velocity, exact posterior."""

import math

import numpy as np
import pytest
import torch

from bioflow.core.paths import GumbelSoftmaxPath
from bioflow.core.paths.simplex import sample_gumbel
from bioflow.core.solvers import gumbel_softmax_ode
from bioflow.metrics.sequence import marginal_kl


def _exact_posterior(path, log_pi):
    def post(t, x):
        return torch.softmax(path.posterior_logits(path.logits_from_x(x, t), t, log_pi), -1)

    return post


def test_law_at_t0_is_the_sampler_prior_for_every_letter():
    path = GumbelSoftmaxPath()
    K, n = 6, 3000
    g = sample_gumbel((n, 1, K), generator=torch.Generator().manual_seed(0))
    prior = torch.softmax(g / (path.beta * path.tau_max), -1)
    for k in range(K):
        x0 = path.sample(g, torch.full((n, 1), k), torch.zeros(n)).x_t
        assert torch.allclose(x0, prior, atol=1e-6)  # same noise, same point: no letter info
    # and prior_sample draws that law: mean of the largest coordinate agrees
    xs = path.prior_sample(n, 1, K, generator=torch.Generator().manual_seed(1))
    assert abs(xs.max(-1).values.mean() - prior.max(-1).values.mean()) < 3e-3
    assert path.rho(0.0, K).item() == 0.0


@pytest.mark.parametrize("K", [4, 20])
def test_path_reaches_the_vertex_at_t1(K):
    path = GumbelSoftmaxPath()
    n = 20000
    gen = torch.Generator().manual_seed(K)
    k = torch.randint(0, K, (n, 1), generator=gen)
    err = path.vertex_error(k, K, sample_gumbel((n, 1, K), generator=gen))
    # stated epsilon: 1 - x_1[k] <= 1e-3 with probability >= 0.999 (theory: < 4e-4 misses)
    assert (err <= 1e-3).float().mean().item() >= 0.999
    assert err.median().item() < 1e-12
    # the old schedule (tau(1) = 0.5, no signal ramp) stayed inside: largest coordinate ~0.7
    rho1 = path.rho(1.0, K).item()
    assert abs(rho1 - math.log1p(K * (1 - 1e-4) / 1e-4)) < 1e-3


def test_argmax_of_x_t_follows_the_uniform_mixture_path():
    path = GumbelSoftmaxPath(beta=3.0)
    K, n = 5, 40000
    gen = torch.Generator().manual_seed(3)
    k = torch.zeros(n, 1, dtype=torch.long)
    for t in (0.0, 0.3, 0.7):
        x = path.sample(None, k, torch.tensor(t), K=K, generator=gen).x_t
        hit = (x.argmax(-1) == 0).float().mean().item()
        kappa = (1 - path.delta) * t
        assert abs(hit - (kappa + (1 - kappa) / K)) < 0.01


def test_conditional_velocity_is_the_time_derivative_of_the_path():
    path = GumbelSoftmaxPath()
    K, n = 20, 64
    gen = torch.Generator().manual_seed(4)
    k = torch.randint(0, K, (n, 3), generator=gen)
    g = sample_gumbel((n, 3, K), generator=gen, dtype=torch.float64)
    t = torch.rand(n, generator=gen, dtype=torch.float64) * 0.9 + 0.05
    h = 1e-5
    fd = (path.sample(g, k, t + h).x_t - path.sample(g, k, t - h).x_t) / (2 * h)
    ps = path.sample(g, k, t)
    rel = (ps.u_t - fd).norm() / fd.norm()
    assert rel < 1e-5
    # the same from x alone (what conditional_velocity gets)
    assert torch.allclose(path.conditional_velocity(ps.x_t, k, t), ps.u_t, atol=1e-8, rtol=1e-5)
    assert torch.allclose(ps.u_t.sum(-1), torch.zeros(n, 3, dtype=torch.float64), atol=1e-9)
    # the paper's printed velocity (lam / tau) x_k (e_k - x) is far from it
    e = torch.nn.functional.one_hot(k, K).double()
    paper = (
        (path.lam / path.tau(t)).reshape(-1, 1, 1) * ps.x_t.gather(-1, k[..., None]) * (e - ps.x_t)
    )
    assert (paper - fd).norm() / fd.norm() > 0.3


def test_marginal_velocity_is_the_posterior_mean_of_the_conditional_one():
    path = GumbelSoftmaxPath()
    K = 4
    gen = torch.Generator().manual_seed(5)
    x = torch.softmax(torch.randn(3, 2, K, generator=gen), -1)
    p = torch.softmax(torch.randn(3, 2, K, generator=gen), -1)
    t = torch.rand(3, generator=gen)
    mix = sum(
        p[..., j : j + 1] * path.conditional_velocity(x, torch.full((3, 2), j), t) for j in range(K)
    )
    assert torch.allclose(path.model_velocity(x, p, t), mix, atol=1e-5)


def test_exact_posterior_matches_numerical_bayes():
    # P(k | x) by integrating the Gumbel likelihood of z over the shift that x loses
    path = GumbelSoftmaxPath()
    K, t = 3, torch.tensor(0.4, dtype=torch.float64)
    pi = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    z = torch.tensor([[[0.3, -1.2, 0.8]]], dtype=torch.float64)
    got = torch.softmax(path.posterior_logits(z, t, pi.log()), -1).squeeze()
    rho = path.rho(t, K)
    a = torch.linspace(-30, 30, 200001, dtype=torch.float64)[:, None]

    def log_gumbel(y):
        return -y - torch.exp(-y)

    want = []
    for k in range(K):
        y = z.reshape(1, K) + a - rho * torch.nn.functional.one_hot(torch.tensor(k), K)
        want.append(pi[k] * torch.trapezoid(torch.exp(log_gumbel(y).sum(-1)), a.squeeze()))
    want = torch.stack(want)
    assert torch.allclose(got, want / want.sum(), atol=1e-6)


def test_ode_with_exact_posterior_carries_the_path_marginals():
    path = GumbelSoftmaxPath()
    K, L, n = 4, 3, 20000
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(K), size=L)
    log_pi = torch.tensor(np.log(probs), dtype=torch.float32)
    gen = torch.Generator().manual_seed(6)
    x0 = path.prior_sample(n, L, K, generator=gen)
    xs = gumbel_softmax_ode(_exact_posterior(path, log_pi), path, x0, steps=40, return_path=True)
    assert xs.shape == (41, n, L, K)
    # at t = 0.5 the ODE state has the path's law (compare the mean point per position)
    k = torch.stack([torch.multinomial(torch.tensor(p), n, True, generator=gen) for p in probs], 1)
    ref = path.sample(None, k, torch.tensor(0.5), K=K, generator=gen).x_t
    assert (xs[20].mean(0) - ref.mean(0)).abs().max() < 0.01
    # at t = 1 the letters follow the target law (plug-in floor (K - 1) / (2 n) ~ 1e-4)
    assert marginal_kl(xs[-1].argmax(-1).numpy(), probs) < 2e-3
    assert xs[-1].max(-1).values.median() > 0.999
    # KL falls to the floor as the number of steps grows
    kls = [
        marginal_kl(
            gumbel_softmax_ode(_exact_posterior(path, log_pi), path, x0, steps=s)
            .argmax(-1)
            .numpy(),
            probs,
        )
        for s in (1, 40)
    ]
    assert kls[0] > 5 * kls[1]


def test_ode_rejects_bad_input():
    path = GumbelSoftmaxPath()
    x0 = path.prior_sample(2, 3, 4)
    with pytest.raises(ValueError, match="steps"):
        gumbel_softmax_ode(lambda t, x: x, path, x0, steps=0)
    with pytest.raises(ValueError, match="x0"):
        gumbel_softmax_ode(lambda t, x: x, path, x0[0], steps=3)
    with pytest.raises(ValueError, match="delta"):
        GumbelSoftmaxPath(delta=1.0)
    with pytest.raises(ValueError, match="x0"):
        path.sample(torch.zeros(2, 3, 5), torch.zeros(2, 3, dtype=torch.long), K=4)
    with pytest.raises(ValueError, match="K"):
        path.sample(None, torch.zeros(2, 3, dtype=torch.long))


def test_score_objective_is_minimised_by_the_exact_posterior():
    # the "score" objective regresses x * grad log p_t(x | k) with sum_k p_k (same for k);
    # its expected loss is smallest at p = P(k | x_t), the law the ODE sampler needs
    path = GumbelSoftmaxPath()
    K, n = 4, 20000
    gen = torch.Generator().manual_seed(7)
    pi = torch.tensor([0.6, 0.25, 0.1, 0.05])
    k = torch.multinomial(pi, n, True, generator=gen)[:, None]
    ps = path.sample(None, k, torch.rand(n, generator=gen) * 0.8 + 0.1, K=K, generator=gen)
    target = path.conditional_score(ps.x_t, k, ps.t)
    exact = torch.softmax(
        path.posterior_logits(path.logits_from_x(ps.x_t, ps.t), ps.t, pi.log()), -1
    )

    def loss(p):
        pred = path.score_from_probs(ps.x_t, p, ps.t)
        return (pred - target).pow(2).sum(-1).mean().item()

    best = loss(exact)
    assert best < loss(pi.expand(n, 1, K))  # ignores x_t
    assert best < loss(torch.softmax(exact.log() + 0.5 * torch.randn(n, 1, K, generator=gen), -1))
    assert best < loss(torch.full((n, 1, K), 1.0 / K))  # uniform


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["flow", "score"])
def test_trained_gsfm_reaches_the_paper_toy_kl(objective):
    # Dirichlet-FM toy at K = 20: the paper reports KL 0.029
    from bioflow.data.sequences import encode
    from bioflow.datasets import categorical_toy
    from bioflow.models import SequenceFlow

    K, L, n = 20, 4, 10000
    seqs, probs, alphabet = categorical_toy(K, n=20000, seed=0)
    tokens = torch.as_tensor(encode(seqs, alphabet), dtype=torch.long)
    torch.manual_seed(0)
    model = SequenceFlow(alphabet, L, objective=objective, hidden=64, n_layers=2)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 300)
    for _ in range(300):
        loss = model.compute_loss({"tokens": tokens[torch.randint(0, len(tokens), (512,))]}).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    with torch.no_grad():
        x0 = model.path.prior_sample(n, L, K, generator=torch.Generator().manual_seed(1))
        post = lambda t, x: torch.softmax(model(t.expand(n), x), -1)  # noqa: E731
        x1 = gumbel_softmax_ode(post, model.path, x0, steps=50)
    assert marginal_kl(x1.argmax(-1).numpy(), probs) < 0.029
