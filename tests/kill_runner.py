"""Run `llmkit` commands one after another, each in a fork of this process after the heavy imports.

    python tests/kill_runner.py JOBS.json RESULTS.json

JOBS.json is a list of {"argv": [...], "env": {...}, "log": "path"}; each job runs `llmkit ARGV` with
`env` added (LLMKIT_KILL_AT=<point> makes it SIGKILL itself at that point, llmkit/faults.py) and its
output in `log`. RESULTS.json gets each job's exit code (-9: killed). A fresh interpreter spends ~10 s
importing torch, transformers, PEFT and TRL; forking after the imports (as `llmkit pipeline` does, and
for the same reason: no torch op runs here before the fork) makes a kill-and-resume matrix of dozens
of runs affordable in the test suite.
"""

import json
import os
import sys


def run_job(job: dict, main) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            import torch

            torch.set_num_threads(1)  # the same arithmetic in every run, and no contention between them
            os.environ.update(job.get("env", {}))
            with open(job["log"], "w") as fh:
                os.dup2(fh.fileno(), 1)
                os.dup2(fh.fileno(), 2)
                sys.argv = ["llmkit", *job["argv"]]
                code = main(job["argv"])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def main() -> None:
    jobs = json.loads(open(sys.argv[1]).read())
    from llmkit import pipeline
    from llmkit.cli import main as llmkit_main

    pipeline.preload()
    codes = [run_job(job, llmkit_main) for job in jobs]
    with open(sys.argv[2], "w") as fh:
        json.dump(codes, fh)


if __name__ == "__main__":
    main()
