"""The one classification of Xero's answers, for the dispatcher's create calls and a
correction's calls on one object alike.

First the answer as a whole (`call_verdict`): rate limited, unavailable, unauthorised, and for a
call on one object also missing or unreadable. Otherwise its elements (`read_elements`): each
refused by Xero (its messages), answered (Xero's element), or unknown. Only an element Xero
explicitly refused fails: an answer that proves nothing leaves its elements unknown, to be looked
up before anything is written again.

Where the two kinds of call truly differ, `one_object` says which is read. A batch create puts
many elements in one call, and Xero refusing the call whole (a 4xx) names no element: without
summarizeErrors=false it may still have created the valid ones (NOTES: Xero facts). A call on
one object (GET, POST or DELETE of `Resource/{id}`) is that object's alone: its refusal is the
object's, a 404 says the object is missing, and an answer that is not a JSON object tells nothing
of what happened (a correction reads Xero again before it writes)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from xerolink_common.reasons import Reason

from xerolink_poster.adapters import xero_payloads as payloads
from xerolink_poster.adapters.xero_client import XeroAnswer
from xerolink_poster.domain.records import XeroObjectRef
from xerolink_poster.service_layer.dispatch.work import Work

# What an answer says for the call as a whole.
RATE_LIMITED = "rate_limited"
UNAVAILABLE = "unavailable"
UNAUTHORISED = "unauthorised"
MISSING = "missing"  # a call on one object only
UNREADABLE = "unreadable"  # a call on one object only


@dataclass
class ElementAnswer:
    """One element's outcome: created (its objects), refused by Xero (its messages), or unknown.
    `answered` is Xero's element when Xero neither refused it nor left it unknown."""

    created: list[XeroObjectRef] = field(default_factory=list)
    refused: list[str] | None = None
    answered: dict[str, Any] | None = None


@dataclass
class ReadAnswer:
    """Xero's answer, read element by element. `call` is set when the answer speaks for the whole
    call (rate limited, unavailable, unauthorised, ...); otherwise each element is created,
    refused, or unknown (`reason`, `message`; `alone`: post it in a call of its own)."""

    call: str = ""
    elements: list[ElementAnswer] = field(default_factory=list)
    reason: str = ""
    message: str = ""
    alone: bool = False

    def outcomes(self, count: int) -> list[str]:
        """Each element's outcome for its trace."""
        if self.call:
            return [self.call] * count
        return ["created" if e.created else "rejected" if e.refused is not None else "uncertain" for e in self.elements]


def call_verdict(answer: XeroAnswer, one_object: bool = False) -> str:
    """What the answer says for the whole call; "" when its body is to be read."""
    if answer.status == 429:
        return RATE_LIMITED
    if answer.status >= 500:
        return UNAVAILABLE
    if answer.status in (401, 403):
        return UNAUTHORISED
    if one_object:
        if answer.status == 404:
            return MISSING
        body = answer.body
        if not isinstance(body, dict) or (answer.ok and len(body) == 1 and "Message" in body):
            return UNREADABLE
    return ""


def message_of(body: Any) -> str:
    """The sentence Xero's answer carries, if any."""
    if isinstance(body, dict):
        return str(body.get("Message") or body.get("Detail") or body.get("Title") or "")
    return ""


def refusal_message(answer: XeroAnswer) -> str:
    """Why Xero refused a call whole: its sentence, or its status."""
    return message_of(answer.body) or f"Xero answered {answer.status}"


def readable_lookup(answer: XeroAnswer) -> bool:
    """A look-up's answer that can be searched: a success with a JSON object."""
    return answer.ok and isinstance(answer.body, dict)


def read_elements(answer: XeroAnswer, collection: str, count: int, one_object: bool = False) -> ReadAnswer:
    """The answer to a call that sent `count` elements of `collection`, element by element. An
    answer that cannot be matched to what was sent (unparsable, a count that does not match)
    leaves its elements unknown; a refusal of the whole call refuses a call of one element."""
    verdict = call_verdict(answer, one_object)
    if verdict:
        return ReadAnswer(call=verdict)
    body = answer.body if isinstance(answer.body, dict) else {}
    items = body.get(collection)
    if answer.status != 200 and not items:
        items = body.get("Elements")
    matched = isinstance(items, list) and len(items) == count and all(isinstance(i, dict) for i in items)
    whole = refusal_message(answer)
    if not matched or not isinstance(items, list):
        if answer.status != 200 and count == 1:
            return ReadAnswer(elements=[ElementAnswer(refused=[whole])])
        if answer.status == 200:
            return _unknown(count, Reason.XERO_ANSWER_UNREADABLE, "Xero's answer could not be matched to what was sent")
        refused_whole = f"Xero refused the call whole ({whole}); each is tried alone"
        return _unknown(count, Reason.XERO_BATCH_REFUSED, refused_whole, alone=True)
    read = ReadAnswer(reason=Reason.XERO_ANSWER_UNREADABLE, message="Xero's answer named no object for it")
    # An element refused without a message: a call on one object takes the answer's own.
    unexplained = whole if one_object else "Xero rejected the element"
    for item in items:
        errors = [str(e.get("Message", "")) for e in item.get("ValidationErrors") or [] if isinstance(e, dict)]
        if item.get("StatusAttributeString") == "ERROR" or errors or item.get("HasErrors"):
            read.elements.append(ElementAnswer(refused=errors or [unexplained]))
        elif answer.status != 200 and one_object:
            read.elements.append(ElementAnswer(refused=[whole]))
        elif answer.status != 200:
            # Valid, in a batch refused whole: Xero may have created it without naming its id.
            read.elements.append(ElementAnswer())
            read.reason, read.message, read.alone = Reason.XERO_BATCH_REFUSED, "Xero refused the call whole", True
        else:
            read.elements.append(ElementAnswer(answered=item))
    return read


def read_answer(answer: XeroAnswer, collection: str, works: Sequence[Work]) -> ReadAnswer:
    """Xero's answer to a create call of `works`: each answered element is created only when it
    names its object and carries no other record's tag; otherwise it stays unknown."""
    read = read_elements(answer, collection, len(works))
    if read.call:
        return read
    elements: list[ElementAnswer] = []
    for w, element in zip(works, read.elements, strict=True):
        item = element.answered
        if item is None:
            elements.append(element)
            continue
        assert w.operation is not None
        objects = payloads.created_objects(w.body, w.operation.local_ref, item)
        lookup = payloads.lookup_of(w.operation, w.reference, w.contact_id)
        tag_answered = lookup is not None and item.get(lookup.tag_path[0]) is not None
        if not objects[0].xero_id or (tag_answered and lookup is not None and not lookup.tagged(item)):
            elements.append(ElementAnswer())
            continue
        elements.append(ElementAnswer(created=objects, answered=item))
    read.elements = elements
    return read


def _unknown(count: int, reason: str, message: str, alone: bool = False) -> ReadAnswer:
    return ReadAnswer(elements=[ElementAnswer() for _ in range(count)], reason=reason, message=message, alone=alone)
