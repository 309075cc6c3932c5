"""Progress boundaries against the web card's formula, in IEEE doubles."""

from __future__ import annotations

import json
import math

import pytest

from chalicelib.statemachine import DEFINITION_PATH, END_HANDLERS, substitution_key
from chalicelib.steps import STEPS, boundary, card_active_step

CARD_NAMES = [
    "Capture Before Metrics",
    "Dataset Loading & Refinement",
    "Knowledge Base Creation",
    "Embedding Creation",
    "Minion Update",
    "Training Validation",
    "Testing",
    "Capture After Metrics",
    "Calculate Improvements",
]


def card(progress: float) -> int:
    """``Math.floor((job.progress || 0) / (100 / this.trainingSteps.length))`` with 9 steps."""
    return math.floor((progress or 0) / (100 / 9))


def test_step_names_are_the_cards():
    assert [step.name for step in STEPS] == CARD_NAMES


@pytest.mark.parametrize("step", STEPS, ids=lambda s: s.name)
def test_each_boundary_reads_right_on_the_card(step):
    assert card(step.start) == step.index
    assert card(step.end) == step.index + 1
    assert card_active_step(step.end) == card(step.end)


@pytest.mark.parametrize("step", STEPS, ids=lambda s: s.name)
def test_fractions_stay_inside_the_steps_band(step):
    values = [step.progress_at(i / 1000) for i in range(1001)]
    assert values == sorted(values)
    assert all(card(value) == step.index for value in values)
    assert values[0] == step.start
    assert values[-1] < step.end


def test_naive_tenths_would_fall_one_step_short():
    assert card(11.1) == 0
    assert card(boundary(1)) == 1


def test_start_and_finish():
    assert boundary(0) == 0
    assert boundary(9) == 100
    assert card(100) == 9


def test_definition_runs_the_nine_steps_in_order():
    definition = json.loads(DEFINITION_PATH.read_text())
    name, chain = definition["StartAt"], []
    while definition["States"][name]["Type"] == "Task":
        state = definition["States"][name]
        chain.append((name, state["Parameters"]["FunctionName"]))
        assert state["Catch"][0]["Next"] == "Mark Training Failed"
        name = state["Next"]
    expected = [(step.name, "${" + substitution_key(step.handler) + "}") for step in STEPS]
    expected.append(("Mark Training Succeeded", "${" + substitution_key(END_HANDLERS[0]) + "}"))
    assert chain == expected
    assert definition["States"][name]["Type"] == "Succeed"
