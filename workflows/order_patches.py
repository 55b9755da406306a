"""The licence order workflow's patches (`workflow.patched`): each names a change of its commands, so that orders
started before it replay as they ran (docs/changing-workflows.md). The names are recorded in histories: never
change one."""

# Since this patch, the order's own activities write the notices of what they change in the same transaction
# (and assigning starts the licence term): an order takes four activities instead of seven.
NOTICES_WITH_DECISIONS = "notices-with-decisions"

# Since this patch, saving an order and deciding it run as local activities: in the worker that runs the
# workflow's task, recorded in the history as a marker, without a trip through the server's activity queue (both
# are single short transactions). Orders started before it schedule them as activities, as they did.
LOCAL_ORDER_STEPS = "order-steps-local"

# Since this patch, an order waiting for a decision looks in the database before each reminder, and a decision
# refused as already made takes the made one on: a local activity is recorded only with its workflow task, so an
# update the server lost (a restart, before that task completed) can leave a committed decision the workflow never
# saw. Only orders with LOCAL_ORDER_STEPS can meet it: an activity is scheduled after its update is accepted.
RECOVER_STORED_DECISIONS = "recover-stored-decisions"

# Since this patch, a cancelled workflow (an operator, in the Web UI) does not leave its order waiting with nothing
# to decide it: it lets a transaction in flight finish, cancels a still requested order in the database (by the
# system, with its emails) and then ends cancelled. Checked only when the cancellation arrives: orders cancelled
# before it end as they did.
CLOSE_CANCELLED_ORDERS = "close-cancelled-orders"
CANCELLED_BY_OPERATOR = "its workflow was cancelled by an operator of the licensing service"

# Since this patch, an order whose reminders fell due while no worker ran (several reminder times passed) sends one
# reminder, numbered as the last of them, instead of one for each at once. Checked only when more than one is due:
# orders that never met it replay as they ran.
ONE_LATE_REMINDER = "one-late-reminder"
