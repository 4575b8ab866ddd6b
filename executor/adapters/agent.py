"""HTTP adapter to the customer's Forest agent (protocol §4).

Works with both kinds of agent customers run: the one the protocol describes and the Python agent
(``forestadmin-agent-flask``), which answers the probe on ``/forest`` only, needs the ``timezone``
parameter, reads snake_case claims, sends numeric ids, and reports most errors as text 500s.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import jwt

from executor.adapters.http import HttpError, JsonHttpClient
from executor.domain.collections import ActionSchema, CollectionSchema
from executor.domain.ids import RecordId, join_record_id, split_record_id
from executor.domain.records import ActionForm, RecordData, RelatedRecord
from executor.domain.runs import StepUser
from executor.errors import (
    ActionFormValidation,
    ActionRequiresApproval,
    AgentPortError,
    AgentProbeError,
    RecordNotFound,
)
from executor.ports import AgentPort

REQUEST_TIMEOUT_S = 10.0
PROBE_TIMEOUT_S = 5.0
TOKEN_LIFETIME_S = 300
TIMEZONE = "Europe/Paris"
APPROVAL_ERROR = "CustomActionRequiresApprovalError"


def agent_token(user: StepUser, secret: str, *, now: float | None = None) -> str:
    """The short-lived JWT an agent call carries: the step user's claims, camelCase and
    snake_case (Python and Ruby agents read the latter), never the Forest server token."""
    issued = int(time.time() if now is None else now)
    claims = {
        "id": user.id,
        "email": user.email,
        "firstName": user.first_name,
        "lastName": user.last_name,
        "team": user.team,
        "renderingId": user.rendering_id,
        "role": user.role,
        "permissionLevel": user.permission_level,
        "tags": dict(user.tags),
        "first_name": user.first_name,
        "last_name": user.last_name,
        "rendering_id": user.rendering_id,
        "permission_level": user.permission_level,
        "scope": "step-execution",
        "iat": issued,
        "exp": issued + TOKEN_LIFETIME_S,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def snake_case_filters(tree: Any) -> Any:
    """A condition tree as the agent wants it: leaf operators in snake_case, aggregators in lower
    case (``GreaterThan`` → ``greater_than``, ``And`` → ``and``)."""
    if isinstance(tree, list):
        return [snake_case_filters(item) for item in tree]
    if not isinstance(tree, Mapping):
        return tree
    converted: dict[str, Any] = {}
    for key, value in tree.items():
        if key == "operator" and isinstance(value, str):
            converted[key] = re.sub(r"(?<!^)(?=[A-Z])", "_", value).lower()
        elif key == "aggregator" and isinstance(value, str):
            converted[key] = value.lower()
        else:
            converted[key] = snake_case_filters(value)
    return converted


class AgentClient(AgentPort):
    def __init__(
        self,
        agent_url: str,
        auth_secret: str,
        *,
        timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        self._url = agent_url.rstrip("/")
        self._secret = auth_secret
        self._http = JsonHttpClient(self._url, timeout_s=timeout_s)

    def close(self) -> None:
        self._http.close()

    # --- probe ----------------------------------------------------------------------------------

    def probe(self) -> None:
        # The protocol's agent answers on /forest/; the Python agent on /forest only.
        status = self._probe_status("/forest/")
        if status == 404:
            status = self._probe_status("/forest")
        if not 200 <= status < 300:
            raise AgentProbeError(
                f"Agent probe failed: {self._url}/forest/ responded with {status}"
            )

    def _probe_status(self, path: str) -> int:
        try:
            self._http.request("GET", path, operation="probe", timeout_s=PROBE_TIMEOUT_S)
        except HttpError as error:
            if error.status is None or (error.status == 408 and not error.body):
                raise AgentProbeError(
                    f"Agent probe failed: cannot reach {self._url}/forest/ ({error})"
                ) from error
            return error.status
        return 200

    # --- records --------------------------------------------------------------------------------

    def get_record(
        self,
        user: StepUser,
        collection: CollectionSchema,
        record_id: RecordId,
        field_names: Sequence[str] | None = None,
    ) -> RecordData:
        params = self._query(search=True)
        if field_names:
            params[f"fields[{collection.name}]"] = ",".join(field_names)
        document = self._record_document(user, collection, record_id, params)
        return RecordData(collection.name, list(record_id), _attributes(document["data"]))

    def update_record(
        self,
        user: StepUser,
        collection: CollectionSchema,
        record_id: RecordId,
        values: Mapping[str, Any],
    ) -> RecordData:
        pipe_id = join_record_id(record_id)
        body = {"data": {"attributes": dict(values), "type": collection.name, "id": pipe_id}}
        answer = self._call(
            user, "PUT", self._record_path(collection.name, pipe_id), body=body, operation="update"
        )
        data = answer.get("data") if isinstance(answer, Mapping) else None
        return RecordData(collection.name, list(record_id), _attributes(data))

    def list_related(
        self,
        user: StepUser,
        collection: CollectionSchema,
        record_id: RecordId,
        relation: str,
        related: CollectionSchema,
        *,
        limit: int,
        filters: Any = None,
    ) -> list[RecordData]:
        params = self._query(search=True)
        params["page[size]"] = str(limit)
        params["page[number]"] = "1"
        if filters is not None:
            params["filters"] = json.dumps(snake_case_filters(filters))
        path = (
            f"{self._record_path(collection.name, join_record_id(record_id))}"
            f"/relationships/{quote(relation, safe='')}"
        )
        answer = self._call(user, "GET", path, params=params, operation="list related")
        rows = answer.get("data") if isinstance(answer, Mapping) else None
        if not isinstance(rows, list):
            raise AgentPortError(f"Listing {collection.name}.{relation} did not answer a list")
        return [_related_row(related, row) for row in rows if isinstance(row, Mapping)]

    def get_related(
        self,
        user: StepUser,
        collection: CollectionSchema,
        record_id: RecordId,
        relation: str,
        label_field: str,
    ) -> RelatedRecord | None:
        params = self._query(search=True)
        params[f"fields[{collection.name}]"] = relation
        params[f"fields[{relation}]"] = label_field
        document = self._record_document(user, collection, record_id, params)
        linkage = _linkage(document["data"], relation)
        if linkage is None or linkage.get("id") in (None, ""):
            return None
        related_id = str(linkage["id"])
        label = None
        for included in document.get("included") or ():
            if isinstance(included, Mapping) and str(included.get("id")) == related_id:
                label = _attributes(included).get(label_field)
                break
        return RelatedRecord(split_record_id(related_id), label)

    def get_polymorphic_type(
        self, user: StepUser, collection: CollectionSchema, record_id: RecordId, relation: str
    ) -> str | None:
        params = self._query(search=True)
        params[f"fields[{collection.name}]"] = relation
        params[f"fields[{relation}]"] = "id"
        document = self._record_document(user, collection, record_id, params)
        linkage = _linkage(document["data"], relation)
        target = linkage.get("type") if linkage else None
        return target if isinstance(target, str) and target else None

    # --- actions --------------------------------------------------------------------------------

    def load_action_form(
        self, user: StepUser, action: ActionSchema, collection_name: str, ids: Sequence[str]
    ) -> ActionForm | None:
        body = {
            "data": {
                "attributes": {"collection_name": collection_name, "ids": list(ids), "values": {}},
                "type": "action-requests",
            }
        }
        try:
            answer = self._call(
                user, "POST", f"{action.endpoint}/hooks/load", body=body, operation="form load"
            )
        except AgentPortError as error:
            if error.status == 404 and action.load_hook is not True:
                return None  # no dynamic form: the schema's static fields make the form
            raise
        return _form(answer)

    def change_action_form(
        self,
        user: StepUser,
        action: ActionSchema,
        collection_name: str,
        ids: Sequence[str],
        changed_field: str,
        fields: Sequence[Mapping[str, Any]],
    ) -> ActionForm:
        body = {
            "data": {
                "attributes": {
                    "collection_name": collection_name,
                    "changed_field": changed_field,
                    "ids": list(ids),
                    "fields": [dict(f) for f in fields],
                },
                "type": "custom-action-hook-requests",
            }
        }
        answer = self._call(
            user, "POST", f"{action.endpoint}/hooks/change", body=body, operation="form change"
        )
        return _form(answer)

    def execute_action(
        self,
        user: StepUser,
        action: ActionSchema,
        collection_name: str,
        ids: Sequence[str],
        values: Mapping[str, Any],
    ) -> Any:
        body = {
            "data": {
                "attributes": {
                    "collection_name": collection_name,
                    "ids": list(ids),
                    "values": dict(values),
                    "smart_action_id": action.name,
                },
                "type": "custom-action-requests",
            }
        }
        try:
            return self._http.request(
                "POST",
                action.endpoint,
                operation="execute action",
                json_body=body,
                params=self._query(),
                headers=self._auth(user),
            )
        except HttpError as error:
            if error.status == 403 and _requires_approval(error.body):
                raise ActionRequiresApproval(
                    f"Action {action.name} requires an approval"
                ) from error
            failure = _failure("POST", action.endpoint, error)
            if error.status in (400, 422):
                raise ActionFormValidation(f"Action {action.name} refused: {failure}") from error
            raise AgentPortError(failure, status=error.status) from error

    # --- transport ------------------------------------------------------------------------------

    def _query(self, *, search: bool = False) -> dict[str, str]:
        params = {"timezone": TIMEZONE}
        if search:
            params["searchExtended"] = "false"
        return params

    def _auth(self, user: StepUser) -> dict[str, str]:
        return {"Authorization": f"Bearer {agent_token(user, self._secret)}"}

    @staticmethod
    def _record_path(collection_name: str, pipe_id: str) -> str:
        return f"/forest/{quote(collection_name, safe='')}/{quote(pipe_id, safe='')}"

    def _record_document(
        self,
        user: StepUser,
        collection: CollectionSchema,
        record_id: RecordId,
        params: dict[str, str],
    ) -> dict[str, Any]:
        path = self._record_path(collection.name, join_record_id(record_id))
        try:
            answer = self._call(user, "GET", path, params=params, operation="read")
        except AgentPortError as error:
            if error.status == 404:
                raise RecordNotFound(f"{collection.name} {record_id} not found") from error
            raise
        if not isinstance(answer, Mapping) or not isinstance(answer.get("data"), Mapping):
            raise RecordNotFound(f"{collection.name} {record_id}: empty answer")
        return dict(answer)

    def _call(
        self,
        user: StepUser,
        method: str,
        path: str,
        *,
        operation: str,
        body: Any = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        try:
            return self._http.request(
                method,
                path,
                operation=operation,
                json_body=body,
                params=params or self._query(),
                headers=self._auth(user),
            )
        except HttpError as error:
            raise AgentPortError(_failure(method, path, error), status=error.status) from error


def _failure(method: str, path: str, error: HttpError) -> str:
    """What failed, without the agent's own message: its errors may echo the record values or
    form inputs it refused, and this text is logged."""
    if error.status is None:
        return str(error)  # no answer, or not JSON: nothing of the agent's in it
    return f"{method} {path} answered {error.status}"


def _attributes(resource: Any) -> dict[str, Any]:
    if not isinstance(resource, Mapping):
        return {}
    attributes = resource.get("attributes")
    return dict(attributes) if isinstance(attributes, Mapping) else {}


def _linkage(resource: Any, relation: str) -> Mapping[str, Any] | None:
    relationships = resource.get("relationships") if isinstance(resource, Mapping) else None
    link = relationships.get(relation) if isinstance(relationships, Mapping) else None
    data = link.get("data") if isinstance(link, Mapping) else None
    return data if isinstance(data, Mapping) else None


def _related_row(related: CollectionSchema, row: Mapping[str, Any]) -> RecordData:
    values = _attributes(row)
    keys = related.primary_key_fields
    if len(keys) == 1 and keys[0] in values:
        record_id: RecordId = [values[keys[0]]]
    else:
        record_id = split_record_id(str(row.get("id")))
    return RecordData(related.name, record_id, values)


def _form(answer: Any) -> ActionForm:
    if not isinstance(answer, Mapping) or not isinstance(answer.get("fields"), list):
        raise AgentPortError("The action form answer has no fields")
    layout = answer.get("layout")
    return ActionForm(
        fields=tuple(dict(f) for f in answer["fields"] if isinstance(f, Mapping)),
        layout=tuple(dict(item) for item in layout if isinstance(item, Mapping))
        if isinstance(layout, list)
        else None,
    )


def _requires_approval(body: bytes) -> bool:
    """A 403 whose first JSON:API error is the approval error, or whose raw text names it: the
    raw text covers both."""
    return APPROVAL_ERROR.encode() in body
