"""How fast the bot understands a message, in each language, and what starting it costs.

All messages are distinct and each is read by an understanding that has not seen it,
so no cache flatters the figures (each message's least of three readings is kept).
Prints figures; asserts nothing (issue 10's aims: median <= 200 us per message in
each language, <= 5 ms for a 4,096-character message, start-up <= 500 ms,
peak RSS <= 150 MB with both languages loaded).

    python benchmarks/bench_understanding.py
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.evaluation import load_cases  # noqa: E402

EVAL = ROOT / "tests" / "eval"
SHARED = ROOT.parent / "shared" / "eval"
LONG = 4_096

# Start-up as an operator sees it: a fresh interpreter importing the bot, loading both
# languages' files and models, building the dialogue and answering one message.
STARTUP = """
import json, resource, sys, time
started = time.perf_counter()
from bot.core.dialogue import Dialogue, PatientText, SessionState
from bot.knowledge_files import load_knowledge
dialogue = Dialogue(load_knowledge())
dialogue.handle(SessionState(), PatientText("does it leave a scar"))
elapsed = time.perf_counter() - started
print(json.dumps({"startup_ms": elapsed * 1000, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "numpy": "numpy" in sys.modules, "sklearn": "sklearn" in sys.modules}))
"""


def messages(paths: list[Path]) -> list[str]:
    seen: dict[str, None] = {}
    for path in paths:
        if path.exists():
            for case in load_cases(path):
                seen.setdefault(case.question, None)
    return list(seen)


def long_stories(pool: list[str], count: int, seed: int) -> list[str]:
    """Distinct messages of exactly 4,096 characters, made of patients' messages in a row."""
    rng = random.Random(seed)
    stories = []
    for _ in range(count):
        parts: list[str] = []
        while sum(len(p) + 1 for p in parts) < LONG:
            parts.append(rng.choice(pool))
        stories.append(" ".join(parts)[:LONG])
    return stories


def timed(make, texts: list[str], rounds: int = 3) -> list[float]:  # noqa: ANN001
    """Each message's time, the least of ``rounds`` readings, each by a freshly built
    understanding (so no cache has seen it): this machine's neighbours add noise that
    a single reading mistakes for cost."""
    best = [float("inf")] * len(texts)
    for _ in range(rounds):
        understanding = make()
        # Warm the code paths (not the cache: these messages are not measured).
        for text in texts[:50]:
            understanding.understand("warm up " + text)
        for position, text in enumerate(texts):
            started = time.perf_counter_ns()
            understanding.understand(text)
            best[position] = min(best[position], (time.perf_counter_ns() - started) / 1000)
    return best


def report(name: str, micros: list[float]) -> None:
    micros = sorted(micros)
    p99 = micros[min(len(micros) - 1, int(0.99 * len(micros)))]
    print(f"{name:<38} {len(micros):6d} msgs   median {statistics.median(micros):8.0f} us   p99 {p99:8.0f} us")


def main() -> None:
    from bot.core.understanding import Understanding
    from bot.knowledge_files import load_knowledge

    # Start-up first, while this process is small: a child's peak RSS on Linux counts the
    # parent's memory it was forked from. As deployed, Python's compiled bytecode is kept
    # after the first start (this machine's PYTHONDONTWRITEBYTECODE would recompile every
    # module at every start).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, "-c", STARTUP], capture_output=True, cwd=ROOT, env=env, check=True)  # writes the bytecode
    runs = [
        json.loads(subprocess.run([sys.executable, "-c", STARTUP], capture_output=True, text=True, cwd=ROOT, env=env, check=True).stdout)
        for _ in range(5)
    ]
    print(f"start-up to the first answer (median of 5): {statistics.median(r['startup_ms'] for r in runs):.0f} ms,"
          f" peak RSS {max(r['peak_rss_mb'] for r in runs):.0f} MB (numpy loaded: {runs[0]['numpy']}, scikit-learn: {runs[0]['sklearn']})")

    knowledge = load_knowledge()
    english = messages([SHARED / "dev.yaml", *sorted(EVAL.glob("patients*.yaml")), EVAL / "real_en_heldout.yaml"])
    korean = messages([SHARED / "dev_ko.yaml", EVAL / "ko_written.yaml", EVAL / "real_ko.yaml"])
    report("English, distinct messages", timed(lambda: Understanding(knowledge), english))
    report("Korean, distinct messages", timed(lambda: Understanding(knowledge), korean))
    report("English, 4,096-character stories", timed(lambda: Understanding(knowledge), long_stories(english, 40, 1)))
    report("Korean, 4,096-character stories", timed(lambda: Understanding(knowledge), long_stories(korean, 40, 2)))


if __name__ == "__main__":
    main()
