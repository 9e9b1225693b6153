"""HGR's role-aware graph encoder: adjacency, node init, (attention) GCN layers, against literals and NumPy."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.zoo_batches import random_text_batch
from training.models.common.graph import RoleGraphEncoder, role_graph_adjacency

pytestmark = pytest.mark.usefixtures("one_thread")
DIM = 8


def _inputs(batch=3, seed=0):
    raw = random_text_batch(batch=batch, words=7, verbs=2, nouns=3, word_dim=DIM, seed=seed)
    t = {k: torch.from_numpy(v) for k, v in raw.items()}
    torch.manual_seed(seed)
    states = torch.randn(batch, 7, DIM) * t["word_mask"].unsqueeze(-1)
    event = torch.randn(batch, DIM)
    return states, event, t


def _run(encoder, states, event, t):
    return encoder(states, t["word_mask"], event, t["verb_spans"], t["verb_mask"], t["noun_spans"], t["noun_mask"],
                   t["noun_roles"], t["noun_verb_edges"])


def test_adjacency_literal():
    verb_mask = torch.tensor([[1.0, 1.0, 0.0]])
    noun_mask = torch.tensor([[1.0, 1.0, 0.0]])
    # verb 0 takes nouns 0 and 1; verb 1 takes noun 1; the padded verb 2 / noun 2 edges must be ignored.
    edges = torch.tensor([[[1.0, 1.0, 0.0], [0.0, 1.0, 1.0], [1.0, 0.0, 0.0]]])
    got = role_graph_adjacency(verb_mask, noun_mask, edges)[0].numpy()
    h, t = 1 / 2, 1 / 3
    expected = np.array([
        # root v0 v1 v2 n0 n1 n2
        [0, 0, 0, 0, 0, 0, 0],     # root: no incoming edge
        [t, 0, 0, 0, t, t, 0],     # verb 0 <- root, n0, n1
        [h, 0, 0, 0, 0, h, 0],     # verb 1 <- root, n1
        [0, 0, 0, 0, 0, 0, 0],     # padded verb
        [0, 1, 0, 0, 0, 0, 0],     # noun 0 <- verb 0
        [0, h, h, 0, 0, 0, 0],     # noun 1 <- verb 0, verb 1
        [0, 0, 0, 0, 0, 0, 0],     # padded noun
    ])
    np.testing.assert_allclose(got, expected, atol=1e-7)


def _layer_norm(x, weight, bias, eps=1e-5):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def test_adjacency_root_gathers_from_every_real_verb_and_noun():
    verb_mask, noun_mask = torch.tensor([[1.0, 1.0, 0.0]]), torch.tensor([[1.0, 1.0, 0.0]])
    edges = torch.tensor([[[1.0, 1.0, 0.0], [0.0, 1.0, 1.0], [1.0, 0.0, 0.0]]])
    got = role_graph_adjacency(verb_mask, noun_mask, edges, root_gathers=True)[0].numpy()
    np.testing.assert_allclose(got[0], [0, 1 / 4, 1 / 4, 0, 1 / 4, 1 / 4, 0], atol=1e-7)  # padding left out
    np.testing.assert_allclose(got[1:], role_graph_adjacency(verb_mask, noun_mask, edges)[0].numpy()[1:], atol=1e-7)


def _numpy_reference(encoder, states, event, t, attention):
    """The encoder written again in NumPy with explicit loops over items and nodes."""
    p = {k: v.detach().numpy().astype(np.float64) for k, v in encoder.state_dict().items()}
    states, event = states.numpy().astype(np.float64), event.numpy().astype(np.float64)
    t = {k: v.numpy() for k, v in t.items()}
    out = []
    for b in range(states.shape[0]):
        V, N = t["verb_mask"].shape[1], t["noun_mask"].shape[1]
        nodes = [event[b]]
        for kind, spans, roles in (("verb", t["verb_spans"][b], [0] * V), ("noun", t["noun_spans"][b], t["noun_roles"][b])):
            for k in range(spans.shape[0]):
                words = np.nonzero(spans[k] * t["word_mask"][b])[0]
                vec = states[b, words].max(axis=0) if len(words) else np.zeros(DIM)
                nodes.append(vec * p["role_embedding.weight"][roles[k]])
        h = np.stack(nodes)
        neighbours = {0: [1 + v for v in range(V) if t["verb_mask"][b, v]] + [1 + V + n for n in range(N) if t["noun_mask"][b, n]]
                      if encoder.event_from_graph else []}
        for v in range(V):
            neighbours[1 + v] = ([0] if t["verb_mask"][b, v] else []) + [
                1 + V + n for n in range(N) if t["noun_verb_edges"][b, v, n] and t["verb_mask"][b, v] and t["noun_mask"][b, n]]
        for n in range(N):
            neighbours[1 + V + n] = [1 + v for v in range(V)
                                     if t["noun_verb_edges"][b, v, n] and t["verb_mask"][b, v] and t["noun_mask"][b, n]]
        for layer in range(len(encoder.layers)):
            q = f"layers.{layer}."
            new = []
            for i in range(h.shape[0]):
                ctx = np.zeros(DIM)
                js = neighbours[i]
                if js:
                    if attention:
                        query = p[q + "query.weight"] @ h[i] + p[q + "query.bias"]
                        logits = np.array([query @ (p[q + "key.weight"] @ h[j]) for j in js]) / np.sqrt(DIM)
                        w = np.exp(logits - logits.max())
                        w = w / w.sum()
                    else:
                        w = np.full(len(js), 1.0 / len(js))
                    ctx = sum(wj * h[j] for wj, j in zip(w, js))
                new.append(_layer_norm(h[i] + p[q + "context.weight"] @ ctx, p[q + "norm.weight"], p[q + "norm.bias"]))
            h = np.stack(new)
        verbs = h[1:1 + V] * t["verb_mask"][b][:, None]
        nouns = h[1 + V:] * t["noun_mask"][b][:, None]
        out.append((h[0], verbs, nouns))
    return [np.stack(x) for x in zip(*out)]


@pytest.mark.parametrize("attention", [True, False])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("event_from_graph", [False, True])
def test_encoder_matches_numpy_reference(attention, num_layers, event_from_graph):
    torch.manual_seed(1)
    encoder = RoleGraphEncoder(DIM, num_layers=num_layers, attention=attention, event_from_graph=event_from_graph).eval()
    with torch.no_grad():  # non-trivial LayerNorm affine parameters
        for layer in encoder.layers:
            layer.norm.weight.uniform_(0.5, 1.5)
            layer.norm.bias.uniform_(-0.5, 0.5)
    states, event, t = _inputs()
    with torch.no_grad():
        got = _run(encoder, states, event, t)
    for g, e in zip(got, _numpy_reference(encoder, states, event, t, attention)):
        np.testing.assert_allclose(g.numpy(), e, atol=1e-5)


def test_root_output_is_layernorm_of_root():
    encoder = RoleGraphEncoder(DIM, num_layers=1).eval()
    states, event, t = _inputs()
    with torch.no_grad():
        root, _, _ = _run(encoder, states, event, t)
    e = event.numpy()
    expected = (e - e.mean(-1, keepdims=True)) / np.sqrt(e.var(-1, keepdims=True) + 1e-5)  # LayerNorm at init: w=1, b=0
    np.testing.assert_allclose(root.numpy(), expected, atol=1e-5)


@pytest.mark.parametrize("switch", [{"attention": False}, {"use_roles": False}])
def test_each_ablation_changes_the_nodes(switch):
    states, event, t = _inputs()
    torch.manual_seed(0)
    full = RoleGraphEncoder(DIM).eval()
    torch.manual_seed(0)
    ablated = RoleGraphEncoder(DIM, **switch).eval()
    with torch.no_grad():
        _, v_full, n_full = _run(full, states, event, t)
        _, v_abl, n_abl = _run(ablated, states, event, t)
    # Verbs have several neighbours (root + nouns), so both switches must move them; a noun of one verb
    # attends to it alone, so only the role switch moves the nouns as well.
    assert not torch.allclose(v_full, v_abl, atol=1e-3)
    if "use_roles" in switch:
        assert not torch.allclose(n_full, n_abl, atol=1e-3)


def test_event_from_graph_lets_the_event_see_the_roles():
    """Switched roles (the same words, agent and patient swapped) move the event vector only with the option."""
    states, event, t = _inputs()
    switched = {**t, "noun_roles": t["noun_roles"].flip(1)}
    assert not torch.equal(switched["noun_roles"] * t["noun_mask"], t["noun_roles"] * t["noun_mask"])
    for option, moves in ((False, False), (True, True)):
        torch.manual_seed(0)
        encoder = RoleGraphEncoder(DIM, num_layers=1, event_from_graph=option).eval()
        with torch.no_grad():
            root, _, _ = _run(encoder, states, event, t)
            root_switched, _, _ = _run(encoder, states, event, switched)
        assert (not torch.allclose(root, root_switched, atol=1e-4)) == moves


@pytest.mark.parametrize("event_from_graph", [False, True])
def test_item_alone_equals_item_in_padded_batch(event_from_graph):
    torch.manual_seed(0)
    encoder = RoleGraphEncoder(DIM, num_layers=2, event_from_graph=event_from_graph).eval()
    states, event, t = _inputs(batch=4)
    with torch.no_grad():
        all_out = _run(encoder, states, event, t)
        for b in range(4):
            w = int(t["word_mask"][b].sum())
            v = int(t["verb_mask"][b].sum())
            n = int(t["noun_mask"][b].sum())
            one = {"word_mask": t["word_mask"][b:b + 1, :w], "verb_spans": t["verb_spans"][b:b + 1, :v, :w],
                   "verb_mask": t["verb_mask"][b:b + 1, :v], "noun_spans": t["noun_spans"][b:b + 1, :n, :w],
                   "noun_mask": t["noun_mask"][b:b + 1, :n], "noun_roles": t["noun_roles"][b:b + 1, :n],
                   "noun_verb_edges": t["noun_verb_edges"][b:b + 1, :v, :n]}
            root, verbs, nouns = _run(encoder, states[b:b + 1, :w], event[b:b + 1], one)
            assert torch.allclose(root[0], all_out[0][b], atol=1e-5)
            assert torch.allclose(verbs[0], all_out[1][b, :v], atol=1e-5)
            assert torch.allclose(nouns[0], all_out[2][b, :n], atol=1e-5)
            assert all_out[1][b, v:].abs().sum() == 0 and all_out[2][b, n:].abs().sum() == 0
