"""The nine training steps: the one list the state machine, the runner and the API agree on.

Progress boundaries are chosen for the web card, which shows step
``floor(progress / (100 / 9))`` as active. After step i (0-based) progress must make that formula
give exactly i + 1 in IEEE doubles; the naive 11.1, 22.2, ... fall one step short, so boundaries
are (i + 1) * 100 / 9 rounded *up* to two decimals and checked against the formula itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    index: int
    name: str
    handler: str

    @property
    def start(self) -> float:
        """Progress while this step is active and nothing of it is done yet."""
        return boundary(self.index)

    @property
    def end(self) -> float:
        """Progress once this step has finished."""
        return boundary(self.index + 1)

    def progress_at(self, fraction: float) -> float:
        """Progress inside this step's band; stays below ``end`` so the card keeps it active."""
        fraction = min(max(fraction, 0.0), 1.0)
        value = math.floor((self.start + fraction * (self.end - self.start)) * 100) / 100
        # ``end`` is the smallest 2-decimal value the card reads as the next step.
        return max(min(value, round(self.end - 0.01, 2)), self.start)


def card_active_step(progress: float) -> int:
    """The web card's formula, as written in its JavaScript."""
    return math.floor((progress or 0) / (100 / len(STEPS)))


def boundary(completed: int) -> float:
    """Progress after ``completed`` steps: the smallest 2-decimal value the card reads right."""
    if completed <= 0:
        return 0.0
    if completed >= len(_NAMES):
        return 100.0
    value = math.ceil(completed * 100 / len(_NAMES) * 100) / 100
    while math.floor(value / (100 / len(_NAMES))) < completed:
        value = round(value + 0.01, 2)
    return value


_NAMES = (
    ("Capture Before Metrics", "capture_before_metrics"),
    ("Dataset Loading & Refinement", "load_dataset"),
    ("Knowledge Base Creation", "create_knowledge_base"),
    ("Embedding Creation", "create_embeddings"),
    ("Minion Update", "update_minion"),
    ("Training Validation", "validate_training"),
    ("Testing", "run_tests"),
    ("Capture After Metrics", "capture_after_metrics"),
    ("Calculate Improvements", "calculate_improvements"),
)

STEPS: tuple[Step, ...] = tuple(
    Step(index, name, handler) for index, (name, handler) in enumerate(_NAMES)
)
STEP_BY_HANDLER = {step.handler: step for step in STEPS}
