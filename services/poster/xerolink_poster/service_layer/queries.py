"""Reads: postings and links, one page at a time, and the watch of one posting."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from xerolink_common.errors import FieldViolation, XerolinkError, invalid_argument, not_found
from xerolink_common.reasons import Reason

from xerolink_poster.adapters.database import Database
from xerolink_poster.adapters.repositories.links import xero_objects as _xero_objects
from xerolink_poster.adapters.tables import AuditRow, LinkRow, PostingRow
from xerolink_poster.domain.link_filter import LinkFilter
from xerolink_poster.domain.records import RecordRef, XeroObjectRef
from xerolink_poster.domain.states import SETTLED, LinkState
from xerolink_poster.service_layer.connections import get_connection, require_connection_id
from xerolink_poster.service_layer.dispatch.state_changes import StateChanges
from xerolink_poster.service_layer.unit_of_work import UnitOfWork

DEFAULT_PAGE = 50
MAX_PAGE = 500


@dataclass
class PostingView:
    posting: PostingRow
    link: LinkRow | None


def page_size(requested: int) -> int:
    if requested < 0:
        raise invalid_argument(
            Reason.INVALID_PAGE_SIZE, "page_size cannot be negative", [FieldViolation("page_size", ">= 0")]
        )
    return min(requested or DEFAULT_PAGE, MAX_PAGE)


def encode_token(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


def decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise invalid_argument(
            Reason.INVALID_PAGE_TOKEN,
            "page_token is not one this service issued; start again without it",
            [FieldViolation("page_token", "use next_page_token from the previous page")],
        ) from exc


_MAX_POSITION = 2**63 - 1  # positions are 64-bit database values


def _position(text: str) -> int:
    """A page position from a token: ASCII digits within 64 bits ("²".isdigit() is true too)."""
    if not (text.isascii() and text.isdigit() and len(text) <= 19) or int(text) > _MAX_POSITION:
        raise invalid_argument(
            Reason.INVALID_PAGE_TOKEN,
            "page_token is not one this service issued; start again without it",
            [FieldViolation("page_token", "use next_page_token from the previous page")],
        )
    return int(text)


_RESOURCE_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")


def posting_id_of(name: str) -> str:
    prefix = "postings/"
    if not name.startswith(prefix) or not _RESOURCE_ID.fullmatch(name[len(prefix) :]):
        raise invalid_argument(
            Reason.INVALID_POSTING_NAME,
            "name must be 'postings/{posting_id}'",
            [FieldViolation("name", "postings/{id}")],
        )
    return name[len(prefix) :]


def get_posting(db: Database, posting_id: str) -> PostingView:
    with UnitOfWork(db, write=False) as uow:
        posting = uow.links.get_posting(posting_id)
        if posting is None:
            raise not_found(Reason.POSTING_NOT_FOUND, f"no posting {posting_id}; list postings to find it")
        link = uow.links.get_link_by_id(posting.link_id or 0)
    return PostingView(posting, link)


def list_postings(db: Database, connection_id: str, state: str, size: int, token: str) -> tuple[list[PostingView], str]:
    # An unknown connection is refused, not answered with an empty page that looks like a
    # connection with nothing in it.
    get_connection(db, connection_id)
    fingerprint = connection_filters(connection_id, f"postings|{state}")
    before = posting_position(token, fingerprint) if token else None
    limit = page_size(size)
    with UnitOfWork(db, write=False) as uow:
        rows = uow.links.list_postings(connection_id, state, before, limit + 1)
        views = [PostingView(p, uow.links.get_link_by_id(p.link_id or 0)) for p in rows[:limit]]
    next_token = ""
    if len(rows) > limit:
        last = rows[limit - 1]
        next_token = encode_token(f"{last.create_us}:{last.posting_id}:{fingerprint}")
    return views, next_token


def posting_position(token: str, fingerprint: str) -> tuple[int, str]:
    """The (create time, posting id) after which a ListPostings page starts. Tokens carry the
    digest of the connection and state filter they were issued for
    ("{create_us}:{posting_id}:{digest}"): one used on another connection or with another state is
    refused, and so is a token of any other shape: another listing's ("{id}:{digest}") or one
    issued before ListPostings tokens named their query ("{create_us}:{posting_id}"). The two
    cannot be told apart, and either read as a position would silently skip postings."""
    parts = decode_token(token).split(":")
    if len(parts) != 3 or not parts[1] or len(parts[1]) > 64:
        raise invalid_argument(
            Reason.INVALID_PAGE_TOKEN,
            "page_token is not one ListPostings issued (tokens of other listings, and of versions before "
            "ListPostings tokens named their connection and filters, are refused); start again without it",
            [FieldViolation("page_token", "use next_page_token from the previous ListPostings page")],
        )
    created, posting_id, digest = parts
    if digest != fingerprint:
        raise _filters_changed()
    return _position(created), posting_id


def get_link(db: Database, connection_id: str, record: RecordRef, with_audit: bool) -> tuple[LinkRow, list[AuditRow]]:
    require_connection_id(connection_id)
    with UnitOfWork(db, write=False) as uow:
        link = uow.links.get_link(connection_id, record)
        if link is None:
            raise not_found(
                Reason.LINK_NOT_FOUND, f"{record} has no link on connection {connection_id!r}; post it first"
            )
        audit = list(uow.links.audit(link.id or 0)) if with_audit else []
    return link, audit


def connection_filters(connection_id: str, fingerprint: str) -> str:
    """The digest a page token carries: of the connection as well as the filters, so a token of
    one connection is refused on another rather than starting its page mid-list."""
    return hashlib.sha256(f"{connection_id}|{fingerprint}".encode()).hexdigest()[:12]


def page_position(token: str, fingerprint: str) -> int:
    """The id after which a page starts. Tokens carry the digest of the filters they were issued
    for ("{id}:{digest}"); one used with other filters, or on another connection, is refused rather
    than silently skipping or repeating links. So is a token of the versions before the digest
    ("{id}"), which cannot say whose it is (docs/unlinking.md)."""
    if not token:
        return 0
    position, separator, digest = decode_token(token).partition(":")
    if not separator or digest != fingerprint:
        raise _filters_changed()
    return _position(position)


def _filters_changed() -> XerolinkError:
    return invalid_argument(
        Reason.PAGE_TOKEN_FILTER_MISMATCH,
        "page_token was issued for other filters; repeat the filters of the first page or start again without it",
        [FieldViolation("page_token", "use it only with the filters of the request that returned it")],
    )


def list_links(
    db: Database, connection_id: str, wanted: LinkFilter, size: int, token: str
) -> tuple[Sequence[LinkRow], str]:
    # An unknown connection is refused, not answered with an empty page that looks like a
    # connection with nothing in it.
    get_connection(db, connection_id)
    fingerprint = connection_filters(connection_id, wanted.fingerprint())
    after = page_position(token, fingerprint)
    limit = page_size(size)
    with UnitOfWork(db, write=False) as uow:
        rows = uow.links.list_links(connection_id, wanted, after, limit + 1)
    next_token = encode_token(f"{rows[limit - 1].id}:{fingerprint}") if len(rows) > limit else ""
    return list(rows[:limit]), next_token


def watch_posting(
    db: Database, posting_id: str, changes: StateChanges, is_cancelled: Callable[[], bool], poll: float = 0.1
) -> Iterator[PostingView]:
    """Yields the posting now and after every state change, until it settles (linked, failed,
    unlinked) or is superseded by a newer posting of the same record."""
    last: tuple[object, ...] | None = None
    seen = changes.version
    while not is_cancelled():
        view = get_posting(db, posting_id)
        key = _visible(view)
        if key != last:
            last = key
            yield view
        superseded = view.link is not None and view.link.posting_id != posting_id
        if not view.posting.state or LinkState(view.posting.state) in SETTLED or superseded:
            return
        seen = changes.wait(seen, poll)
        time.sleep(0)


def _visible(view: PostingView) -> tuple[object, ...]:
    # What a watcher can act on. update_us alone also moves on lease and bookkeeping writes, and a
    # message per such write repeats the same state to the caller.
    link = view.link
    if link is None:
        return (view.posting.state,)
    return (
        view.posting.state,
        link.state,
        link.attempts,
        link.last_error,
        link.xero_objects,
        link.waiting_on,
        link.fingerprint,
        link.posting_id,
    )


def xero_objects(link: LinkRow) -> list[XeroObjectRef]:
    """The Xero objects a link holds, in the order they were created."""
    return _xero_objects(link)
