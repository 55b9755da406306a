"""SCIM 2.0 at /scim/v2 for the customer's directory ("AD Sync": Entra ID, Active Directory)."""
