"""What the Temporal server says of a workflow id: how its latest run stands."""

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode


async def latest_status(client: Client, workflow_id: str) -> WorkflowExecutionStatus | None:
    """The status of the id's latest run; None if no run of it was ever started."""
    try:
        return (await client.get_workflow_handle(workflow_id).describe()).status
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            return None
        raise
