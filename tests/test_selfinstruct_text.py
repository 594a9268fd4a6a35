"""Self-Instruct text pieces: seed loading, instruction and instance filters, prompts and parsers.

Pure string functions, no model: fast."""

import json
import random
from collections import Counter

import pytest
from conftest import (  # ../shared/data, never copied into the project
    REFERENCE_SEEDS,
    needs_reference_seeds,
)

from llmkit.errors import ConfigError, DataError
from llmkit.selfinstruct import prompts as P
from llmkit.selfinstruct.filters import (
    REASONS,
    FilterConfig,
    filter_instances,
    instruction_rejection,
)
from llmkit.selfinstruct.seeds import BUNDLED_SEEDS, SeedTask, load_seeds

CFG = FilterConfig()

# ----------------------------------------------------------------------------- seeds


def test_bundled_seeds():
    tasks = load_seeds()
    assert load_seeds("llmkit") == tasks and load_seeds(BUNDLED_SEEDS) == tasks
    # The counts the data card (bundled/self_instruct/README.md) states.
    assert len(tasks) == 62 and sum(t.is_classification for t in tasks) == 13
    assert sum(len(t.instances) for t in tasks) == 82
    assert len({t.id for t in tasks}) == len(tasks) and len({t.name for t in tasks}) == len(tasks)
    assert [t.id for t in tasks] == [f"llmkit_seed_{i}" for i in range(len(tasks))]
    assert any(i["input"] == "" for t in tasks for i in t.instances)
    for t in tasks:
        assert instruction_rejection(t.instruction, CFG) is None, t.instruction
        assert 4 <= len(t.instruction.split()) <= 40 and t.instruction.isascii()
        assert 1 <= len(t.instances) <= 2 and all(i["output"].strip() for i in t.instances)
    # The file keeps the reference's key order.
    first = json.loads(BUNDLED_SEEDS.read_text().splitlines()[0])
    assert list(first) == ["id", "name", "instruction", "instances", "is_classification"]


@needs_reference_seeds
def test_reference_seeds_load():
    tasks = load_seeds(REFERENCE_SEEDS)
    assert len(tasks) == 175 and sum(t.is_classification for t in tasks) == 26
    assert isinstance(tasks[0], SeedTask) and tasks[0].id == "seed_task_0"
    # A classification seed's label is short enough to be a label.
    assert all(len(t.instances[0]["output"].split()) <= 20 for t in tasks if t.is_classification)


def _row(i, **over):
    row = {"id": f"t{i}", "name": "n", "instruction": "Say something nice.",
           "instances": [{"input": "", "output": "Hi"}], "is_classification": False}
    row.update(over)
    return json.dumps(row)


@pytest.mark.parametrize("lines, line_no, message", [
    ([_row(0), _row(1), "{not json"], 3, "not valid JSON"),
    ([_row(0), json.dumps({"id": "x", "name": "n", "instruction": "Do it now please.",
                           "instances": [{"input": "", "output": "k"}]})], 2, "missing key `is_classification`"),
    ([_row(0, instruction="  ")], 1, "`instruction` is empty"),
    ([_row(0, instruction=5)], 1, "`instruction` must be a string"),
    ([_row(0, instances=[])], 1, "`instances` must be a non-empty list"),
    ([_row(0, instances=[{"input": "a"}])], 1, "instances[0].output must be a string"),
    ([_row(0, instances=[{"input": 1, "output": "b"}])], 1, "instances[0].input must be a string"),
    ([_row(0, is_classification="yes")], 1, "`is_classification` must be true or false"),
    ([_row(0), "", _row(0)], 3, "duplicate id `t0` (first on line 1)"),  # blank lines still count
    (["[1, 2]"], 1, "expected a JSON object"),
])
def test_malformed_seed_files(tmp_path, lines, line_no, message):
    path = tmp_path / "seeds.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as err:
        load_seeds(path)
    assert f"{path}: line {line_no}: " in str(err.value) and message in str(err.value)


def test_seed_file_empty_or_missing(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(DataError, match="empty"):
        load_seeds(empty)
    with pytest.raises(DataError, match="not found"):
        load_seeds(tmp_path / "nope.jsonl")


def test_seed_blank_lines_skipped(tmp_path):
    path = tmp_path / "seeds.jsonl"
    path.write_text("\n" + _row(0) + "\n\n" + _row(1) + "\n")
    assert [t.id for t in load_seeds(path)] == ["t0", "t1"]


# ----------------------------------------------------------------------------- instruction rules


@pytest.mark.parametrize("text, reason", [
    ("", "empty"),
    ("   \n ", "empty"),
    ("Name three colors", "too_short"),                          # 3 words
    ("Name three primary colors", None),                         # 4 words
    (" ".join(["word"] * 150), None),
    (" ".join(["word"] * 151), "too_long"),
    ("Draw a picture of a cat for me", "blacklist"),
    ("Explain how to withdraw money from an ATM", None),         # whole words only
    ("Describe the paragraph structure of an essay", None),      # "graph" inside a word
    ("Summarize the attached FILE in two lines", "blacklist"),   # any case
    ("Go to the store and buy some milk", "blacklist"),         # multi-word entry
    ("Tell me where I should go  to relax", "blacklist"),       # any white space between its words
    ("Tell me how long ago tomorrow was", None),
    ("Write a program that sorts a list", "write_a_program"),
    ("WRITE A PROGRAM to add two numbers", "write_a_program"),
    ("Write a poem about a program manager", None),
    ("\"Quote\" the first line of the poem please", "leading_punctuation"),
    ("- List three kinds of cheese", "leading_punctuation"),
    ("\u00bfDonde esta la biblioteca municipal hoy?", "non_ascii_start"),
    ("Ecrivez une phrase sur la mer", None),
])
def test_instruction_rules(text, reason):
    assert instruction_rejection(text, CFG) == reason
    assert reason is None or reason in REASONS


def test_instruction_rule_order():
    # Each text fails several rules; the first in the documented order is reported.
    assert instruction_rejection("Draw it", CFG) == "too_short"               # short and blacklisted
    assert instruction_rejection("Write a program to plot data", CFG) == "blacklist"
    assert instruction_rejection("'Write a program' is a bad task", CFG) == "leading_punctuation"
    assert instruction_rejection("\u00c9crivez un programme court ici", CFG) == "non_ascii_start"


def test_instruction_rules_switchable():
    cfg = FilterConfig(min_words=1, blacklist=[], forbid_prefixes=[], forbid_leading_punctuation=False,
                       require_ascii_first_char=False)
    for text in ["Draw", "Write a program to sort", "- list", "\u00e9crivez"]:
        assert instruction_rejection(text, cfg) is None


@pytest.mark.parametrize("field, value", [
    ("min_words", 0), ("max_words", 3), ("rouge_threshold", 0.0), ("rouge_threshold", 1.5),
    ("max_instances", 0), ("blacklist", ["ok", " "]), ("forbid_prefixes", [""]),
])
def test_filter_config_validate(field, value):
    FilterConfig().validate()
    FilterConfig(rouge_threshold=1.0).validate()
    with pytest.raises(ConfigError, match=f"filters.{field}"):
        FilterConfig(**{field: value}).validate()


# ----------------------------------------------------------------------------- stage 1 prompts


def test_bootstrap_prompt_layout():
    prompt = P.bootstrap_prompt(["Explain  SQL\n joins:", "Name a fruit", "List some birds"])
    lines = prompt.split("\n")
    assert lines[0] == P.BOOTSTRAP_HEADER
    assert lines[1:] == ["1. Explain SQL joins", "2. Name a fruit", "3. List some birds", "4."]
    assert P.bootstrap_prompt(["Name a fruit"] * 8).endswith("\n8. Name a fruit\n9.")
    assert P.bootstrap_prompt([], classification_only=True) == P.BOOTSTRAP_HEADER_CLASSIFICATION + "\n1."


def test_bootstrap_stop():
    assert P.bootstrap_stop(8) == ["\n\n", "\n16", "16.", "16 ."]
    assert P.bootstrap_stop(3, max_new=16) == ["\n\n", "\n20", "20.", "20 ."]
    with pytest.raises(ValueError):
        P.bootstrap_stop(8, max_new=0)


def test_parse_bootstrap():
    text = " Explain SQL joins to a new analyst.\n10. Give three  tips\tfor public speaking.\n11 . Rate the joke."
    assert P.parse_bootstrap(text, 9, "stop") == [
        "Explain SQL joins to a new analyst.", "Give three tips for public speaking.", "Rate the joke."]
    # Cut at the token limit: only the last item goes.
    assert P.parse_bootstrap(text, 9, "length") == [
        "Explain SQL joins to a new analyst.", "Give three tips for public speaking."]
    # Cut right after a number: the complete item before it stays.
    assert P.parse_bootstrap(" Name a fruit.\n10. Name a bird.\n11.", 9, "length") == ["Name a fruit.", "Name a bird."]
    assert P.parse_bootstrap(" Only one item", 9, "length") == []


def test_parse_bootstrap_edges():
    # A chat model that repeats the open number; a decimal is not a new item; empty items dropped.
    assert P.parse_bootstrap("9. Convert 3.5 cups\n to milliliters.\n10.\n11. Name a bird.", 9, "stop") == [
        "Convert 3.5 cups to milliliters.", "Name a bird."]
    assert P.parse_bootstrap("", 9, "stop") == []
    # No change of case (the reference's str.capitalize() would give "Explain sql joins").
    assert P.parse_bootstrap(" Explain SQL joins", 9, "stop") == ["Explain SQL joins"]


def test_bootstrap_round_trip():
    # The list layout the prompt shows is the one the parser reads back.
    instructions = ["Name a fruit that is red.", "Explain how tides work.", "Sort the numbers in the list."]
    prompt = P.bootstrap_prompt(instructions)
    continuation = prompt.split("\n1.", 1)[1].rsplit("\n4.", 1)[0]
    assert P.parse_bootstrap(continuation, 1, "stop") == instructions


# ----------------------------------------------------------------------------- stage 2 prompts


def test_classify_prompt_and_parse():
    prompt = P.classify_prompt("Decide if the tweet\n is sarcastic.")
    assert prompt.endswith("Task: Decide if the tweet is sarcastic.\n" + P.CLASSIFY_QUESTION)
    answers = [d[1] for d in P.CLASSIFY_DEMOS]
    assert prompt.count(P.CLASSIFY_QUESTION + " Yes") == sum(answers) >= 5
    assert prompt.count(P.CLASSIFY_QUESTION + " No") == len(answers) - sum(answers) >= 5
    assert P.CLASSIFY_STOP == ["\n", "Task:"]
    for text, want in [(" Yes", True), ("yes.", True), ("YES", True), (" No", False), ("", False),
                       ("Maybe yes", False), ("Y", False)]:
        assert P.parse_classify(text) is want


# ----------------------------------------------------------------------------- stage 3 prompts


@pytest.mark.parametrize("is_clf", [False, True])
def test_instance_prompt_demos_round_trip(is_clf):
    demos = P.CLASSIFICATION_DEMOS if is_clf else P.GENERATION_DEMOS
    assert len(demos) >= 5
    prompt = P.instance_prompt("Tell a joke about cats.", is_clf)
    assert prompt.endswith("\n\nTask: Tell a joke about cats.\n")
    # Each demonstration, as written in the prompt, parses back to its instances.
    for task, instances in demos:
        block = prompt.split(f"Task: {task}\n", 1)[1].split("\n\nTask:", 1)[0]
        assert P.parse_instances(block, is_clf) == instances


def test_parse_generation_instances():
    text = ("Example 1\nInput: 3 + 4\nOutput: 7\n"
            "Example 2\nInput: Paragraph: The sky is blue.\nQuestion: What color is it?\nOutput: Blue\n"
            "Example 3\nInput: 10 - 2\nOutput: 8\nInput: 5 - 5\nOutput: 0\n")   # run-on pair is cut
    assert P.parse_instances(text, False) == [
        {"input": "3 + 4", "output": "7"},
        {"input": "Paragraph: The sky is blue.\nQuestion: What color is it?", "output": "Blue"},
        {"input": "10 - 2", "output": "8"},
    ]
    # Numbered markers, a preamble, an example with no output marker (all output).
    text = "Sure.\nExample 1:\nInput 1: cat\nOutput 1: gato\nExample 2\nperro"
    assert P.parse_instances(text, False) == [{"input": "cat", "output": "gato"}, {"input": "", "output": "perro"}]
    # "Example" inside a sentence is not a marker.
    assert P.parse_instances("Output: Example sentences help.", False) == [
        {"input": "", "output": "Example sentences help."}]


def test_parse_generation_output_only_and_garbage():
    assert P.parse_instances("Output: The Daily Loaf\n", False) == [{"input": "", "output": "The Daily Loaf"}]
    assert P.parse_instances("Input: 2, 3\nOutput: 5", False) == [{"input": "2, 3", "output": "5"}]
    for garbage in ["", "   ", "I am not sure what you mean.", "Class label: Yes"]:
        assert P.parse_instances(garbage, False) == []


def test_parse_classification_instances():
    text = ("Class label: Positive\nInput: Loved it.\n"
            "Class label: Negative\nInput: Never again.\nSecond line.\n"
            "Class label: Neutral\n")
    assert P.parse_instances(text, True) == [
        {"input": "Loved it.", "output": "Positive"},
        {"input": "Never again.\nSecond line.", "output": "Negative"},
        {"input": "", "output": "Neutral"},
    ]
    assert P.parse_instances("Sentence: no labels here", True) == []
    assert P.parse_instances("", True) == []


def test_format_instances_round_trip():
    generated = [{"input": "x", "output": "y"}, {"input": "a\nb", "output": "c"}]
    assert P.parse_instances(P.format_instances(generated, False), False) == generated
    labels = [{"input": "It rained.", "output": "Past"}, {"input": "", "output": "Future"}]
    assert P.parse_instances(P.format_instances(labels, True), True) == labels
    assert P.INSTANCE_STOP == ["Example 6", "Task:"] and P.instance_stop(3) == ["Example 4", "Task:"]


# ----------------------------------------------------------------------------- instance filters


def _inst(i, o):
    return {"input": i, "output": o}


def test_filter_instances_rules():
    instances = [_inst("a", "1"), _inst("b", "b"), _inst("c", ""), _inst("d:", "2"), _inst("e", "3:"),
                 _inst("", ""), _inst("a", "1"), _inst("f", "4")]
    kept, dropped = filter_instances(instances, truncated=False, cfg=CFG, rng=random.Random(0))
    assert kept == [_inst("a", "1"), _inst("f", "4")]
    assert dropped == Counter(input_equals_output=1, empty_output=2, unfinished=2, duplicate=1)
    assert set(dropped) <= set(REASONS)


def test_filter_instances_truncated():
    instances = [_inst("a", "1"), _inst("b", "2")]
    kept, dropped = filter_instances(instances, truncated=True, cfg=CFG, rng=random.Random(0))
    assert kept == [_inst("a", "1")] and dropped == Counter(truncated=1)
    assert filter_instances([], truncated=True, cfg=CFG, rng=random.Random(0)) == ([], Counter())


def test_filter_instances_conflicting_outputs_drop_all():
    instances = [_inst("x", "1"), _inst("y", "2"), _inst("x", "3")]
    assert filter_instances(instances, truncated=False, cfg=CFG, rng=random.Random(0)) == (
        [], Counter(conflicting_outputs=3))
    # Empty inputs with different outputs are not a conflict (a task without input).
    no_input = [_inst("", "Red"), _inst("", "Blue")]
    assert filter_instances(no_input, truncated=False, cfg=CFG, rng=random.Random(0)) == (no_input, Counter())


def test_filter_instances_max_is_seeded():
    instances = [_inst(f"in{i}", f"out{i}") for i in range(9)]
    cfg = FilterConfig(max_instances=4)
    a, dropped = filter_instances(instances, truncated=False, cfg=cfg, rng=random.Random(7))
    b, _ = filter_instances(instances, truncated=False, cfg=cfg, rng=random.Random(7))
    assert a == b and len(a) == 4 and dropped == Counter(over_max=5)
    assert a == sorted(a, key=instances.index)  # original order kept
    samples = {tuple(i["input"] for i in filter_instances(instances, truncated=False, cfg=cfg,
                                                          rng=random.Random(s))[0]) for s in range(20)}
    assert len(samples) > 1  # the rng decides which are kept
