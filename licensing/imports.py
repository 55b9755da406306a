"""Starting a learner import's workflow, `learner-import-{import_id}`: the API and the CLI share this."""

from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy

from db.models import Customer, LearnerImport
from licensing.config import Settings
from payloads.common import Actor
from payloads.imports import LearnerImportInput
from rules.wording import counted
from workflows import search
from workflows.learner_import import LearnerImportWorkflow, import_workflow_id


async def start_import(
    client: Client, settings: Settings, customer: Customer, upload: LearnerImport, actor: Actor
) -> None:
    await client.start_workflow(
        LearnerImportWorkflow.run,
        LearnerImportInput(
            import_id=upload.id,
            partner_id=customer.partner_id,
            customer_id=customer.id,
            total_rows=upload.total_rows,
            actor=actor,
            batch_size=settings.import_batch_size,
        ),
        id=import_workflow_id(upload.id),
        task_queue=settings.task_queue,
        # Never a second run beside a finished one; one that failed or was terminated may be started again.
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
        search_attributes=search.for_customer(customer.partner_id, customer.id),
        static_summary=f"Learner import: {counted(upload.total_rows, 'row')}",
        static_details=f"Import {upload.id} of customer {customer.id} (partner {customer.partner_id}).",
    )
