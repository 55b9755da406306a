"""A CSV import of learners: `learner-import-{import_id}` works through the stored rows in batches. Progress is
in the database (the API reads it there) and in the workflow's current details for operators."""

import uuid
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from payloads.imports import ImportBatch, ImportProgress, LearnerImportInput
    from workflows import options


def import_workflow_id(import_id: uuid.UUID) -> str:
    return f"learner-import-{import_id}"


@workflow.defn
class LearnerImportWorkflow:
    @workflow.run
    async def run(self, job: LearnerImportInput) -> ImportProgress:
        while True:
            progress: ImportProgress = await workflow.execute_activity(
                "import_learner_batch",
                ImportBatch(import_id=job.import_id, actor=job.actor, at=workflow.now(), batch_size=job.batch_size),
                result_type=ImportProgress,
                summary=f"Import up to {job.batch_size} rows",
                start_to_close_timeout=timedelta(minutes=10),
                # A killed worker's batch goes to another worker this soon; its transaction never committed.
                heartbeat_timeout=timedelta(seconds=15),
                retry_policy=options.DATABASE["retry_policy"],
            )
            workflow.set_current_details(
                f"{progress.processed_rows} of {progress.total_rows} rows: {progress.created} learners created "
                f"({progress.licensed} licensed, {progress.unlicensed} unlicensed), {progress.failed} rows refused."
            )
            if progress.done:
                return progress
            if workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(job)
