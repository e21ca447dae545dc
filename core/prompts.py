"""Every prompt template ar3d sends to the policy, in one place.

The one-step text is the public ShapeLLM-Omni demo's. The Hi-GRPO step texts are ar3d's own:
the paper's full instructions are unreleased and survive only as fragments ("a concise
high-level semantic plan … focus on global shape primitives"; "ONLY a detailed" visual
description that "expands parts into precise geometric details"), which these follow.
Step 2 sees the prompt and the step-1 plan, not the step-1 codes, as in the paper.
"""

ONE_STEP = "Please generate a 3D mesh based on the prompt I provided: {prompt}"

STEP1_PLAN = (
    "Please generate a 3D mesh based on the prompt I provided: {prompt}\n"
    "First write a concise high-level semantic plan of the object: focus on global shape "
    "primitives, their number and arrangement. Then output the mesh."
)

STEP2_VISUAL = (
    "Prompt: {prompt}\n"
    "High-level plan: {plan}\n"
    "Now write ONLY a detailed visual description that expands parts into precise geometric "
    "details (proportions, thickness, placement), then output the refined mesh."
)

from .errors import Ar3dError

MAX_PROMPT_CHARS = 2000


class PromptError(Ar3dError, ValueError):
    """The user's prompt cannot be sent to the policy."""


def check_prompt(prompt: str) -> str:
    if not isinstance(prompt, str):
        raise PromptError(f"a prompt must be text, got {type(prompt).__name__}")
    text = prompt.strip()
    if not text:
        raise PromptError("the prompt is empty: describe the object, e.g. \"a wooden chair with four legs\"")
    if len(text) > MAX_PROMPT_CHARS:
        raise PromptError(
            f"the prompt is {len(text)} characters long; the limit is {MAX_PROMPT_CHARS}. "
            "Describe the object in a sentence or two."
        )
    return text


def step_messages(step: int, prompt: str, plan: str | None = None, two_step: bool = False) -> list[dict]:
    """Chat messages for one generation step (1 = plan → coarse, 2 = visual plan → refined)."""
    if step == 1:
        text = (STEP1_PLAN if two_step else ONE_STEP).format(prompt=prompt)
    elif step == 2:
        if plan is None:
            raise ValueError("step 2 needs the step-1 plan")
        text = STEP2_VISUAL.format(prompt=prompt, plan=plan.strip() or "(none)")
    else:
        raise ValueError(f"Hi-GRPO has steps 1 and 2, not {step}")
    return [{"role": "user", "content": text}]
