"""What the Temporal server says of a workflow id: how its latest run stands; which runs of a type are running."""

import logging

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

log = logging.getLogger(__name__)


async def latest_status(client: Client, workflow_id: str) -> WorkflowExecutionStatus | None:
    """The status of the id's latest run; None if no run of it was ever started."""
    try:
        return (await client.get_workflow_handle(workflow_id).describe()).status
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            return None
        raise


async def running_ids(client: Client, workflow_type: str) -> frozenset[str]:
    """The ids of the type's running workflows, as the server's visibility store lists them: a page of up to a
    thousand a request, where describing each id is a request apiece. Visibility trails the workflows by a moment,
    so an id missing here is only a candidate: `latest_status` decides. A server that cannot list (the
    time-skipping test server) gives no candidates away: every id is then described."""
    query = f"WorkflowType = '{workflow_type}' AND ExecutionStatus = 'Running'"
    try:
        return frozenset([execution.id async for execution in client.list_workflows(query, page_size=1000)])
    except RPCError as error:
        log.info("the server lists no workflows (%s); each is described instead", error.status)
        return frozenset()
