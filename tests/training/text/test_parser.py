"""Caption parsing: roles on hand-labelled captions, HGR format, concepts, triplets, bad input, no PyTorch."""
from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from common.errors import DataError
from training.text import cli
from training.text.parser import (
    MISSING,
    ParsedCaption,
    evaluate_roles,
    load_labelled,
    load_nlp,
    parse_caption,
    parse_captions,
    span_head,
    tokenize_captions,
)
from training.data.msrvtt_captions import load_msrvtt_captions
from training.text.rolegraph import RoleGraph, align_to_tokens, load_sent2rolegraph, save_sent2rolegraph
from training.text.roles import ROLES

LABELLED = Path(__file__).with_name("labelled_captions.json")
ROOT_DIR = Path(__file__).resolve().parents[3]


def edges_by_word(parsed: ParsedCaption) -> set[tuple[str, str, str]]:
    """(argument words, role, verb words) for each edge, words joined by spaces."""
    nodes = parsed.graph.nodes
    return {(" ".join(nodes[a].words), role, " ".join(nodes[v].words)) for v, a, role in parsed.graph.edges}


def test_role_accuracy_on_labelled_captions():
    items = load_labelled(LABELLED)
    assert len(items) >= 30
    heldout = [i for i in items if i.split == "heldout"]
    dev = [i for i in items if i.split == "dev"]
    assert len(heldout) >= 30 and len(dev) >= 30
    for name, subset, floor in (("dev", dev, 0.95), ("heldout", heldout, 0.90), ("all", items, 0.93)):
        report = evaluate_roles(subset)
        print(f"{name}: {report.summary()}")
        assert report.accuracy >= floor, (name, report.missed)
        assert report.precision >= floor, (name, report.spurious)


def test_passive_voice_agent_is_arg0():
    parsed = parse_caption("a cat is chased by a dog")
    assert edges_by_word(parsed) == {("cat", "ARG1", "chased"), ("dog", "ARG0", "chased")}
    assert parsed.triplets == (("dog", "chase", "cat"),)
    active = parse_caption("a dog is chasing a cat")
    assert active.triplets == parsed.triplets


def test_several_verbs_share_their_subject_node():
    parsed = parse_caption("a man picks up a ball and throws it to his friend")
    graph = parsed.graph
    assert [graph.nodes[v].words for v in graph.verb_ids] == [("picks", "up"), ("throws",)]
    man = [k for k, n in graph.nodes.items() if n.words == ("man",)]
    assert len(man) == 1  # one node, an ARG0 edge from each verb
    assert sorted((v, r) for v, a, r in graph.edges if a == man[0]) == sorted((v, "ARG0") for v in graph.verb_ids)
    assert ("friend", "ARG2", "throws") in edges_by_word(parsed)
    assert parsed.verbs == ("pick", "throw")
    assert parsed.triplets == (("man", "pick", "ball"), ("man", "throw", "it"))


@pytest.mark.parametrize("caption, expected", [
    ("a man is using a knife to cut bread", {("man", "ARG0", "cut"), ("bread", "ARG1", "cut")}),
    ("a woman teaches a boy to swim", {("boy", "ARG0", "swim")}),
    ("a chef who is wearing a white hat prepares a salad", {("chef", "ARG0", "wearing"), ("chef", "ARG0", "prepares")}),
    ("a car that was hit by a truck is burning", {("car", "ARG1", "hit"), ("truck", "ARG0", "hit"),
                                                   ("car", "ARG1", "burning")}),
    ("a girl digging in the sand", {("girl", "ARG0", "digging"), ("sand", "ARGM-LOC", "digging")}),
])
def test_clauses_without_their_own_subject(caption, expected):
    assert expected <= edges_by_word(parse_caption(caption))


def test_scene_phrase_is_location_of_the_verb():
    parsed = parse_caption("a dog is chasing a cat on the grass")
    assert edges_by_word(parsed) == {("dog", "ARG0", "chasing"), ("cat", "ARG1", "chasing"),
                                     ("grass", "ARGM-LOC", "chasing")}
    parsed = parse_caption("a woman walks into a room while talking to her friends")
    assert edges_by_word(parsed) == {("woman", "ARG0", "walks"), ("room", "ARGM-DIR", "walks"),
                                     ("woman", "ARG0", "talking"),  # the subjectless clause's subject
                                     ("friends", "ARG2", "talking")}
    parsed = parse_caption("people are swimming in the pool during the summer")
    assert edges_by_word(parsed) >= {("pool", "ARGM-LOC", "swimming"), ("summer", "ARGM-TMP", "swimming")}


def test_spans_are_phrase_words_without_determiners_and_roles_are_hgr_roles():
    parsed = parse_caption("a police officer drives his white car onto a grassy field")
    words = {n.words for k, n in parsed.graph.nodes.items() if k != "ROOT"}
    assert {("police", "officer"), ("white", "car"), ("grassy", "field"), ("drives",)} == words
    for node in parsed.graph.nodes.values():
        assert node.words == tuple(parsed.tokens[i] for i in node.spans)
    assert all(role in ROLES for _, _, role in parsed.graph.edges)
    root = parsed.graph.nodes["ROOT"]
    assert root.spans == tuple(range(len(parsed.tokens))) and root.role == "ROOT"


def test_concepts_are_lemmatised_and_tokens_lower_cased():
    parsed = parse_caption("Two Men were  running across the Fields with their Dogs")
    assert parsed.tokens[:4] == ("two", "men", "were", "running")
    assert parsed.verbs == ("run",)
    assert parsed.nouns == ("man", "field", "dog")
    assert parsed.lemmas[:4] == ("two", "man", "be", "run")
    lower = "two men were running across the fields with their dogs"
    assert dataclasses.replace(parsed, text=lower) == parse_caption(lower)  # case does not change the parse


def test_triplet_placeholder_for_a_missing_object_and_verbless_caption():
    assert parse_caption("a woman is dancing").triplets == (("woman", "dance", MISSING),)
    assert parse_caption("water is boiling in a pot").triplets == ((MISSING, "boil", "water"),)
    verbless = parse_caption("a cartoon with violence")
    assert verbless.graph.verb_ids == () and verbless.graph.edges == ()
    assert [n.role for n in verbless.graph.nodes.values()] == ["ROOT", "NOUN", "NOUN"]
    assert verbless.verbs == () and verbless.triplets == ()


def test_json_round_trip():
    parsed = parse_captions(["a man is playing a guitar with a band in a live concert", "sports clips"])
    for item in parsed:
        again = ParsedCaption.from_json(json.loads(json.dumps(item.to_json())))
        assert again == item
    with pytest.raises(DataError, match="expected keys"):
        ParsedCaption.from_json({"text": "x"})


HGR_EXAMPLE = (  # the shape of HGR's sent2rolegraph.augment.json: full SRL spans, raw PropBank labels
    "a egg has been broken and dropped into the cup",
    [{"ROOT": {"role": "ROOT", "spans": list(range(10)),
               "words": "a egg has been broken and dropped into the cup".split()},
      "1": {"role": "V", "spans": [4], "words": ["broken"]},
      "2": {"role": "ARG1", "spans": [0, 1], "words": ["a", "egg"]},
      "3": {"role": "V", "spans": [6], "words": ["dropped"]},
      "4": {"role": "ARG4", "spans": [7, 8, 9], "words": ["into", "the", "cup"]}},
     [["1", "2", "ARG1"], ["3", "2", "ARG1"], ["3", "4", "ARG4"]]],
)


def test_hgr_sent2rolegraph_round_trip_and_use(tmp_path):
    sentence, value = HGR_EXAMPLE
    path = tmp_path / "sent2rolegraph.augment.json"
    path.write_text(json.dumps({sentence: value}))
    graphs = load_sent2rolegraph(path)
    assert graphs[sentence].to_hgr() == value
    ours = parse_caption("a dog is chasing a cat on the grass").graph
    save_sent2rolegraph(tmp_path / "ours.json", {"a dog is chasing a cat on the grass": ours})
    assert load_sent2rolegraph(tmp_path / "ours.json")["a dog is chasing a cat on the grass"] == ours

    parsed = parse_captions([sentence, "a dog runs"], rolegraphs=graphs)
    assert parsed[0].graph == graphs[sentence]  # the user's graph, not ours
    assert parsed[0].verbs == ("break", "drop")
    assert parsed[0].triplets == ((MISSING, "break", "egg"), (MISSING, "drop", "egg"))
    doc = load_nlp()(sentence)
    assert span_head(doc, graphs[sentence].nodes["4"].spans) == 9  # "into the cup" -> cup
    assert parsed[1].graph.verb_ids  # not in the file: our parser
    with pytest.raises(DataError, match="not in the given role graphs"):
        parse_captions(["a dog runs"], rolegraphs=graphs, missing="error")


def test_user_graph_is_reindexed_onto_our_words():
    # the user's tokenizer kept "doesn't" whole; spaCy splits it into "does" "n't"
    graph = RoleGraph.from_hgr([
        {"ROOT": {"role": "ROOT", "spans": [0, 1, 2, 3], "words": ["a", "man", "doesn't", "sing"]},
         "1": {"role": "V", "spans": [3], "words": ["sing"]},
         "2": {"role": "ARG0", "spans": [0, 1], "words": ["a", "man"]},
         "3": {"role": "ARGM-NEG", "spans": [2], "words": ["doesn't"]}},
        [["1", "2", "ARG0"], ["1", "3", "ARGM-NEG"]],
    ])
    parsed = parse_caption("a man doesn't sing", rolegraph=graph)
    assert parsed.tokens == ("a", "man", "does", "n't", "sing")
    assert parsed.graph.nodes["1"].spans == (4,) and parsed.graph.nodes["3"].spans == (2, 3)
    assert parsed.triplets == (("man", "sing", MISSING),)
    with pytest.raises(DataError, match="do not spell the sentence"):
        align_to_tokens(graph, ["a", "woman", "sings"], where="x")


@pytest.mark.parametrize("value, message", [
    ([{"1": {"role": "V", "spans": [0], "words": ["a"]}}, []], "ROOT"),
    ([{"ROOT": {"role": "ROOT", "spans": [0], "words": ["runs"]}}, [["1", "ROOT", "ARG0"]]], "unknown node"),
    ([{"ROOT": {"role": "ROOT", "spans": [0], "words": ["runs"]},
       "1": {"role": "V", "spans": [3], "words": ["x"]}}, []], "beyond the 1 ROOT words"),
    ([{"ROOT": {"role": "ROOT", "spans": [0], "words": ["a", "b"]}}, []], "one per span index"),
    ("not a graph", "expected \\[nodes, edges\\]"),
])
def test_malformed_user_graphs_name_the_sentence(tmp_path, value, message):
    path = tmp_path / "graphs.json"
    path.write_text(json.dumps({"a dog runs": value}))
    with pytest.raises(DataError, match=f"graphs.json: sentence 'a dog runs'.*{message}"):
        load_sent2rolegraph(path)
    with pytest.raises(DataError, match="not found"):
        load_sent2rolegraph(tmp_path / "missing.json")


@pytest.mark.parametrize("bad", ["", "   ", "\n"])
def test_empty_caption_is_a_clear_error(bad):
    for words_of in (parse_captions, tokenize_captions):
        with pytest.raises(DataError, match="caption 1: empty caption"):
            words_of(["a dog runs", bad])


def test_tokenizing_alone_gives_the_words_of_a_parse():
    """The gateway takes a graph-free tower's words from the tokenizer alone: they must be the words the tower
    was trained on, those of the full parse, on every real caption and on typed-query oddities (case, runs of
    whitespace, punctuation, contractions, hyphens)."""
    captions = load_msrvtt_captions() + ["  A  Man's DOG\tdoesn't   chase the cat-like toy, does it?  ",
                                         "Someone is slicing bread... then eats it!", "e-mail U.S. 3.5km"]
    assert tokenize_captions(captions) == [p.tokens for p in parse_captions(captions)]


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_caption_file_and_errors(tmp_path, capsys):
    assert run_cli(["parse", "a dog is chasing a cat on the grass"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["triplets"] == [["dog", "chase", "cat"]] and printed["role_graph"]["nodes"]["ROOT"]

    captions = tmp_path / "captions.txt"
    captions.write_text("a man sings\na cat is chased by a dog\n")
    out = tmp_path / "parsed.jsonl"
    assert run_cli(["parse", "--file", str(captions), "--out", str(out)]) == 0
    rows = [ParsedCaption.from_json(json.loads(line)) for line in out.read_text().splitlines()]
    assert [r.text for r in rows] == ["a man sings", "a cat is chased by a dog"]

    captions.write_text("a man sings\n\na dog runs\n")
    with pytest.raises(DataError, match="captions.txt:2: empty caption"):
        run_cli(["parse", "--file", str(captions)])
    with pytest.raises(DataError, match="caption file not found"):
        run_cli(["parse", "--file", str(tmp_path / "nope.txt")])
    with pytest.raises(DataError, match="empty caption"):
        run_cli(["parse", ""])

    assert run_cli(["parse", "--eval-labelled", str(LABELLED)]) == 0
    assert "heldout: role accuracy" in capsys.readouterr().out


def test_parsing_does_not_import_torch():
    code = ("import sys, training.text.parser as p; assert 'torch' not in sys.modules; "
            "p.parse_caption('a dog runs'); assert 'torch' not in sys.modules, 'parsing imported torch'")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT_DIR, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
