"""One root error for PeakOps; subclasses carry a category and the evidence.

Retry policy reads ``category`` and ``transient``, never the message text.
"""

from __future__ import annotations

from core.redact import redact

INPUT = "input"
STORAGE = "storage"
ANALYSIS = "analysis"
MEMORY = "memory"
TIMEOUT = "timeout"
INTERNAL = "internal"
CANCELLED = "cancelled"

CATEGORIES = (INPUT, STORAGE, ANALYSIS, MEMORY, TIMEOUT, INTERNAL)


class PeakOpsError(Exception):
    """Root of every error PeakOps raises on purpose.

    ``message`` is one line a person can read; ``upload_id`` names the upload
    when there is one; ``evidence`` holds the facts (return codes, stderr tails,
    memory figures) for logs and the activity log.
    """

    category = INTERNAL
    transient = False
    costs_attempt = True
    """False for failures that are never the video's fault (a database lock)."""

    def __init__(self, message: str, *, upload_id: int | None = None,
                 transient: bool | None = None, costs_attempt: bool | None = None,
                 **evidence: object) -> None:
        message = redact(message)  # it goes to the database, events, logs and screens
        super().__init__(message)
        self.message = message
        self.upload_id = upload_id
        if transient is not None:
            self.transient = transient
        if costs_attempt is not None:
            self.costs_attempt = costs_attempt
        self.evidence = evidence

    def __str__(self) -> str:
        return self.message


class ConfigError(PeakOpsError):
    """A setting is missing or malformed; the message names the key and the accepted form."""

    category = INPUT


class InputError(PeakOpsError):
    """The video itself is unusable (missing, empty, too big, not a video, corrupt)."""

    category = INPUT


class StorageError(PeakOpsError):
    """The object store failed (unreachable, denied, full)."""

    category = STORAGE


class AnalysisError(PeakOpsError):
    """The analyzer failed; frames already extracted are kept."""

    category = ANALYSIS


class MemoryLimitError(PeakOpsError):
    """A job's process tree crossed the hard memory limit."""

    category = MEMORY


class JobTimeoutError(PeakOpsError):
    """A job ran past its wall-clock limit or made no progress for too long."""

    category = TIMEOUT


class CancelledError(PeakOpsError):
    """The upload was cancelled (or its lease taken away) while it was being processed."""

    category = CANCELLED


class NotFoundError(PeakOpsError):
    """No upload with that id."""

    category = INPUT


class StateError(PeakOpsError):
    """The requested transition is not allowed from the upload's current status."""

    category = INPUT


class InternalError(PeakOpsError):
    """Something in PeakOps itself went wrong (a crash, a lost lease)."""

    category = INTERNAL


class DatabaseError(InternalError):
    """The state database failed a statement; the message is the database's one-line
    reason. Raised by the dialect layer (:mod:`core.store.sqldb`) in place of the driver's
    own errors, so nothing else names sqlite3 or psycopg."""

    @property
    def from_driver(self) -> bool:
        """A driver's error in our name (its reason is the database's words), rather than
        one PeakOps raised with its own message."""
        return "driver" in self.evidence


class DatabaseConstraintError(DatabaseError):
    """A write broke a constraint (a unique key another writer took first, a foreign key)."""


class DatabaseBusyError(DatabaseError):
    """The state database stayed locked by another writer: retried, never an attempt."""

    transient = True
    costs_attempt = False


class DatabaseFullError(DatabaseError):
    """The disk holding the state database is full."""

    category = STORAGE
    transient = True


class DatabaseUnreachableError(DatabaseError):
    """The state database cannot be reached now (the reason is in the message); never the
    video's fault, so it never costs the upload an attempt."""

    transient = True
    costs_attempt = False


class SchemaTooNewError(DatabaseError):
    """The database was upgraded by a newer PeakOps: this one refuses to read or write it."""


_BY_CATEGORY: dict[str, type[PeakOpsError]] = {
    INPUT: InputError, STORAGE: StorageError, ANALYSIS: AnalysisError, MEMORY: MemoryLimitError,
    TIMEOUT: JobTimeoutError, INTERNAL: InternalError, CANCELLED: CancelledError,
}


def from_category(category: str, message: str, *, transient: bool = False,
                  upload_id: int | None = None, costs_attempt: bool = True) -> PeakOpsError:
    """Rebuild an error reported across a process boundary (the job child's result), with
    its category and both flags as reported."""
    cls = _BY_CATEGORY.get(category, InternalError)
    return cls(message, upload_id=upload_id, transient=transient, costs_attempt=costs_attempt)
