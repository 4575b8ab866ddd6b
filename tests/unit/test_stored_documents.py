"""Stored documents are parsed on every read and validated once per distinct text."""

from __future__ import annotations

import json
from typing import Any

import pytest
from marshmallow import ValidationError

from executor.adapters.stores import documents
from executor.adapters.stores.documents import StoredDocuments

GUIDANCE = {"type": "guidance", "stepIndex": 0, "executionResult": {"userInput": "hi"}}


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    seen: list[Any] = []
    real = documents.validate_step_execution

    def counting(document: Any) -> Any:
        seen.append(document)
        return real(document)

    monkeypatch.setattr(documents, "validate_step_execution", counting)
    return seen


def test_a_known_text_is_parsed_but_not_validated_again(validations: list[Any]) -> None:
    loaded = StoredDocuments()
    text = json.dumps(GUIDANCE)

    first, second = loaded.load(text), loaded.load(text.encode())
    assert first == second == GUIDANCE
    assert first is not second  # callers may change what they read
    assert len(validations) == 1


def test_any_other_text_is_validated(validations: list[Any]) -> None:
    loaded = StoredDocuments()
    loaded.load(json.dumps(GUIDANCE))
    loaded.load(json.dumps({**GUIDANCE, "stepIndex": 1}))
    assert len(validations) == 2


def test_an_invalid_document_is_refused_every_time(validations: list[Any]) -> None:
    loaded = StoredDocuments()
    bad = json.dumps({"type": "guidance", "stepIndex": 0, "unexpected": True})
    for _ in range(2):
        with pytest.raises(ValidationError):
            loaded.load(bad)
    assert len(validations) == 2


def test_text_that_is_not_json_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        StoredDocuments().load("{not json")


def test_the_memory_is_bounded(validations: list[Any]) -> None:
    loaded = StoredDocuments(max_known=2)
    texts = [json.dumps({**GUIDANCE, "stepIndex": i}) for i in range(3)]
    for text in texts:
        loaded.load(text)
    loaded.load(texts[2])
    assert len(validations) == 3
    loaded.load(texts[0])  # forgotten: checked again
    assert len(validations) == 4
