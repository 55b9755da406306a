"""What the server supports (RFC 7643 5-7): ServiceProviderConfig, ResourceTypes and Schemas."""

from typing import Any

from api.scim.users import USER_SCHEMA

LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
MAX_RESULTS = 200


def service_provider_config(base_url: str) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": f"{base_url.removesuffix('/scim/v2')}/docs",
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": False},
        "sort": {"supported": False},
        "etag": {"supported": False},
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "Bearer token",
                "description": "The token from POST /api/v1/customers/{customer_id}/scim-tokens",
                "primary": True,
            }
        ],
        "meta": {"resourceType": "ServiceProviderConfig", "location": f"{base_url}/ServiceProviderConfig"},
    }


def user_resource_type(base_url: str) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": "User",
        "name": "User",
        "endpoint": "/Users",
        "description": "A learner of the customer",
        "schema": USER_SCHEMA,
        "schemaExtensions": [],
        "meta": {"resourceType": "ResourceType", "location": f"{base_url}/ResourceTypes/User"},
    }


def _attribute(
    name: str,
    *,
    required: bool = False,
    unique: str = "none",
    kind: str = "string",
    mutability: str = "readWrite",
    case_exact: bool = False,
    **more: Any,
) -> dict[str, Any]:
    return {
        "name": name,
        "type": kind,
        "multiValued": False,
        "description": name,
        "required": required,
        "caseExact": case_exact,
        "mutability": mutability,
        "returned": "default",
        "uniqueness": unique,
        **more,
    }


def user_schema(base_url: str) -> dict[str, Any]:
    name_parts = [_attribute("formatted"), _attribute("familyName"), _attribute("givenName")]
    email_parts = [
        _attribute("value"),
        _attribute("type", canonicalValues=["work"]),
        _attribute("primary", kind="boolean"),
    ]
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": USER_SCHEMA,
        "name": "User",
        "description": "A learner",
        "attributes": [
            _attribute("userName", required=True, unique="server"),
            _attribute("externalId", case_exact=True),
            _attribute("name", kind="complex", subAttributes=name_parts),
            _attribute("displayName"),
            # A learner needs an email: the work email, or a userName that is one.
            {**_attribute("emails", kind="complex", subAttributes=email_parts), "multiValued": True},
            _attribute("active", kind="boolean", required=True),
        ],
        "meta": {"resourceType": "Schema", "location": f"{base_url}/Schemas/{USER_SCHEMA}"},
    }


def list_response(resources: list[dict[str, Any]], *, total: int, start_index: int) -> dict[str, Any]:
    return {
        "schemas": [LIST_SCHEMA],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }
