"""Self-Instruct prompts and their parsers, as pure functions (llmkit's own wording).

Self-Instruct (arXiv:2212.10560) runs three kinds of plain-continuation prompts against a base LM;
each prompt here comes with the stop strings it needs and the parser for the continuation:

    bootstrap_prompt / bootstrap_stop / parse_bootstrap     stage 1: new instructions
    classify_prompt / CLASSIFY_STOP / parse_classify        stage 2: is it a classification task?
    instance_prompt / INSTANCE_STOP / parse_instances       stage 3: inputs and outputs per task

The continuation is the model's text after the prompt, with the stop string itself removed (what
OpenAI-style completions return; an HF backend must trim it). The demonstrations are data
(`GENERATION_DEMOS`, `CLASSIFICATION_DEMOS`) rendered by `format_instances`, so the parser is
tested on exactly the layout the templates show the model.
"""

from __future__ import annotations

import re

# ----------------------------------------------------------------------------- stage 1: bootstrap

BOOTSTRAP_HEADER = "Continue this numbered list with new tasks, each different in topic and kind from the others:"
BOOTSTRAP_HEADER_CLASSIFICATION = ("Continue this numbered list with new classification tasks, naming the "
                                   "possible output labels in each task where you can:")

# A new item starts at a line break, a number and a dot followed by white space ("\n10. ");
# "\n3.5 cups" is not a new item.
_ITEM_SPLIT = re.compile(r"\n\s*\d+\s*\.(?=\s|$)")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def bootstrap_prompt(instructions: list[str], *, classification_only: bool = False) -> str:
    """Header, the instructions numbered "1." .. "N.", then "N+1." left open for the model.

    Each instruction has its whitespace runs collapsed and a trailing colon removed."""
    header = BOOTSTRAP_HEADER_CLASSIFICATION if classification_only else BOOTSTRAP_HEADER
    lines = [header]
    for i, text in enumerate(instructions, 1):
        lines.append(f"{i}. {_one_line(text).rstrip(':').rstrip()}")
    lines.append(f"{len(instructions) + 1}.")
    return "\n".join(lines)


def bootstrap_stop(num_in_context: int, max_new: int = 7) -> list[str]:
    """Stop strings that end the list after `max_new` new items (items N+1 .. N+max_new).

    bootstrap_stop(8, 7) == ["\\n\\n", "\\n16", "16.", "16 ."], the reference's list. Note "16."
    also stops a reply that mentions, say, "16.5" inside an item (as in the reference)."""
    if num_in_context < 0 or max_new < 1:
        raise ValueError(f"need num_in_context >= 0 and max_new >= 1, got {num_in_context}, {max_new}")
    n = num_in_context + max_new + 1
    return ["\n\n", f"\n{n}", f"{n}.", f"{n} ."]


def parse_bootstrap(text: str, first_number: int, finish_reason: str) -> list[str]:
    """The new instructions in a continuation of `bootstrap_prompt`.

    `text` starts right after the open number `first_number` ("9." for 8 instructions in context);
    a reply that repeats that number first (chat endpoints often do) is accepted too. Items are split
    at "\\n<number>.", whitespace-collapsed and kept as written (no change of case). When the reply
    hit the token limit (finish_reason "length") only its last, probably cut, item is dropped."""
    text = re.sub(rf"^\s*{first_number}\s*\.(?=\s)", "", text)
    items = _ITEM_SPLIT.split(text)
    if finish_reason == "length":
        items = items[:-1]
    return [item for item in map(_one_line, items) if item]


# ----------------------------------------------------------------------------- stage 2: classification?

CLASSIFY_HEADER = ("For each task, say whether it is a classification task: one whose answer is always one of "
                   "a small, finite set of labels (such as yes/no, positive/negative, or a few named categories).")
CLASSIFY_QUESTION = "Classification with a small, finite label set?"

CLASSIFY_DEMOS: list[tuple[str, bool]] = [
    ("Decide whether the movie review is positive or negative.", True),
    ("Summarize the meeting notes in three bullet points.", False),
    ("Translate the sentence into French.", False),
    ("Tell whether the number is divisible by three.", True),
    ("Suggest a catchy name for a bicycle repair shop.", False),
    ("Label the email as urgent or not urgent.", True),
    ("Find the largest number in the list.", False),
    ("Explain how a rainbow forms.", False),
    ("Rate how formal the text is on a scale from 1 to 5.", True),
    ("Extract the names of the cities mentioned in the paragraph.", False),
    ("Is the sentence written in the active or the passive voice?", True),
    ("Answer the math question and show the steps.", False),
    ("Does the paragraph mention a specific date? Answer yes or no.", True),
    ("Give three arguments for and against school uniforms.", False),
]

CLASSIFY_STOP = ["\n", "Task:"]


def classify_prompt(instruction: str, num_demos: int | None = None) -> str:
    """Few-shot yes/no prompt; the model's continuation is " Yes" or " No". `num_demos` keeps the
    first N demonstrations (None: all), for models with a short context."""
    blocks = [CLASSIFY_HEADER]
    for task, is_clf in CLASSIFY_DEMOS[:num_demos]:
        blocks.append(f"Task: {task}\n{CLASSIFY_QUESTION} {'Yes' if is_clf else 'No'}")
    blocks.append(f"Task: {_one_line(instruction)}\n{CLASSIFY_QUESTION}")
    return "\n\n".join(blocks)


def parse_classify(text: str) -> bool:
    """True iff the answer starts with "yes" (any case); anything else, empty included, is False."""
    return text.strip().lower().startswith("yes")


# ----------------------------------------------------------------------------- stage 3: instances

# Non-classification tasks are shown input first; classification tasks output (label) first, so that
# the inputs cover every label instead of leaning to one (paper §2.3).
GENERATION_HEADER = ("Write example inputs and outputs for each task. "
                     "When a task needs no input, give its output directly.")
CLASSIFICATION_HEADER = ("For each task, list its possible class labels, and under each label write an input "
                         "that belongs to it. When a task needs no input, give the label alone.")

GENERATION_DEMOS: list[tuple[str, list[dict]]] = [
    ("Convert the temperature from Celsius to Fahrenheit.", [
        {"input": "25 degrees Celsius", "output": "77 degrees Fahrenheit"},
        {"input": "-40 degrees Celsius", "output": "-40 degrees Fahrenheit"},
    ]),
    ("Suggest a name for a bakery that sells only bread.", [
        {"input": "", "output": "The Daily Loaf"},
    ]),
    ("Summarize the paragraph in one sentence.", [
        {"input": "The town council voted on Monday to keep the public pool open until nine in the evening "
                  "during July and August. Members said the longer hours answer a petition signed by more "
                  "than two thousand residents.",
         "output": "After a petition, the council extended the pool's summer hours until 9 pm."},
    ]),
    ("Fix the grammar of the sentence.", [
        {"input": "Me and him goes to the gym every day.", "output": "He and I go to the gym every day."},
        {"input": "There is three apples on the table.", "output": "There are three apples on the table."},
        {"input": "She have finished her homework already.", "output": "She has already finished her homework."},
    ]),
    ("What are some habits that help people sleep better?", [
        {"input": "", "output": "Keep a regular bedtime, avoid caffeine and screens late in the day, keep the "
                                "bedroom cool and dark, and get daylight and exercise earlier in the day."},
    ]),
    ("Find the bug in the Python function and fix it.", [
        {"input": "def last(items):\n    return items[len(items)]",
         "output": "The index is one past the end of the list. Use items[len(items) - 1], or simply items[-1]."},
    ]),
]

CLASSIFICATION_DEMOS: list[tuple[str, list[dict]]] = [
    ("Classify the sentiment of the review as positive or negative.", [
        {"input": "The staff were friendly and the room was spotless.", "output": "Positive"},
        {"input": "We waited an hour and the food arrived cold.", "output": "Negative"},
    ]),
    ("Does the sentence contain a spelling mistake? Answer yes or no.", [
        {"input": "I will definately be there on time.", "output": "Yes"},
        {"input": "The train leaves at noon.", "output": "No"},
    ]),
    ("Identify the topic of the headline: sports, business, or science.", [
        {"input": "Underdog club wins the cup after a penalty shootout", "output": "Sports"},
        {"input": "Retail chain to close forty stores as online sales grow", "output": "Business"},
        {"input": "Astronomers detect water vapour around a distant planet", "output": "Science"},
    ]),
    ("Is the first number larger than, smaller than, or equal to the second?", [
        {"input": "0.75, 0.7", "output": "Larger"},
        {"input": "-3, 2", "output": "Smaller"},
        {"input": "1/2, 0.5", "output": "Equal"},
    ]),
    ("At sea level, is water at 50 degrees Celsius a solid, a liquid, or a gas?", [
        {"input": "", "output": "Liquid"},
    ]),
    ("Does the second sentence follow from the first? Answer entailment, contradiction, or neutral.", [
        {"input": "Sentence 1: The museum is closed on Mondays.\n"
                  "Sentence 2: You can visit the museum every day of the week.", "output": "Contradiction"},
        {"input": "Sentence 1: Maria finished the marathon in under four hours.\n"
                  "Sentence 2: Maria ran a marathon.", "output": "Entailment"},
    ]),
]


def instance_stop(max_instances: int = 5) -> list[str]:
    """Stop strings for `instance_prompt`: at most `max_instances` examples, and never a next task."""
    return [f"Example {max_instances + 1}", "Task:"]


INSTANCE_STOP = instance_stop(5)  # ["Example 6", "Task:"]


def format_instances(instances: list[dict], is_classification: bool) -> str:
    """One task's instances in the layout the templates use (and `parse_instances` reads).

    Classification: "Class label: <output>" then "Input: <input>" (left out when the input is empty).
    Otherwise: "Example 1" / "Input: ..." / "Output: ..." blocks, or a single direct "Output: ..." when
    the task has one instance without input."""
    if is_classification:
        return "\n".join(f"Class label: {i['output']}" + (f"\nInput: {i['input']}" if i["input"] else "")
                         for i in instances)
    if len(instances) == 1 and not instances[0]["input"]:
        return f"Output: {instances[0]['output']}"
    return "\n".join(f"Example {k}\nInput: {i['input']}\nOutput: {i['output']}"
                     for k, i in enumerate(instances, 1))


def instance_prompt(instruction: str, is_classification: bool, num_demos: int | None = None) -> str:
    """Few-shot prompt asking for instances of `instruction`; it ends with "Task: <instruction>\\n".
    `num_demos` keeps the first N demonstrations (None: all), for models with a short context."""
    header, demos = ((CLASSIFICATION_HEADER, CLASSIFICATION_DEMOS) if is_classification
                     else (GENERATION_HEADER, GENERATION_DEMOS))
    demos = demos[:num_demos]
    blocks = [header] + [f"Task: {task}\n{format_instances(inst, is_classification)}" for task, inst in demos]
    return "\n\n".join(blocks) + f"\n\nTask: {_one_line(instruction)}\n"


_EXAMPLE = re.compile(r"^[ \t]*Example[ \t]*\d+[ \t]*[.:]?", re.MULTILINE)  # "Example 3" at a line start
_OUTPUT = re.compile(r"\bOutput[ \t]*\d*[ \t]*:")  # "Output:", "Output 2:"
_INPUT = re.compile(r"\bInput[ \t]*\d*[ \t]*:")
_LEADING_INPUT = re.compile(r"^\s*Input[ \t]*\d*[ \t]*:")


def _input_output(piece: str) -> dict:
    """One example: input before the first output marker, output after it (up to a run-on input)."""
    parts = _OUTPUT.split(piece, maxsplit=1)
    inp, out = (parts[0], parts[1]) if len(parts) == 2 else ("", parts[0])
    out = _INPUT.split(out, maxsplit=1)[0]  # the model ran on into another pair
    return {"input": _LEADING_INPUT.sub("", inp).strip(), "output": out.strip()}


def parse_instances(text: str, is_classification: bool) -> list[dict]:
    """The instances in a continuation of `instance_prompt`, as [{"input", "output"}], or [].

    Classification: split on "Class label:"; in each chunk the first line is the label (the output)
    and the rest, less a leading "Input:", is the input. Otherwise: split on "Example N" at a line
    start and read each piece as an input/output pair (a piece without an output marker is all
    output); without "Example N", a single pair if there is an "Output:" marker;
    else nothing. Filtering (empty, duplicate, truncated...) is `filters.filter_instances`'s job."""
    if is_classification:
        if "Class label:" not in text:
            return []
        instances = []
        for chunk in text.split("Class label:")[1:]:
            label, _, rest = chunk.strip().partition("\n")
            instances.append({"input": _LEADING_INPUT.sub("", rest).strip(), "output": label.strip()})
        return instances
    text = text.strip()
    if _EXAMPLE.search(text):
        pieces = _EXAMPLE.split(text)[1:]  # text before "Example 1" is preamble, not an example
        return [_input_output(piece) for piece in pieces if piece.strip()]
    if _OUTPUT.search(text):
        return [_input_output(text)]
    return []
