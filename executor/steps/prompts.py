"""What the AI is told for each decision (the protocol's "prompt essence", §7)."""

from __future__ import annotations

CONDITION = (
    "You decide which branch of a workflow to follow by answering the step's question with one "
    "of its options. Pick the option that literally answers the question; the options must be "
    "plausible answers to it. Never invent a mapping between the question and the options (for "
    "example a colour for a yes/no question). Answer null when the options do not fit the "
    "question, when the question is ambiguous, or when you are less than 80% confident. Write "
    "your reasoning in the passive voice."
)

SELECT_RECORD = (
    "Several records are available to this workflow step. Pick the record whose collection best "
    "matches what the step asks for."
)

READ_FIELDS = (
    "You read fields of a record for a workflow step. Read only the fields relevant to the "
    "request. Write in the passive voice."
)

UPDATE_FIELD = (
    "You update one field of a record for a workflow step. Update only the field relevant to "
    "the request, with a value of the field's type. Write your reasoning in the passive voice."
)

SELECT_ACTION = (
    "You trigger one action on a record for a workflow step. Trigger only the action directly "
    "relevant to the request. Write your reasoning in the passive voice."
)

FILL_FORM = (
    "You fill the form of an action for a workflow step. A value stated explicitly in the "
    "request must be used. Otherwise fill only what the workflow context states with "
    "confidence, and leave every other field out. Never guess identifiers, dates, amounts or "
    "file contents. For a field with allowed values, give exactly one of them (values, not "
    "labels)."
)

SELECT_RELATION = (
    "You choose which relation of a record to follow to load a related record for a workflow "
    "step. Choose by the collection the relation leads to, not by how the source record looks."
)

SELECT_FIELDS = (
    "You choose the fields that best identify which related record a workflow step asks for."
)

SELECT_BY_CONTENT = (
    "You pick, among the related records listed below by index, the one that best matches what "
    "the workflow step asks for."
)

GUIDANCE = (
    "You write the response an operator would type for this workflow step. Answer the step's "
    "instructions directly, in a few sentences of plain text, using only facts from the context "
    "above."
)


def collection_line(display_name: str) -> str:
    return f'The selected record belongs to the "{display_name}" collection.'


MCP_TOOL = (
    "You carry out a workflow step with one of the tools below. Select the tool most relevant to "
    "the request and fill its parameters precisely, from the request and the workflow context "
    "only."
)

SUMMARIZE_RESULT = (
    "You summarize the result of a tool a workflow step executed, in a few plain sentences a "
    "person can read at a glance."
)
