"""Self-Instruct (Wang et al. 2022): grow an instruction dataset from seed tasks with a local model or
an OpenAI-compatible endpoint. `llmkit generate recipes/data/self_instruct.yaml` runs the pipeline
(llmkit/selfinstruct/pipeline.py); the parts are usable on their own:

    seeds.py     the reference seed format, validated; llmkit's own seed set
    prompts.py   the three prompts and their parsers
    filters.py   the instruction and instance filters, with reason codes
    novelty.py   NoveltyIndex: the ROUGE-L novelty rule, exact and fast
    backends.py  transformers and OpenAI-compatible completion backends
"""

from llmkit.selfinstruct.novelty import NoveltyIndex

__all__ = ["NoveltyIndex"]
