"""HGR's role-aware graph text encoder (Chen et al., CVPR 2020, Sec. 3.1), shared by HGR, HANet and MCSAN.

Nodes are the sentence (event / root), its verbs (actions) and its noun phrases (entities). A verb or noun
node starts as the max-pool of the word states in its span, multiplied element-wise by a learned embedding
of its semantic role (verbs have role ``V``; nouns their role to the verb, ``training.text.roles``). Edges go
root -> verb and verb <-> noun; the adjacency is row-normalised (row i = the nodes that node i gathers from).
Each GCN layer is ``h' = LayerNorm(h + W_t ctx)`` where ``ctx`` is the attention-weighted (or, without graph
attention, the row-normalised) sum of the neighbours. The root has no incoming edge, so its output is
``LayerNorm(root)``. Node order inside the graph: ``[root, verbs (V), nouns (N)]``.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from training.models.common.functional import masked_softmax, span_max_pool
from training.models.common.legacy import InertLegacyKey
from training.models.config import WORD_ROLE_INPUTS
from training.text.roles import NUM_ROLES, ROLE_INDEX

VERB_ROLE = ROLE_INDEX["V"]


def verb_roles(verb_mask: torch.Tensor) -> torch.Tensor:
    """The role index of every verb node, ``V``: [B, V] -> [B, V] int64."""
    return torch.full_like(verb_mask, VERB_ROLE, dtype=torch.long)


class WordRoles(nn.Module):
    """HGR's role awareness moved from the graph's nodes to the words, for text towers without a role graph.

    HGR multiplies a node's features element-wise by a learned embedding of its role. Here each word inside a
    verb or noun-phrase span is multiplied by the embedding of that span's role (``V`` for verbs, the noun's role
    to its verb otherwise; the mean of the embeddings when a word lies in several spans); a word in no span is
    left as it is. So "a dog chases a man" and "a man chases a dog" differ word by word once the tower reads them.
    The embedding is initialised as HGR's (``nn.Embedding``'s default). Padded words stay zero.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.role_embedding = nn.Embedding(NUM_ROLES, dim)

    def forward(self, words: torch.Tensor, verb_spans: torch.Tensor, verb_mask: torch.Tensor,
                noun_spans: torch.Tensor, noun_mask: torch.Tensor, noun_roles: torch.Tensor) -> torch.Tensor:
        """words [B, W, D], spans [B, V | N, W], masks [B, V | N], noun_roles [B, N] -> [B, W, D]."""
        spans = torch.cat([verb_spans * verb_mask.unsqueeze(-1), noun_spans * noun_mask.unsqueeze(-1)], dim=1)
        roles = self.role_embedding(torch.cat([verb_roles(verb_mask), noun_roles], dim=1)).to(words.dtype)
        spans = spans.to(words.dtype)                                            # [B, K, W]
        count = spans.sum(dim=1).unsqueeze(-1)                                   # [B, W, 1]
        factor = spans.transpose(1, 2) @ roles / count.clamp(min=1) + (count == 0).to(words.dtype)
        return words * factor

    def from_inputs(self, words: torch.Tensor, inputs) -> torch.Tensor:
        """``forward`` on a text tower's inputs (:data:`training.models.config.WORD_ROLE_INPUTS`)."""
        return self(words, *(inputs[name] for name in WORD_ROLE_INPUTS))


def role_graph_adjacency(verb_mask: torch.Tensor, noun_mask: torch.Tensor, noun_verb_edges: torch.Tensor,
                         root_gathers: bool = False) -> torch.Tensor:
    """Row-normalised adjacency ``[B, 1+V+N, 1+V+N]``: entry (i, j) > 0 when node i gathers from node j.

    verb_mask [B, V], noun_mask [B, N], noun_verb_edges [B, V, N] (1 where noun n is an argument of verb v).
    A verb gathers from the root and from its nouns; a noun from its verbs; the root from nobody, or with
    ``root_gathers`` from every verb and noun. Padded verbs and nouns get no edges, so they never reach a real node.
    """
    batch, num_verbs, num_nouns = noun_verb_edges.shape
    edges = noun_verb_edges * verb_mask.unsqueeze(2) * noun_mask.unsqueeze(1)               # [B, V, N]
    zeros = noun_verb_edges.new_zeros
    root_row = zeros(batch, 1, 1 + num_verbs + num_nouns)
    if root_gathers:
        root_row = torch.cat([zeros(batch, 1, 1), verb_mask.unsqueeze(1), noun_mask.unsqueeze(1)], dim=2).to(root_row)
    verb_rows = torch.cat([verb_mask.unsqueeze(2), zeros(batch, num_verbs, num_verbs), edges], dim=2)
    noun_rows = torch.cat([zeros(batch, num_nouns, 1), edges.transpose(1, 2), zeros(batch, num_nouns, num_nouns)], dim=2)
    adjacency = torch.cat([root_row, verb_rows, noun_rows], dim=1)
    degree = adjacency.sum(dim=2, keepdim=True)
    return adjacency / torch.where(degree > 0, degree, torch.ones_like(degree))


class GraphLayer(nn.Module):
    """One (attention) GCN layer with residual and LayerNorm (HGR Eq. 7-9).

    The key map has no bias: ``q . b_k`` is the same for every key of a query, so the softmax over the
    neighbours cancels it. The reference code (cshizhe/hgr_v2t and Roc-Ng/HANet, ``edge_attn_key`` in
    encoders/graph.py) has that inert bias.
    """

    legacy_inert_keys = (InertLegacyKey("key.bias"),)

    def __init__(self, dim: int, attention: bool = True, dropout: float = 0.0, attention_dim: int = 0):
        super().__init__()
        # W_t has no bias: a node without neighbours then keeps exactly LayerNorm(h).
        self.context = nn.Linear(dim, dim, bias=False)
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        width = attention_dim or dim  # the query / key space; the reference code uses dim / 2
        self.query = nn.Linear(dim, width) if attention else None
        self.key = nn.Linear(dim, width, bias=False) if attention else None
        self.scale = 1.0 / math.sqrt(width)

    def forward(self, nodes: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        """nodes [B, K, D], adjacency [B, K, K] (row-normalised) -> [B, K, D]."""
        if self.query is None:
            weights = adjacency  # "w/o graph attention": mean over the neighbours
        else:
            logits = self.query(nodes) @ self.key(nodes).transpose(1, 2) * self.scale
            # Softmax over each node's neighbours; a node with none (the root, padding) gathers nothing.
            weights = masked_softmax(logits, adjacency, dim=2) * (adjacency > 0).to(nodes.dtype)
        return self.norm(nodes + self.dropout(self.context(weights @ nodes)))


class RoleGraphEncoder(nn.Module):
    """Word states + role graph -> (event [B, D], verb nodes [B, V, D], noun nodes [B, N, D]).

    ``attention=False`` is HGR's "w/o graph attention" ablation (plain GCN), ``use_roles=False`` its
    "w/o role awareness" (no role embedding). The reference code uses 1 layer, the paper 2.
    ``event_from_graph`` (beyond the papers) lets the event node gather from the role-aware verb and noun nodes,
    so that the event vector, pooled from the BiGRU alone in the papers, sees who does what.
    Padded verb / noun outputs are zero.
    """

    def __init__(self, dim: int, num_layers: int = 1, attention: bool = True, use_roles: bool = True,
                 dropout: float = 0.0, attention_dim: int = 0, event_from_graph: bool = False):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.event_from_graph = event_from_graph
        self.role_embedding = nn.Embedding(NUM_ROLES, dim) if use_roles else None
        self.layers = nn.ModuleList([GraphLayer(dim, attention, dropout, attention_dim) for _ in range(num_layers)])

    def forward(self, word_states: torch.Tensor, word_mask: torch.Tensor, event: torch.Tensor,
                verb_spans: torch.Tensor, verb_mask: torch.Tensor, noun_spans: torch.Tensor, noun_mask: torch.Tensor,
                noun_roles: torch.Tensor, noun_verb_edges: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        in_sentence = word_mask.unsqueeze(1)
        verbs = span_max_pool(word_states, verb_spans * in_sentence)
        nouns = span_max_pool(word_states, noun_spans * in_sentence)
        if self.role_embedding is not None:
            verbs = verbs * self.role_embedding(verb_roles(verb_mask))
            nouns = nouns * self.role_embedding(noun_roles)
        num_verbs = verbs.shape[1]
        nodes = torch.cat([event.unsqueeze(1), verbs, nouns], dim=1)
        adjacency = role_graph_adjacency(verb_mask, noun_mask, noun_verb_edges, self.event_from_graph)
        for layer in self.layers:
            nodes = layer(nodes, adjacency)
        out_verbs = nodes[:, 1:1 + num_verbs] * verb_mask.unsqueeze(-1)
        out_nouns = nodes[:, 1 + num_verbs:] * noun_mask.unsqueeze(-1)
        return nodes[:, 0], out_verbs, out_nouns
