"""SCIM User resources <-> learners, and PATCH operations as Entra ID sends them (any case for `op`, paths such
as `emails[type eq "work"].value`, `active` as a boolean or the string "False")."""

from typing import Any

from api.scim.errors import ScimError
from db.models import Learner
from db.scim import DirectoryUser, as_directory_user
from rules.emails import EmailNotValidError, validate_email

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
_PREFIX = USER_SCHEMA.lower() + ":"


def to_resource(learner: Learner, base_url: str) -> dict[str, Any]:
    user = as_directory_user(learner)
    name = {"formatted": user.formatted_name, "givenName": user.given_name, "familyName": user.family_name}
    resource: dict[str, Any] = {
        "schemas": [USER_SCHEMA],
        "id": str(learner.id),
        "userName": user.user_name,
        "name": {key: value for key, value in name.items() if value} or None,
        "displayName": user.display_name,
        "emails": [_email(learner.email, learner.email_primary)] if learner.email else None,
        "active": learner.active,
        "meta": {
            "resourceType": "User",
            "created": learner.created_at.isoformat(),
            "lastModified": (learner.updated_at or learner.created_at).isoformat(),
            "location": f"{base_url}/Users/{learner.id}",
        },
    }
    if learner.external_id:
        resource["externalId"] = learner.external_id
    if learner.source != "scim" and not learner.given_name and not learner.formatted_name:
        resource["name"] = {"formatted": learner.name}  # a learner added by hand or by CSV
    return {key: value for key, value in resource.items() if value is not None}


def _email(value: str, primary: bool | None) -> dict[str, Any]:
    return {"value": value, "type": "work", "primary": True if primary is None else primary}


def _lower_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k).lower().removeprefix(_PREFIX): _lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lower_keys(v) for v in value]
    return value


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ScimError(400, f"active must be true or false, not {value!r}", "invalidValue")


_LIMITS = {"userName": 320, "externalId": 300, "emails.value": 320}


def _text(value: Any, attribute: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ScimError(400, f"{attribute} must be a string", "invalidValue")
    if "\x00" in value or len(value.strip()) > _LIMITS.get(attribute, 200):
        limit = _LIMITS.get(attribute, 200)
        raise ScimError(400, f"{attribute} must be at most {limit} characters, without NUL", "invalidValue")
    return value.strip()


def _chosen_email(emails: Any) -> dict[str, Any]:
    """The work email (or the primary, or the first) of a SCIM `emails` list."""
    if not emails:
        return {}
    if not isinstance(emails, list) or not all(isinstance(e, dict) for e in emails):
        raise ScimError(400, "emails must be a list of {value, type, primary}", "invalidValue")
    chosen = next((e for e in emails if e.get("type") == "work"), None) or next(
        (e for e in emails if e.get("primary") is True), emails[0]
    )
    return dict(chosen)


def _valid_email(email: str) -> str:
    try:
        return validate_email(email, check_deliverability=False).normalized.lower()
    except EmailNotValidError as problem:
        raise ScimError(400, f"{email!r} is not a valid email address: {problem}", "invalidValue") from None


def _email_or_none(user_name: str) -> str | None:
    """Entra's userName is usually the UPN, an email; without a work email it is the learner's email."""
    try:
        return validate_email(user_name, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None


def from_resource(body: Any) -> DirectoryUser:
    """A POSTed or PUT User (any attribute-name case) as the directory's view of a learner."""
    if not isinstance(body, dict):
        raise ScimError(400, "the body must be a SCIM User object", "invalidSyntax")
    user = _lower_keys(body)
    user_name = _text(user.get("username"), "userName")
    if not user_name:
        raise ScimError(400, "userName is required", "invalidValue")
    name = user.get("name") or {}
    if not isinstance(name, dict):
        raise ScimError(400, "name must be an object", "invalidValue")
    chosen = _chosen_email(user.get("emails"))
    work_email, primary = _text(chosen.get("value"), "emails.value"), chosen.get("primary")
    return DirectoryUser(
        user_name=user_name,
        email=_valid_email(work_email) if work_email else _email_or_none(user_name),
        active=_boolean(user.get("active", True)),
        external_id=_text(user.get("externalid"), "externalId"),
        given_name=_text(name.get("givenname"), "name.givenName"),
        family_name=_text(name.get("familyname"), "name.familyName"),
        display_name=_text(user.get("displayname"), "displayName"),
        formatted_name=_text(name.get("formatted"), "name.formatted"),
        email_primary=primary if isinstance(primary, bool) else None,
    )


def _set(resource: dict[str, Any], path: str, value: Any) -> None:
    path = path.strip().lower().removeprefix(_PREFIX)
    if path in ('emails[type eq "work"].value', "emails.value", 'emails[type eq "work"]'):
        kept = resource.get("emails")
        first = kept[0] if isinstance(kept, list) and kept and isinstance(kept[0], dict) else {}
        new = value.get("value") if isinstance(value, dict) else value
        resource["emails"] = [{"value": new, "type": "work", "primary": first.get("primary")}]
    elif path.startswith("name."):
        if not isinstance(resource.get("name"), dict):
            resource["name"] = {}
        resource["name"][path.removeprefix("name.")] = value
    elif path in ("username", "externalid", "displayname", "active", "name", "emails"):
        resource[path] = _lower_keys(value)
    # Other attributes (title, department, ...) are accepted and not kept: learners do not have them.


def _remove(resource: dict[str, Any], path: str) -> None:
    path = path.strip().lower().removeprefix(_PREFIX)
    if path.startswith("name."):
        name = resource.get("name")
        if isinstance(name, dict):
            name.pop(path.removeprefix("name."), None)
    elif path in ("externalid", "displayname", "name"):
        resource.pop(path, None)
    elif path.startswith("emails"):
        resource.pop("emails", None)
    elif path in ("username", "active"):  # required in our schema
        raise ScimError(400, f"{path} cannot be removed", "mutability")


def apply_patch(current: dict[str, Any], body: Any) -> DirectoryUser:
    """The learner after a PatchOp's operations, in order."""
    if not isinstance(body, dict):
        raise ScimError(400, "the body must be a SCIM PatchOp", "invalidSyntax")
    operations = _lower_keys(body).get("operations")
    if not isinstance(operations, list) or not operations:
        raise ScimError(400, "Operations must be a non-empty list", "invalidSyntax")
    resource = _lower_keys(current)
    for operation in operations:
        if not isinstance(operation, dict):
            raise ScimError(400, "each operation must be an object", "invalidSyntax")
        kind, path, value = str(operation.get("op", "")).lower(), operation.get("path"), operation.get("value")
        if kind not in ("add", "replace", "remove"):
            raise ScimError(400, f"op must be add, replace or remove, not {operation.get('op')!r}", "invalidSyntax")
        if kind == "remove":
            if not isinstance(path, str):
                raise ScimError(400, "remove needs a path", "noTarget")
            _remove(resource, path)
        elif isinstance(path, str) and path:
            _set(resource, path, value)
        elif isinstance(value, dict):
            for key, item in value.items():
                _set(resource, str(key), item)
        else:
            raise ScimError(400, "an operation without a path needs an object value", "invalidValue")
    return from_resource(resource)


_ALWAYS = {"id", "schemas"}


def _names(text: str | None) -> list[str]:
    return [n.strip().lower().removeprefix(_PREFIX) for n in (text or "").split(",") if n.strip()]


def project(resource: dict[str, Any], *, attributes: str | None, excluded: str | None) -> dict[str, Any]:
    """`attributes` keeps only the named ones (with id and schemas); `excludedAttributes` drops the named ones.
    Sub-attributes are named as `name.givenName`."""
    keep, drop = _names(attributes), _names(excluded)
    if keep:
        chosen: dict[str, Any] = {}
        for key, value in resource.items():
            wanted = [n.partition(".")[2] for n in keep if n.partition(".")[0] == key.lower()]
            if key in _ALWAYS or "" in wanted:
                chosen[key] = value
            elif wanted and isinstance(value, dict):
                chosen[key] = {k: v for k, v in value.items() if k.lower() in wanted}
        resource = chosen
    for name in drop:
        top, _, sub = name.partition(".")
        for key in [k for k in resource if k.lower() == top and k not in _ALWAYS]:
            if sub and isinstance(resource[key], dict):
                resource[key] = {k: v for k, v in resource[key].items() if k.lower() != sub}
            elif not sub:
                del resource[key]
    return resource
