"""Every reason xerolink puts in an error (google.rpc.ErrorInfo.reason) or stores on a link, a
posting or a correction, with the sentence that says when it is used. Values are the strings the
wire and the registry have always carried: changing one is a contract change."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """A machine-readable reason; `sentence` says when it is used (messages add the specifics)."""

    sentence: str

    def __new__(cls, value: str, sentence: str) -> Reason:
        member = str.__new__(cls, value)
        member._value_ = value
        member.sentence = sentence
        return member

    ACCOUNT_ALLOCATION_BROKEN = (
        "ACCOUNT_ALLOCATION_BROKEN",
        "an allocated account code is missing from or archived in the organisation's chart",
    )
    ACCOUNT_ALLOCATION_MISSING = (
        "ACCOUNT_ALLOCATION_MISSING",
        "the connection allocates no Xero account to a function the transaction needs",
    )
    ACCOUNT_ARCHIVED = "ACCOUNT_ARCHIVED", "a line names an account the organisation's chart has archived"
    ACCOUNT_NOT_A_BANK_ACCOUNT = (
        "ACCOUNT_NOT_A_BANK_ACCOUNT",
        "a payment names an account that is not a bank account in the chart",
    )
    ACCOUNT_NOT_IN_CHART = "ACCOUNT_NOT_IN_CHART", "a line names an account code the organisation's chart lacks"
    ACCOUNT_PAYMENTS_NOT_ENABLED = (
        "ACCOUNT_PAYMENTS_NOT_ENABLED",
        "a payment names an account the chart does not enable payments to",
    )
    ALLOCATION_INVALID = "ALLOCATION_INVALID", "a re-map names an allocation function the mapper does not read"
    ALREADY_UNLINKED = (
        "ALREADY_UNLINKED",
        "a correction was asked for a record already unlinked; its Xero objects are orphans",
    )
    AUTHORIZATION_CODE_REFUSED = "AUTHORIZATION_CODE_REFUSED", "Xero refused the authorisation code"
    BACKFILL_NOT_FOUND = "BACKFILL_NOT_FOUND", "no backfill has the name asked for"
    BACKFILL_INTERRUPTED = (
        "BACKFILL_INTERRUPTED",
        "a backfill's start stopped after some of its transactions were queued; the same request again finishes it",
    )
    BACKFILL_TOO_LARGE = (
        "BACKFILL_TOO_LARGE",
        "a backfill request carries more bills or transactions than one backfill takes",
    )
    BATCH_TOO_LARGE = "BATCH_TOO_LARGE", "a request carries more transactions than one request takes"
    BILL_NOT_OPEN = "BILL_NOT_OPEN", "a backfilled bill is not open in Actionstep (closed, draft or deleted)"
    BILL_REFUSED = "BILL_REFUSED", "refused with its bill"
    CALLER_NOT_ALLOWED = "CALLER_NOT_ALLOWED", "an authenticated caller may not call this service"
    CALLER_UNKNOWN = "CALLER_UNKNOWN", "no known caller"
    CONFIRMATION_REQUIRED = (
        "CONFIRMATION_REQUIRED",
        "unlinking needs an explicit confirmation: preview with validate_only, then send confirm=true",
    )
    CONNECTION_CANNOT_REFRESH = (
        "CONNECTION_CANNOT_REFRESH",
        "a connection registered with fixed tokens and no Xero app cannot have its tokens refreshed",
    )
    CONNECTION_DISCONNECTED = (
        "CONNECTION_DISCONNECTED",
        "the connection is disconnected: connect the organisation again before posting",
    )
    CONNECTION_EXISTS = "CONNECTION_EXISTS", "a connection with that id already exists"
    CONNECTION_HAS_NO_TOKENS = (
        "CONNECTION_HAS_NO_TOKENS",
        "the connection holds no Xero tokens: connect the organisation again",
    )
    CONNECTION_NEEDS_RECONNECT = (
        "CONNECTION_NEEDS_RECONNECT",
        "the connection's tokens were refused or lost; connect the organisation again",
    )
    CONNECTION_MISMATCH = (
        "CONNECTION_MISMATCH",
        "the request's connection_id is not the connection its resource name names",
    )
    CONNECTION_NOT_FOUND = "CONNECTION_NOT_FOUND", "no connection has the id asked for"
    CONNECTION_NOT_PERMITTED = (
        "CONNECTION_NOT_PERMITTED",
        "the caller may not use the connection it named",
    )
    CONNECTION_NOT_READY = (
        "CONNECTION_NOT_READY",
        "the connection has not passed preflight; nothing can be mapped or posted for it",
    )
    CONNECTION_REQUIRED = "CONNECTION_REQUIRED", "connection_id is required: the connection the request is about"
    CORRECTION_BLOCKED = "CORRECTION_BLOCKED", "a person must act before xerolink can correct this record"
    CORRECTION_NOT_FOUND = (
        "CORRECTION_NOT_FOUND",
        "no correction was applied to the record asked for",
    )
    CORRECTION_NOT_SUPPORTED = (
        "CORRECTION_NOT_SUPPORTED",
        "automated correction does not cover the record's kind or its Xero objects",
    )
    CORRECTION_RUNNING = "CORRECTION_RUNNING", "another request is applying a correction of the record"
    CORRECTION_UNFINISHED = (
        "CORRECTION_UNFINISHED",
        "a record whose correction has not completed is unlinked by applying the correction again, not by UnlinkLinks",
    )
    DEPENDENCY_HAS_NO_DOCUMENT = (
        "DEPENDENCY_HAS_NO_DOCUMENT",
        "a record this one depends on is linked but names no Xero document to attach to",
    )
    DEPENDENCY_NOT_LINKED = "DEPENDENCY_NOT_LINKED", "the record waits for records it depends on to be linked"
    DOCUMENT_IN_ANOTHER_CURRENCY = (
        "DOCUMENT_IN_ANOTHER_CURRENCY",
        "a payment or allocation is in another currency than the Xero document it settles",
    )
    DEPENDENT_IN_PROGRESS = (
        "DEPENDENT_IN_PROGRESS",
        "an unlink was asked for a record whose payments or allocations are being posted",
    )
    DISPATCHER_OFF = (
        "DISPATCHER_OFF",
        "this poster runs without its dispatcher (XEROLINK_DISPATCHER=off) and makes no Xero calls",
    )
    DISPATCH_ERROR = (
        "DISPATCH_ERROR",
        "the dispatcher failed unexpectedly while processing the record (the log says why)",
    )
    DRIFT_ALREADY_RESOLVED = (
        "DRIFT_ALREADY_RESOLVED",
        "the drift was already resolved another way; read it (ListDrift) before resolving again",
    )
    DRIFT_CHANGED_SINCE_READ = (
        "DRIFT_CHANGED_SINCE_READ",
        "Xero changed the drifted object again after ResolveDrift read it; resolve again, so it is read again",
    )
    DRIFT_NOT_CORRECTED = (
        "DRIFT_NOT_CORRECTED",
        "a drift resolved as corrected still differs in Xero; the violations list the remaining differences",
    )
    DRIFT_NOT_FOUND = "DRIFT_NOT_FOUND", "no drift of the connection has the name asked for"
    DUPLICATE_BILL = "DUPLICATE_BILL", "a backfill request names the same bill twice"
    DUPLICATE_PAYMENT = "DUPLICATE_PAYMENT", "a backfill request names the same payment twice"
    ILLEGAL_LINK_TRANSITION = (
        "ILLEGAL_LINK_TRANSITION",
        "a link cannot take the event asked for in its current state",
    )
    INTENT_MISMATCH = (
        "INTENT_MISMATCH",
        "a correction is applied with another intent than it was started with",
    )
    INTERNAL = "INTERNAL", "an internal error occurred; it was logged, retry later or contact the operator"
    INVALID_BACKFILL_NAME = (
        "INVALID_BACKFILL_NAME",
        "name must be 'backfills/{backfill_id}' as StartBackfill returned it",
    )
    INVALID_BACKFILL_REQUEST = "INVALID_BACKFILL_REQUEST", "the backfill request is not valid; fix the fields listed"
    INVALID_CONNECTION = "INVALID_CONNECTION", "the organisation cannot be connected; fix the fields listed"
    INVALID_CONNECTION_ID = (
        "INVALID_CONNECTION_ID",
        "connection_id is not one a connection can have; use the id it was created or connected with",
    )
    INVALID_DIVISIONS = (
        "INVALID_DIVISIONS",
        "division_ids must be the ids of the Actionstep organisation's divisions (its divisions resource)",
    )
    INVALID_DRIFT_FILTER = "INVALID_DRIFT_FILTER", "the drift filters are not valid; fix the fields listed"
    INVALID_DRIFT_NAME = "INVALID_DRIFT_NAME", "name must be 'connections/{connection_id}/drifts/{drift_id}'"
    INVALID_DRIFT_RESOLUTION = (
        "INVALID_DRIFT_RESOLUTION",
        "a drift resolution is not valid: ACCEPT_XERO or CORRECTED, with a note of at most 1000 characters",
    )
    INVALID_INTENT = "INVALID_INTENT", "say what the Actionstep user will do with the record: EDIT or DELETE"
    INVALID_LINK_FILTER = "INVALID_LINK_FILTER", "the link filters are not valid; fix the fields listed"
    INVALID_LINK_NAME = "INVALID_LINK_NAME", "a name is not a link name"
    INVALID_MATTER_REQUEST = "INVALID_MATTER_REQUEST", "a matter request is not valid; fix the fields listed"
    INVALID_PAGE_SIZE = "INVALID_PAGE_SIZE", "page_size cannot be negative"
    INVALID_PAGE_TOKEN = "INVALID_PAGE_TOKEN", "page_token is not one this service issued; start again without it"
    INVALID_POSTING_NAME = "INVALID_POSTING_NAME", "name must be 'postings/{posting_id}'"
    INVALID_RECONCILE_REQUEST = "INVALID_RECONCILE_REQUEST", "a reconcile request is not valid; fix the fields listed"
    INVALID_RECORD = "INVALID_RECORD", "record needs a transaction kind and the record's positive Actionstep id"
    INVALID_REQUEST_ID = "INVALID_REQUEST_ID", "request_id cannot be stored as an idempotency key"
    INVALID_TRANSACTION = "INVALID_TRANSACTION", "the transaction cannot be posted; fix the fields listed"
    INVALID_UNLINK_REQUEST = "INVALID_UNLINK_REQUEST", "the unlink request is not valid; fix the fields listed"
    INVOICE_NUMBER_KEPT = (
        "INVOICE_NUMBER_KEPT",
        "a correction found the invoice already voided in Xero, which keeps its number; the repost takes another",
    )
    LINKED_DEPENDENTS = "LINKED_DEPENDENTS", "an unlink was asked for a record with linked payments or allocations"
    LINK_LOCKED = "LINK_LOCKED", "the record is linked to Xero with other content: unlink it before posting the change"
    LINK_NOT_FOUND = "LINK_NOT_FOUND", "the record was never posted on the connection"
    LINK_OUTCOME_UNKNOWN = (
        "LINK_OUTCOME_UNKNOWN",
        "the record's posting gave up without knowing whether Xero created it",
    )
    OUTCOME_UNKNOWN_IN_PREVIOUS_ORGANISATION = (
        "OUTCOME_UNKNOWN_IN_PREVIOUS_ORGANISATION",
        "the connection was connected to another Xero organisation while the record's last call to the previous "
        "one had no answer: the previous organisation may hold it",
    )
    CORRECTION_LEFT_IN_PREVIOUS_ORGANISATION = (
        "CORRECTION_LEFT_IN_PREVIOUS_ORGANISATION",
        "the connection was connected to another Xero organisation before the record's correction was finished: "
        "what is left of it is to be done by hand in the previous organisation",
    )
    LINK_PARTIALLY_POSTED = (
        "LINK_PARTIALLY_POSTED",
        "the record failed after part of it reached Xero: unlink it before posting changed content",
    )
    MALFORMED_MESSAGE = "MALFORMED_MESSAGE", "a stream message is not a StreamMapTransactionsRequest"
    MAPPER_REFUSED_POSTER = "MAPPER_REFUSED_POSTER", "the mapper refused the poster's credentials; nothing was recorded"
    MAPPER_UNAVAILABLE = (
        "MAPPER_UNAVAILABLE",
        "the mapper did not answer; nothing was recorded",
    )
    MAPPER_WORKERS_UNAVAILABLE = "MAPPER_WORKERS_UNAVAILABLE", "a mapping worker process died; retry the stream"
    MAPPING_NOT_CONFIGURED = (
        "MAPPING_NOT_CONFIGURED",
        "the connection's mapping lacks what the transaction needs (an allocation or tax code)",
    )
    MATTER_HAS_PENDING_POSTINGS = (
        "MATTER_HAS_PENDING_POSTINGS",
        "a matter cannot be closed while postings of it are not yet in Xero",
    )
    NOTHING_TO_REMAP = (
        "NOTHING_TO_REMAP",
        "a re-map named nothing to change: an allocation function and its account, or a tax setting and its type",
    )
    NOT_A_BILL_PAYMENT = "NOT_A_BILL_PAYMENT", "a payment sent with a backfilled bill is not a client bill payment"
    NOT_A_CLIENT_BILL = "NOT_A_CLIENT_BILL", "a backfill request names a transaction that is not a client bill"
    NOT_IN_XERO = "NOT_IN_XERO", "a correction was asked for a record that failed to post, so nothing of it is in Xero"
    NOT_PRE_INTEGRATION = "NOT_PRE_INTEGRATION", "a backfilled bill was posted after the integration was connected"
    NO_BILLS = "NO_BILLS", "send the open bills to backfill"
    NO_TENANT_CONNECTED = (
        "NO_TENANT_CONNECTED",
        "the consent connected no Xero organisation; consent again and select one",
    )
    NUMBER_UNKNOWN = "NUMBER_UNKNOWN", "a correction step needs an invoice number the registry does not hold"
    OFFICE_IN_OTHER_ORGANISATION = (
        "OFFICE_IN_OTHER_ORGANISATION",
        "the transaction belongs in the firm's office organisation; post it to the office organisation's connection",
    )
    PAGE_TOKEN_FILTER_MISMATCH = "PAGE_TOKEN_FILTER_MISMATCH", "page_token was issued for other filters"
    PAYMENTS_DO_NOT_MATCH_TOTAL_DUE = (
        "PAYMENTS_DO_NOT_MATCH_TOTAL_DUE",
        "a backfilled bill's total less its payments differs from Actionstep's total due",
    )
    PAYMENT_OF_ANOTHER_BILL = "PAYMENT_OF_ANOTHER_BILL", "a payment sent with a backfilled bill pays another bill"
    PAYMENT_REFUSED = "PAYMENT_REFUSED", "a backfilled bill is refused because a payment sent with it is refused"
    POSTED_AT_REQUIRED = "POSTED_AT_REQUIRED", "a backfilled bill does not say when it was posted in Actionstep"
    POSTING_IN_PROGRESS = "POSTING_IN_PROGRESS", "the record is being posted: wait until it is linked or failed"
    POSTING_NOT_FOUND = "POSTING_NOT_FOUND", "no posting has the name asked for"
    PREFLIGHT_FAILED = "PREFLIGHT_FAILED", "the connection fails preflight"
    REFRESH_IN_PROGRESS = (
        "REFRESH_IN_PROGRESS",
        "another worker is refreshing the connection's tokens",
    )
    RECORD_LINKED_ELSEWHERE = (
        "RECORD_LINKED_ELSEWHERE",
        "the record is linked under another connection of the firm's routing: unlink it there first",
    )
    REGISTRY_COMMIT_UNCONFIRMED = (
        "REGISTRY_COMMIT_UNCONFIRMED",
        "the registry did not confirm the commit holding a request's changes; they may be stored: read them back, "
        "or send a post again under the same request_id to learn which",
    )
    REGISTRY_WRITE_FAILED = (
        "REGISTRY_WRITE_FAILED",
        "the registry refused the transaction holding a post; nothing of it was stored",
    )
    REQUEST_ID_REUSED = "REQUEST_ID_REUSED", "a request_id was already used for a request with other content"
    ROUTING_CHANGED = (
        "ROUTING_CHANGED",
        "the routing that chose the post's connection changed before it was stored; post it again",
    )
    ROUTING_INVALID = "ROUTING_INVALID", "a connection's routing names connections it cannot send transactions to"
    SNAPSHOTS_NOT_ADOPTED = (
        "SNAPSHOTS_NOT_ADOPTED",
        "objects linked before snapshots were kept are still being read from Xero; reconcile again",
    )
    TAX_CODE_NOT_MAPPED = (
        "TAX_CODE_NOT_MAPPED",
        "a line's Actionstep tax code has no Xero tax type in the connection's mapping",
    )
    TAX_TYPES_INVALID = (
        "TAX_TYPES_INVALID",
        "a tax re-map names a tax type the organisation does not have active, or a malformed tax code",
    )
    TAX_TYPE_NOT_FOR_ACCOUNT = (
        "TAX_TYPE_NOT_FOR_ACCOUNT",
        "a line's Xero tax type is not allowed on its account's class (the rate's CanApplyTo flags)",
    )
    TAX_TYPE_NOT_IN_ORGANISATION = (
        "TAX_TYPE_NOT_IN_ORGANISATION",
        "a line's Xero tax type is not an active tax rate of the organisation",
    )
    TENANT_ALREADY_CONNECTED = (
        "TENANT_ALREADY_CONNECTED",
        "the Xero organisation is already connected through another connection",
    )
    TENANT_AMBIGUOUS = (
        "TENANT_AMBIGUOUS",
        "the app is connected to several organisations and the request named none",
    )
    TENANT_BUSY = "TENANT_BUSY", "another poster is serving this Xero organisation (or this one is stopping)"
    TENANT_NOT_CONNECTED = "TENANT_NOT_CONNECTED", "the consent did not connect the organisation asked for"
    TOKEN_KEY_MISSING = (
        "TOKEN_KEY_MISSING",
        "the key the connection's tokens were encrypted with is not configured on this poster",
    )
    TOTAL_DUE_CURRENCY = "TOTAL_DUE_CURRENCY", "a backfilled bill's total due is not in the bill's currency"
    TOTAL_DUE_REQUIRED = "TOTAL_DUE_REQUIRED", "a backfilled bill carries no total due"
    TRACKING_CATEGORY_ARCHIVED = (
        "TRACKING_CATEGORY_ARCHIVED",
        "the connection's tracking category for matters is archived in Xero",
    )
    TRACKING_CATEGORY_LIMIT = (
        "TRACKING_CATEGORY_LIMIT",
        "Xero's limit of tracking categories leaves no room for the connection's category for matters",
    )
    TRACKING_OPTION_LIMIT = (
        "TRACKING_OPTION_LIMIT",
        "the category for matters holds as many active options as Xero allows: close finished matters",
    )
    TRACKING_OPTION_TAKEN = (
        "TRACKING_OPTION_TAKEN",
        "the Xero option named for a matter is another matter's option (renamed in Xero)",
    )
    TRANSFER_BETWEEN_ORGANISATIONS = (
        "TRANSFER_BETWEEN_ORGANISATIONS",
        "a trust transfer to the office bank joins the trust and office organisations, and a Xero bank transfer "
        "moves money between two bank accounts of one organisation; enter its two halves in Xero",
    )
    TRUST_IN_OTHER_ORGANISATION = (
        "TRUST_IN_OTHER_ORGANISATION",
        "the transaction belongs in the firm's trust organisation; post it to the trust organisation's connection",
    )
    UNDECODABLE_REQUEST = (
        "UNDECODABLE_REQUEST",
        "the request bytes are not the protobuf message the contract defines",
    )
    UNKNOWN = "UNKNOWN", "read back from a status that carried no xerolink reason"
    UNKNOWN_GROUP = "UNKNOWN_GROUP", "a filter names a group that is not a link group"
    UNKNOWN_OBJECT_TYPE = "UNKNOWN_OBJECT_TYPE", "a filter names a type that is not a Xero object type"
    UNKNOWN_PROFILE = "UNKNOWN_PROFILE", "the policy profile named is not known to this mapper"
    UNKNOWN_STATE = "UNKNOWN_STATE", "a filter names a state that is not a link state"
    UNTAXED_TAX_TYPE_NOT_MAPPED = (
        "UNTAXED_TAX_TYPE_NOT_MAPPED",
        "the connection has no Xero tax type for lines that carry no Actionstep tax code (trust money, trust "
        "interest, journal lines without a code)",
    )
    UNLINK_REFUSED = "UNLINK_REFUSED", "an unlink was refused for more than one reason; the violations list each"
    XERO_ANSWER_UNREADABLE = "XERO_ANSWER_UNREADABLE", "Xero's answer named no object for it"
    XERO_APP_NOT_CONFIGURED = (
        "XERO_APP_NOT_CONFIGURED",
        "the Xero app the connection was made with is not configured on this poster",
    )
    XERO_BATCH_REFUSED = (
        "XERO_BATCH_REFUSED",
        "Xero refused a batch call whole; its records are tried alone, never failed by it",
    )
    XERO_CONTACTS_FAILED = "XERO_CONTACTS_FAILED", "Xero refused the contacts the records name"
    XERO_CONTACT_LOOKUP_FAILED = "XERO_CONTACT_LOOKUP_FAILED", "looking up the records' contacts in Xero failed"
    PAYMENT_NOT_PAYABLE_IN_XERO = (
        "PAYMENT_NOT_PAYABLE_IN_XERO",
        "Xero would refuse the record's payment as its document stands in Xero (not AUTHORISED, or owing less than "
        "the payment), so nothing of the record was sent",
    )
    XERO_DOCUMENT_CHANGED = (
        "XERO_DOCUMENT_CHANGED",
        "the document the work pays or allocates to was paid, voided, deleted or otherwise changed in Xero since "
        "xerolink posted it: the work waits until the drift is resolved",
    )
    XERO_LOOKUP_FAILED = "XERO_LOOKUP_FAILED", "Xero refused a look-up (a GET)"
    XERO_NO_ANSWER = "XERO_NO_ANSWER", "Xero did not answer, or its answer could not be read: the outcome is unknown"
    XERO_OBJECT_MISSING = "XERO_OBJECT_MISSING", "Xero has no object the registry names"
    XERO_RATE_LIMITED = "XERO_RATE_LIMITED", "Xero kept asking to slow down"
    XERO_REFUSED = "XERO_REFUSED", "Xero refused a correction's call"
    XERO_TOKEN_ERROR = "XERO_TOKEN_ERROR", "Xero's token endpoint answered with an error"
    XERO_TOKEN_NO_ANSWER = "XERO_TOKEN_NO_ANSWER", "Xero's token endpoint did not answer"
    XERO_TRACKING_FAILED = (
        "XERO_TRACKING_FAILED",
        "finding, creating or changing matters' tracking options in Xero failed",
    )
    XERO_UNAUTHORISED = "XERO_UNAUTHORISED", "Xero refused the connection's credentials: reconnect it"
    XERO_UNAVAILABLE = "XERO_UNAVAILABLE", "Xero answered with a server error"
    XERO_UNREACHABLE = "XERO_UNREACHABLE", "Xero could not be reached"
    XERO_VALIDATION = "XERO_VALIDATION", "Xero refused the record; its messages are listed as field violations"
