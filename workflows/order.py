"""The licence order: request -> notify the partner -> wait for assign, reject or cancel (with reminders) -> email.

Workflow id `licence-order-{order_id}`. Decisions arrive as updates: their validators refuse what cannot happen
(so refused input never reaches the history), and their handlers run the database transaction, so the caller
learns at once whether it worked (a short stock is an `InsufficientStock` failure; the order stays requested).
"""

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from pydantic import BaseModel
from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from payloads.common import SYSTEM, Actor
    from payloads.orders import (
        AssignOrder,
        AssignRequest,
        CancelRequest,
        CloseOrder,
        LicenceOrderInput,
        LicenceTerm,
        OrderEvent,
        OrderNotice,
        OrderOutcome,
        OrderRegistered,
        PersistOrder,
        RecoverDecision,
        RejectRequest,
        StoredDecision,
    )
    from rules.durations import Duration, parse_duration
    from rules.errors import Conflict, OrderNotRequested
    from rules.orders import OrderDecision, OrderStatus, reminder_time, reminders_due
    from rules.wording import counted
    from workflows import decisions, options, search
    from workflows.notices import deliver_emails, send_notices
    from workflows.order_patches import (
        CANCELLED_BY_OPERATOR,
        CLOSE_CANCELLED_ORDERS,
        LOCAL_ORDER_STEPS,
        NOTICES_WITH_DECISIONS,
        ONE_LATE_REMINDER,
        RECOVER_STORED_DECISIONS,
    )

# The `OrderStatus` search attribute of a request that was refused before it became an order (no order exists).
REFUSED = "refused"

_Result = TypeVar("_Result", bound=BaseModel)


@workflow.defn
class LicenceOrderWorkflow:
    @workflow.init
    def __init__(self, order: LicenceOrderInput) -> None:
        self._order = order
        self._persisted = order.persisted
        self._requested_at: datetime | None = order.waiting_since
        self._status = OrderStatus.REQUESTED
        self._deciding: OrderDecision | None = None
        self._checking = False  # looking for a decision this run has not seen (RECOVER_STORED_DECISIONS)
        self._outcome: OrderOutcome | None = None
        self._reminders_sent = order.reminders_sent
        self._refusal: ApplicationError | None = None  # why saving the order was refused (no order exists)
        self._together = False  # notices written with decisions (NOTICES_WITH_DECISIONS); set as the run begins
        self._local = False  # the order's transactions run as local activities (LOCAL_ORDER_STEPS); likewise
        self._begun = False  # the two above are set
        self._saving: asyncio.Future[list[uuid.UUID]] | None = None  # the transaction saving the order
        self._cancelled = False  # the workflow was cancelled: no decision is taken any more (CLOSE_CANCELLED_ORDERS)

    @workflow.run
    async def run(self, order: LicenceOrderInput) -> OrderOutcome | None:
        """The decided order; None if the request was refused before it became an order."""
        self._together = workflow.patched(NOTICES_WITH_DECISIONS)
        self._local = workflow.patched(LOCAL_ORDER_STEPS)
        self._begun = True
        try:
            return await self._carry_out(order)
        except (asyncio.CancelledError, ActivityError) as error:
            # Cancelled by hand (the Web UI, `temporal workflow cancel`; the API cancels with a decision). While
            # the run awaits an activity (emails, a reminder), the cancellation arrives as that activity's.
            cancelled = is_cancelled_exception(error) and workflow.cancellation_reason() is not None
            if not cancelled or not workflow.patched(CLOSE_CANCELLED_ORDERS):
                raise
            self._cancelled = True
            closed = await self._end_cancelled()
            if self._outcome is None:
                raise  # never saved
            await self._announce()  # again, if the cancellation cut it short: what was sent is not sent again
            if closed:
                raise  # the order was cancelled with the workflow
            return self._outcome  # decided by someone after all

    async def _carry_out(self, order: LicenceOrderInput) -> OrderOutcome | None:
        if not self._persisted:
            # Shielded: a cancelled workflow waits for it, to know whether there is an order to close.
            self._saving = asyncio.ensure_future(self._persist())
            try:
                email_ids = await asyncio.shield(self._saving)
            except (ActivityError, ApplicationError) as error:
                if not self._refused(error):
                    raise  # not a refusal: the workflow fails, for an operator to see
                await workflow.wait_condition(workflow.all_handlers_finished)
                return None
            if self._together:
                await deliver_emails(email_ids, what="'requested'")
            else:
                await self._notify(OrderEvent.REQUESTED)
        if order.resumed:
            await self._look_for_stored_decision()
        await self._wait_for_decision()
        return await self._announce()

    def _refused(self, error: ActivityError | ApplicationError) -> bool:
        """Whether saving the order was refused (the customer had too many requests waiting: no order was
        saved); if so, the refusal becomes the answer to its `registered` update and to any decision."""
        refusal = decisions.refusal_in(error)
        if refusal is None or refusal.type != Conflict.type:
            return False
        if self._refusal is None:
            self._refusal = decisions.business_failure(error)
            workflow.upsert_search_attributes([search.ORDER_STATUS.value_set(REFUSED)])
            workflow.set_current_details(f"Refused, no order was saved: {self._refusal.message}")
        return True

    async def _announce(self) -> OrderOutcome:
        """Start the term of an order assigned before NOTICES_WITH_DECISIONS, and email the decision."""
        assert self._outcome is not None
        if self._status is OrderStatus.ASSIGNED and not self._together:
            await self._start_term(self._outcome)
        workflow.set_current_details(f"Order {self._status.value}; emailing the people it concerns.")
        if self._together:
            await deliver_emails(self._outcome.emails_due(), what=f"'{OrderEvent.of_decision(self._status).value}'")
        else:
            await self._notify(OrderEvent.of_decision(self._status))
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.set_current_details(f"Order {self._status.value}. Nothing left to do.")
        return self._outcome

    async def _start_term(self, outcome: OrderOutcome) -> None:
        """The assigned licences' 12 months run in a workflow of their own, which outlives this one."""
        await workflow.execute_activity(
            "start_licence_term",
            LicenceTerm.of_order(self._order).of(outcome),
            summary="Start the licence term",
            **options.DATABASE,
        )

    async def _persist(self) -> list[uuid.UUID]:
        registered = await self._transaction(
            "persist_order",
            PersistOrder(
                order_id=self._order.order_id,
                partner_id=self._order.partner_id,
                customer_id=self._order.customer_id,
                quantity=self._order.quantity,
                requested_by=self._order.requested_by,
                # When the customer asked (the server started this run then), not when a worker got to it.
                requested_at=workflow.info().workflow_start_time,
                notify=self._together,
                waiting_limit=self._order.waiting_limit,
            ),
            OrderRegistered,
            "Save the requested order" + (" and write its notices" if self._together else ""),
        )
        self._requested_at = registered.requested_at
        self._persisted = True
        return registered.emails_due()

    async def _transaction(self, activity: str, data: BaseModel, result_type: type[_Result], summary: str) -> _Result:
        return await decisions.transaction(activity, data, result_type, summary, local=self._local)

    async def _wait_for_decision(self) -> None:
        """Remind the partner's managers every `reminder_after` until someone decides."""
        reminder_after = parse_duration(self._order.reminder_after, bounded=False)  # captured at request
        assert self._requested_at is not None
        while self._outcome is None:
            due = reminder_time(self._requested_at, reminder_after, self._reminders_sent + 1)
            workflow.set_current_details(
                f"Waiting for a partner manager to assign or reject {counted(self._order.quantity, 'licence')}; "
                f"{self._reminders_sent} reminders sent, next at {due.isoformat()}."
            )
            wait = due - workflow.now()
            if wait > timedelta(0):
                try:
                    await workflow.wait_condition(lambda: self._outcome is not None, timeout=wait)
                    continue
                except TimeoutError:
                    pass
            await self._look_for_stored_decision()
            if self._outcome is None:
                self._reminders_sent = self._reminder_due(reminder_after)
                await self._notify(OrderEvent.REMINDER, sequence=self._reminders_sent)
            if self._outcome is None and self._should_continue_as_new():
                workflow.continue_as_new(
                    self._order.model_copy(
                        update={
                            "persisted": True,
                            "reminders_sent": self._reminders_sent,
                            "waiting_since": self._requested_at,
                            "resumed": False,
                        }
                    )
                )

    def _reminder_due(self, reminder_after: Duration) -> int:
        """The number of the reminder to send now: the next one; or, when no worker ran while several fell due,
        the last of those, passing over the rest (ONE_LATE_REMINDER): one reminder, not a burst of them."""
        assert self._requested_at is not None
        number = self._reminders_sent + 1
        last = reminders_due(self._requested_at, reminder_after, workflow.now())
        if last > number and workflow.patched(ONE_LATE_REMINDER):
            workflow.logger.info("%d reminders fell due while no worker ran; sending one", last - number + 1)
            return last
        return number

    async def _look_for_stored_decision(self) -> None:
        # A decision in flight may still fail (short stock): look only if it did.
        await workflow.wait_condition(lambda: self._deciding is None)
        if self._outcome is None:
            await self._recover_stored_decision()
            await workflow.wait_condition(lambda: self._deciding is None)  # one may have begun meanwhile

    def _should_continue_as_new(self) -> bool:
        # A long wait grows the history with every reminder; a fresh run keeps it short. Updates in flight
        # must finish first, or their callers would lose their answers.
        return (
            workflow.info().is_continue_as_new_suggested()
            and self._deciding is None
            and workflow.all_handlers_finished()
        )

    async def _notify(self, event: OrderEvent, *, sequence: int = 0) -> None:
        notice = OrderNotice(order_id=self._order.order_id, event=event, at=workflow.now(), sequence=sequence)
        await send_notices("notify_order_event", notice, what=f"'{event.value}'")

    # -- decisions ---------------------------------------------------------------------------------------

    def _refuse_unless_open(self, decision: OrderDecision) -> None:
        decisions.refuse_unless_open(
            decision,
            self._status,
            refused=self._refusal,
            deciding=self._deciding,
            cancelled=self._cancelled,
            checking=self._checking,
        )

    async def _decide(
        self, decision: OrderDecision, activity: str, data_at: Callable[[datetime], AssignOrder | CloseOrder]
    ) -> OrderOutcome:
        """Run the decision's transaction once the order is saved, with the data `data_at` makes for that moment.
        The data is made only then: a decision may arrive while the order is being saved, and one in a run's
        first workflow task (a run started again with it, one sent across a continue-as-new) is handled as `run`
        begins, which sets `_together` and `_local`."""
        self._deciding = decision
        try:
            await workflow.wait_condition(lambda: self._begun and (self._persisted or self._refusal is not None))
            if self._refusal is not None:
                raise decisions.never_an_order(self._refusal)
            data = data_at(workflow.now())
            update = workflow.current_update_info()
            if update is not None:
                # A local activity is recorded only when its workflow task completes: if that task is lost with
                # its worker, the update runs again in the next one, at a later time; its id says it is the same
                # decision. The order keeps it however the transaction runs (an order begun before LOCAL_ORDER_STEPS
                # too): a keyed retry of the API's call finds its decision by it. An activity's input is not
                # compared on replay.
                data = data.model_copy(update={"decision_key": decisions.key(update.id)})
            try:
                outcome = await self._transaction(
                    activity, data, OrderOutcome, f"{decision.value.capitalize()} the order"
                )
            except (ActivityError, ApplicationError) as error:
                failure = decisions.business_failure(error)
                if failure.type == OrderNotRequested.type:
                    # The database says decided: by an update this run never saw? The caller's answer stays the
                    # refusal, whatever the check finds or however it fails.
                    try:
                        await self._recover_stored_decision()
                    except ActivityError as check:
                        workflow.logger.warning("looking for a stored decision failed: %s", check)
                raise failure from None
        finally:
            self._deciding = None
        self._decided(outcome)
        return outcome

    def _decided(self, outcome: OrderOutcome) -> None:
        self._status = outcome.status
        self._outcome = outcome
        workflow.upsert_search_attributes([search.ORDER_STATUS.value_set(outcome.status.value)])

    async def _recover_stored_decision(self, *, always: bool = False) -> None:
        """Take on the decision the database holds for this order if this run has not seen it (its update was
        lost after its transaction committed): its term and emails are seen to, and the run goes on to its end.
        Only runs with RECOVER_STORED_DECISIONS look, unless `always` (a path that is itself new)."""
        if self._outcome is not None:
            return
        if not always and (not self._local or not workflow.patched(RECOVER_STORED_DECISIONS)):
            return
        self._checking = True  # no decision's transaction runs meanwhile: its emails could go out twice
        try:
            found = await workflow.execute_activity(
                "recover_order_decision",
                RecoverDecision(order_id=self._order.order_id, term=LicenceTerm.of_order(self._order)),
                result_type=StoredDecision,
                summary="Look for a decision this run has not seen",
                **options.DATABASE,
            )
        finally:
            self._checking = False
        if found.outcome is not None and self._outcome is None:
            workflow.logger.warning(
                "order %s was %s by a decision whose update this run never saw; taking it on",
                self._order.order_id,
                found.outcome.status.value,
            )
            self._decided(found.outcome)

    # -- cancelled by hand ----------------------------------------------------------------------------------

    async def _end_cancelled(self) -> bool:
        """After the workflow's cancellation, once the transaction in flight (saving, or a decision) has ended:
        cancel the order if it is saved and still requested. True if it was cancelled here; otherwise it was
        never saved, or was decided by someone (an update in flight, or one this run never saw)."""
        if self._saving is not None:
            try:
                await self._saving
            except (ActivityError, ApplicationError) as error:
                if self._refused(error):  # its caller is answered with the refusal before the run ends
                    await workflow.wait_condition(workflow.all_handlers_finished)
        await workflow.wait_condition(lambda: self._deciding is None)
        if not self._persisted or self._outcome is not None:
            return False
        return await self._close_by_system()

    async def _close_by_system(self) -> bool:
        workflow.set_current_details("The workflow was cancelled; cancelling its order.")
        data = self._closing(SYSTEM, OrderStatus.CANCELLED, CANCELLED_BY_OPERATOR)(workflow.now())
        # The same whichever workflow task runs it (see `_decide`).
        data.decision_key = decisions.key(f"cancelled-with-workflow-{workflow.info().run_id}")
        try:
            outcome = await self._transaction("close_order", data, OrderOutcome, "Cancel the order with the workflow")
        except (ActivityError, ApplicationError) as error:
            if decisions.business_failure(error).type != OrderNotRequested.type:
                raise
            await self._recover_stored_decision(always=True)  # decided meanwhile, by an update this run never saw
            return False
        self._decided(outcome)
        return True

    @workflow.update
    async def assign(self, request: AssignRequest) -> OrderOutcome:
        def data_at(now: datetime) -> AssignOrder:
            return decisions.assign_order(self._order, request.actor, now, notify=self._together)

        return await self._decide(OrderDecision.ASSIGN, "assign_order", data_at)

    @assign.validator
    def _validate_assign(self, request: AssignRequest) -> None:
        self._refuse_unless_open(OrderDecision.ASSIGN)

    @workflow.update
    async def reject(self, request: RejectRequest) -> OrderOutcome:
        closing = self._closing(request.actor, OrderStatus.REJECTED, request.reason)
        return await self._decide(OrderDecision.REJECT, "close_order", closing)

    def _closing(
        self, actor: Actor, status: OrderStatus, reason: str | None = None
    ) -> Callable[[datetime], CloseOrder]:
        def data_at(now: datetime) -> CloseOrder:
            return decisions.close_order(self._order, actor, status, now, reason=reason, notify=self._together)

        return data_at

    @reject.validator
    def _validate_reject(self, request: RejectRequest) -> None:
        self._refuse_unless_open(OrderDecision.REJECT)

    @workflow.update
    async def cancel(self, request: CancelRequest) -> OrderOutcome:
        return await self._decide(
            OrderDecision.CANCEL, "close_order", self._closing(request.actor, OrderStatus.CANCELLED)
        )

    @cancel.validator
    def _validate_cancel(self, request: CancelRequest) -> None:
        self._refuse_unless_open(OrderDecision.CANCEL)

    @workflow.update
    async def registered(self) -> OrderRegistered:
        """Returns once the order is saved: the API starts the workflow with this update, so that the order
        can be read back as soon as the request is answered; a refusal to save it is the caller's answer."""
        await workflow.wait_condition(lambda: self._persisted or self._refusal is not None)
        if self._refusal is not None:
            raise self._refusal
        assert self._requested_at is not None
        return OrderRegistered(order_id=self._order.order_id, status=self._status, requested_at=self._requested_at)

    @workflow.query
    def status(self) -> OrderStatus:
        return self._status
